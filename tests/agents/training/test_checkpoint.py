"""Stage checkpoints: safetensors round trip, and every corruption is a clear error."""

from __future__ import annotations

import json
import os

import pytest
import torch

from agents.errors import TesseraError
from agents.spec import TrainingConfig
from agents.training.checkpoint import state_from_bytes, state_hash, state_to_bytes
from agents.training.errors import CheckpointError
from agents.training.pipeline import InProcessPipeline
from agents.training.worker import StageWorker


@pytest.fixture
def trained(spec, store):
    workers = [StageWorker(spec, s, store=store) for s in range(3)]
    results = InProcessPipeline(workers).train_round(0, 0)
    return workers, results


def test_state_round_trips_and_the_hash_covers_optimizer_state(trained, spec, store):
    workers, results = trained
    w = workers[1]
    data = results[1].state_bytes
    assert data[8:].lstrip().startswith(b"{")  # safetensors header, not a pickle
    state = state_from_bytes(data, stage=1)
    assert state_hash(state) == w.state_hash() == results[1].state_hash
    assert set(state.params()) == {n for n, _ in w.module.named_parameters()}
    assert any(k.endswith("/exp_avg_sq") for k in state.tensors)
    # The restored worker is the same stage state, bit for bit.
    again = StageWorker(spec, 1, store=store, state=data)
    assert again.state_hash() == w.state_hash()
    # Changing only an optimizer moment changes the hash.
    tensors = dict(state.tensors)
    key = next(k for k in tensors if k.endswith("/exp_avg"))
    tensors[key] = tensors[key] + 1e-3
    assert state_hash(tensors) != state_hash(state)


