"""Running the installed `tessera` console script as a user would, in its own process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# The console script pip installed next to this interpreter (not `python -m`):
# what a user runs, entry point and all.
TESSERA = str(Path(sys.executable).with_name("tessera"))


def tessera(
    *args: str, env: dict | None = None, timeout: float = 120, input: str | None = None
) -> subprocess.CompletedProcess:
    """Run `tessera ARGS` to completion; stdout and stderr captured as text.

    `env` is laid over os.environ; a None value removes that variable.
    """
    return subprocess.run(
        [TESSERA, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={
            k: v
            for k, v in {**os.environ, "COLUMNS": "200", **(env or {})}.items()
            if v is not None  # None: unset it (another test may have set it in os.environ)
        },
        input=input,
        check=False,
    )


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    """Assert the command succeeded; show its stderr if not."""
    assert proc.returncode == 0, f"rc={proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stdout + proc.stderr
    return proc


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    """Assert a failure reported as exactly one stderr line, no traceback; return the line."""
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


def post_first_job(run, directory: Path, source: str) -> None:
    """The README's first steps through the `tessera` script, with `run(*args)` running one
    command: a corpus holding `source`, `data add`, `job init`, `job post` (job 1, account 1)."""
    corpus = directory / "corpus"
    corpus.mkdir()
    (corpus / "a.py").write_text(source)
    dataset = run("data", "add", str(corpus)).stdout.strip()
    job_file = directory / "job.yaml"
    run("job", "init", str(job_file), "--dataset", dataset)
    assert "job 1 posted" in run("job", "post", str(job_file), "--dev-account", "1").stdout
