"""The content store and datasets through the installed `tessera` script.

A corrupt block is found (`store verify`), reported, and healed by re-adding
the content or importing a good CAR; failures leave nothing partial behind;
`lineage show` labels corrupt documents; `data add` streams in flat memory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import TESSERA, ok, one_line_error, tessera


def _blocks(store: Path) -> list[Path]:
    return sorted(p for p in (store / "blocks").rglob("*") if p.is_file())


def _corrupt(store: Path, cid_suffix: str | None = None) -> Path:
    """Flip a byte of one raw leaf block (the largest) and return its path."""
    blocks = _blocks(store)
    target = max(blocks, key=lambda p: p.stat().st_size)
    raw = bytearray(target.read_bytes())
    raw[0] ^= 0xFF
    target.write_bytes(bytes(raw))
    return target


@pytest.fixture()
def env(tmp_path):
    return {"TESSERA_STORE_DIR": str(tmp_path / "store"), "TESSERA_IPFS_API": ""}


def test_corrupt_block_is_found_and_healed_by_add_and_by_import(tmp_path, env):
    store = tmp_path / "store"
    data = tmp_path / "data.bin"
    data.write_bytes(os.urandom(700_000))  # three leaves and a root
    cid = ok(tessera("store", "add", str(data), env=env)).stdout.strip()
    car = tmp_path / "good.car"
    ok(tessera("store", "export", cid, "-o", str(car), env=env))
    assert ok(tessera("store", "verify", env=env)).stderr.strip().endswith("0 bad")

    bad = _corrupt(store)
    line = one_line_error(tessera("store", "get", cid, "-o", str(tmp_path / "out"), env=env))
    assert "corrupt" in line and bad.name in line
    scrub = tessera("store", "verify", env=env)
    assert scrub.returncode == 1 and f"bad {bad.name}" in scrub.stdout

    ok(tessera("store", "add", str(data), env=env))  # re-adding the original heals it
    assert tessera("store", "verify", env=env).returncode == 0
    ok(tessera("store", "get", cid, "-o", str(tmp_path / "out"), env=env))
    assert (tmp_path / "out").read_bytes() == data.read_bytes()

    _corrupt(store)
    assert ok(tessera("store", "import", str(car), env=env)).stdout.split() == [cid]
    assert tessera("store", "verify", env=env).returncode == 0


def test_failed_folder_get_and_failed_car_import_leave_nothing(tmp_path, env):
    store = tmp_path / "store"
    folder = tmp_path / "folder"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("alpha\n")
    (folder / "sub" / "b.bin").write_bytes(os.urandom(300_000))
    cid = ok(tessera("store", "add", str(folder), env=env)).stdout.strip()
    car = tmp_path / "folder.car"
    ok(tessera("store", "export", cid, "-o", str(car), env=env))
    _corrupt(store)
    out = tmp_path / "copy"
    one_line_error(tessera("store", "get", cid, "-o", str(out), env=env))
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []

    truncated = tmp_path / "cut.car"
    truncated.write_bytes(car.read_bytes()[:-1000])
    fresh = {**env, "TESSERA_STORE_DIR": str(tmp_path / "fresh")}
    assert "truncated" in one_line_error(tessera("store", "import", str(truncated), env=fresh))
    assert _blocks(tmp_path / "fresh") == []


def test_lineage_show_labels_a_corrupt_document(tmp_path, env):
    from agents.lineage import save_document
    from agents.spec import JobSpec, ModelConfig
    from agents.storage import open_store

    corpus = tmp_path / "c.txt"
    corpus.write_text("def f():\n    return 1\n" * 50)
    dataset = ok(tessera("data", "add", str(corpus), env=env)).stdout.strip()
    store = open_store(env["TESSERA_STORE_DIR"])
    spec = save_document(
        store, JobSpec(name="x", model=ModelConfig(n_layer=2), num_stages=2, dataset=dataset)
    )
    shown = json.loads(ok(tessera("lineage", "show", spec, "-f", "json", env=env)).stdout)
    assert {n["kind"] for n in shown["nodes"]} >= {"job-spec", "dataset"}
    manifest_block = next(p for p in _blocks(tmp_path / "store") if p.name == dataset)
    manifest_block.write_bytes(manifest_block.read_bytes().replace(b"c.txt", b"x.txt"))
    shown = json.loads(ok(tessera("lineage", "show", spec, "-f", "json", env=env)).stdout)
    corrupt = [n for n in shown["nodes"] if n["cid"] == dataset]
    assert corrupt and corrupt[0]["kind"] == "corrupt"
    assert "corrupt" in ok(tessera("lineage", "show", spec, env=env)).stdout


def test_data_add_skip_binary(tmp_path, env):
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "a.txt").write_text("text\n")
    (folder / "img.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    line = one_line_error(tessera("data", "add", str(folder), env=env))
    assert "img.png" in line
    done = ok(tessera("data", "add", str(folder), "--skip-binary", env=env))
    assert "img.png" in done.stderr and "1 binary file(s) skipped" in done.stderr
    assert done.stdout.strip().startswith("bafkrei")


def test_data_add_streams_in_flat_memory_with_progress(tmp_path, env):
    """96 MiB of text: the old builder held ~3.5x the input; now about one shard."""
    big = tmp_path / "big.txt"
    line = (b"0123456789abcdef" * 8)[:-1] + b"\n"
    with open(big, "wb") as fh:
        for _ in range(96 * 2**20 // len(line)):
            fh.write(line)
    size = big.stat().st_size
    # ru_maxrss of the child alone: a wrapper process runs it and reports.
    wrapper = (
        "import resource, subprocess, sys;"
        "p = subprocess.run(sys.argv[1:], capture_output=True);"
        "sys.stderr.buffer.write(p.stderr); sys.stdout.buffer.write(p.stdout);"
        "print('MAXRSS', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr);"
        "sys.exit(p.returncode)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", wrapper, TESSERA, "data", "add", str(big)],
        capture_output=True,
        text=True,
        env={**os.environ, **env, "FORCE_COLOR": "1", "COLUMNS": "120"},
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    maxrss_kib = int(proc.stderr.rsplit("MAXRSS", 1)[1].split()[0])
    assert "sharding" in proc.stderr  # the progress bar was drawn
    assert f"{size} tokens" in proc.stderr
    # Interpreter + libraries are ~100 MiB; the input is 96 MiB: flat means well under it.
    assert maxrss_kib * 1024 < 100 * 2**20 + size // 2, f"peak RSS {maxrss_kib} KiB"