def test_corrupted_checkpoints_are_checkpoint_errors(trained, spec, store):
    data = trained[1][0].state_bytes
    n = int.from_bytes(data[:8], "little")
    flipped = bytearray(data)
    flipped[-5] ^= 0x40  # inside the tensor data: safetensors alone would not notice
    cases = {
        "truncated": data[: len(data) // 2],
        "garbage": b"\x00" * 64,
        "empty": b"",
        "flipped data bit": bytes(flipped),
        "bad header": data[:8] + b"{" * n + data[8 + n :],
    }
    for what, bad in cases.items():
        with pytest.raises(CheckpointError) as info:
            state_from_bytes(bad)
        assert isinstance(info.value, TesseraError), what
        assert "\n" not in str(info.value), what
    with pytest.raises(CheckpointError, match="stage 0, not stage 1"):
        state_from_bytes(data, stage=1)
    with pytest.raises(CheckpointError, match="stage 0"):
        StageWorker(spec, 1, store=store, state=data)


def test_a_checkpoint_with_missing_or_misshapen_tensors_is_refused(trained, spec, store):
    from agents.training.checkpoint import StageState

    state = state_from_bytes(trained[1][2].state_bytes)
    tensors = dict(state.tensors)
    tensors.pop(next(iter(tensors)))
    short = state_to_bytes(StageState(tensors, state.stage, state.num_stages))
    with pytest.raises(CheckpointError, match="lacks"):
        StageWorker(spec, 2, store=store, state=short)
    tensors = dict(state.tensors)
    key = next(k for k in tensors if k.startswith("param/"))
    tensors[key] = torch.zeros(3)
    wrong = state_to_bytes(StageState(tensors, state.stage, state.num_stages))
    with pytest.raises(CheckpointError, match=key):
        StageWorker(spec, 2, store=store, state=wrong)
    # The header names the format; another format is refused.
    header = json.loads(wrong[8 : 8 + int.from_bytes(wrong[:8], "little")])
    assert header["__metadata__"]["format"] == "tessera/stage-state@1"


def test_per_step_snapshots_are_copies_of_each_steps_start_state(trained, spec, store):
    """The snapshots the hashing thread takes (one flat copy a step) are what each step
    started from, and later steps do not change them (a bundle built from an aliased
    snapshot would fail its honest provider's audit)."""
    from agents.training.checkpoint import flat_copy

    workers, results = trained
    w = workers[1]
    logs, leaves = w._last_round["logs"], w._last_round["leaves"]
    m = spec.training.micro_batches
    assert len(logs) == spec.training.steps_per_round >= 2
    for step, log in logs.items():
        assert state_hash(log.snapshot) == log.params_before == leaves[step * m].params_before
    assert state_hash(w._last_round["end"]) == results[1].state_hash == leaves[-1].params_after
    live = w.state_tensors()
    copy = flat_copy(live)
    assert copy.keys() == live.keys()
    for name, t in live.items():
        assert torch.equal(copy[name], t) and copy[name].shape == t.shape
        assert copy[name].data_ptr() != t.data_ptr()
    before = state_hash(copy)
    with torch.no_grad():
        next(iter(live.values())).add_(1.0)
    assert state_hash(copy) == before != state_hash(live)


def test_snapshot_buffers_are_recycled_only_when_nothing_can_read_them(spec_factory, store):
    """Two rounds on, a step snapshot's buffer is refilled by a new snapshot, unless it
    was read or is still held: a held one keeps its step's state, bit for bit."""
    from agents.training.checkpoint import FlatTensors

    spec = spec_factory(training=TrainingConfig(batch_size=4, micro_batches=2, steps_per_round=4))
    workers = [StageWorker(spec, s, store=store) for s in range(3)]
    pipe = InProcessPipeline(workers)
    pipe.train_round(0, 0)
    w = workers[1]
    logs = w._last_round["logs"]
    held, held_hash = logs[2].snapshot, logs[2].params_before
    read = logs[3].snapshot
    assert state_hash(read) == logs[3].params_before  # reading it hands its tensors out
    buffers = {
        s: logs[s].snapshot.tensors._groups[0][2].data_ptr()
        for s in (1, 2, 3)
        if isinstance(logs[s].snapshot.tensors, FlatTensors)
    }
    assert set(buffers) == {1, 2, 3}
    pipe.train_round(0, 1)
    pipe.train_round(0, 2)
    assert logs[1].snapshot is None  # recycled, so unlinked from its old log
    assert logs[2].snapshot is held and logs[3].snapshot is read
    assert state_hash(held) == held_hash
    live = {
        log.snapshot.tensors._groups[0][2].data_ptr()
        for log in w._logs.values()
        if log.snapshot is not None and isinstance(log.snapshot.tensors, FlatTensors)
    }
    assert buffers[1] in live and buffers[2] not in live and buffers[3] not in live
    # A recycled buffer holds its new step's state: the hashes still match the leaves.
    for log in w._logs.values():
        assert state_hash(log.snapshot) == log.params_before


def _spill_mappings(path) -> list[str]:
    """This process's memory mappings of files under `path` (Linux /proc)."""
    from pathlib import Path

    return [line for line in Path("/proc/self/maps").read_text().splitlines() if str(path) in line]


def test_spilled_snapshots_live_in_unlinked_files_and_change_no_bit(spec, store, tmp_path):
    """With a snapshot directory each step's snapshot is a shared mapping of an unlinked
    file there (pages the kernel can write back and evict), not anonymous memory; the
    round's hashes, trace and a bundle's bytes are those of a worker without one."""
    from agents.training.checkpoint import FlatTensors

    spill = tmp_path / "spill"
    spill.mkdir()
    plain = [StageWorker(spec, s, store=store) for s in range(3)]
    spilled = [StageWorker(spec, s, store=store, snapshot_dir=spill) for s in range(3)]
    a = InProcessPipeline(plain).train_round(0, 0)
    b = InProcessPipeline(spilled).train_round(0, 0)
    assert [(r.state_hash, r.trace_root) for r in a] == [(r.state_hash, r.trace_root) for r in b]
    logs = spilled[1]._last_round["logs"]
    assert len(logs) == spec.training.steps_per_round
    for log in logs.values():
        assert isinstance(log.snapshot.tensors, FlatTensors)
        assert state_hash(log.snapshot) == log.params_before
    maps = _spill_mappings(spill)
    # One mapping per dtype group of every snapshot (and of the round-end copy).
    assert len(maps) >= len(logs) * 3 and all(line.endswith("(deleted)") for line in maps)
    assert list(spill.iterdir()) == []  # nothing on disk by name
    last = len(a[1].leaves) - 1
    assert spilled[1].make_audit_bundle([0, last]) == plain[1].make_audit_bundle([0, last])


def test_a_spilled_buffer_is_unmapped_with_its_snapshot(tmp_path):
    """Dropping a snapshot frees its file's space: no mapping outlives it."""
    import gc

    from agents.training.checkpoint import SpillDir, flat_copy

    spill = SpillDir(tmp_path)
    live = {"w": torch.randn(300, 7), "b": torch.randn(7), "n": torch.arange(5)}
    snap = flat_copy(live, spill=spill)
    assert len(_spill_mappings(tmp_path)) == 2  # one buffer per dtype
    assert all(torch.equal(snap[k], v) for k, v in live.items())
    refilled = flat_copy(live, reuse=snap)  # the pool refills the same file-backed pages
    assert refilled["w"].data_ptr() == snap["w"].data_ptr() and len(_spill_mappings(tmp_path)) == 2
    del snap, refilled
    gc.collect()
    assert _spill_mappings(tmp_path) == []
    # A round holds thousands: no buffer may keep a file descriptor open (1,024 is a
    # common limit, and select() fails past it).
    fds = len(os.listdir("/proc/self/fd"))
    many = [spill.empty(64, torch.float32) for _ in range(300)]
    assert len(os.listdir("/proc/self/fd")) == fds and len(_spill_mappings(tmp_path)) == 300
    assert list(tmp_path.iterdir()) == []
    del many


def test_a_bad_snapshot_directory_is_one_clear_error(spec, store, tmp_path):
    """A missing directory fails the worker at once, before any training; a worker that
    keeps no snapshots (a replay) does not care."""
    missing = tmp_path / "no-such-dir"
    with pytest.raises(CheckpointError, match="no-such-dir does not exist"):
        StageWorker(spec, 1, store=store, snapshot_dir=missing)
    afile = tmp_path / "a-file"
    afile.write_bytes(b"x")
    with pytest.raises(CheckpointError, match="a-file is not a directory"):
        StageWorker(spec, 1, store=store, snapshot_dir=afile)
    StageWorker(spec, 1, store=store, snapshots=False, snapshot_dir=missing)
    assert not missing.exists()


def test_a_full_spill_disk_is_an_error_when_the_snapshot_is_taken(tmp_path):
    """The whole buffer is reserved up front, so running out of space is a
    CheckpointError at the copy, never a SIGBUS when a mapped page is written later.
    (A file-size limit stands in for a full disk, in a child so it binds nothing else.)"""
    import subprocess
    import sys

    code = (
        "import resource, signal, torch\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 16, resource.RLIM_INFINITY))\n"
        "from agents.training.checkpoint import SpillDir, flat_copy\n"
        "from agents.training.errors import CheckpointError\n"
        f"spill = SpillDir({str(tmp_path)!r})\n"
        "small = flat_copy({'a': torch.ones(100)}, spill=spill)\n"
        "assert float(small['a'].sum()) == 100.0\n"
        "try:\n"
        "    flat_copy({'a': torch.ones(1 << 20)}, spill=spill)\n"
        "except CheckpointError as exc:\n"
        "    print('ERROR', exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert "ERROR cannot reserve 4,194,304 bytes for a snapshot in" in out.stdout
    assert list(tmp_path.iterdir()) == []
