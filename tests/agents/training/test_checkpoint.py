"""Stage checkpoints: safetensors round trip, and every corruption is a clear error."""

from __future__ import annotations

import json

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
