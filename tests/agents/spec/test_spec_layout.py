"""The spec package is the one owner of JobSpec and its configs: no import circle."""

import subprocess
import sys


def _loaded_after(module: str) -> set[str]:
    code = (
        f"import sys, {module}; print(' '.join(m for m in sys.modules if m.startswith('agents.')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    return set(out.split())


def test_spec_imports_neither_lineage_nor_training():
    loaded = _loaded_after("agents.spec")
    assert not {m for m in loaded if m.startswith(("agents.lineage", "agents.training"))}


def test_lineage_does_not_import_training():
    loaded = _loaded_after("agents.lineage")
    assert "agents.spec" in loaded
    assert not {m for m in loaded if m.startswith("agents.training")}


def test_lineage_and_training_see_the_same_spec_classes():
    from agents.lineage.documents import CompressionConfig as LineageCompression
    from agents.lineage.documents import JobSpec as LineageJobSpec
    from agents.spec import CompressionConfig, JobSpec
    from agents.training import worker

    assert LineageJobSpec is JobSpec and LineageCompression is CompressionConfig
    assert worker.JobSpec is JobSpec
