"""Fault injection for the audits' tests, the benchmark and the demo (never for production).

Production classes do not know how to cheat. A dishonest provider is an
honest one with a small subclass swapped in, as in hivemind's
`FaultyAverager`: `FaultyStageWorker` lies in its computation (it hashes what
it really did, so only a replay or a structural check can catch it), and
`FaultyProviderAgent` lies in what it publishes or commits.

Every fault is active only in `fault_rounds`.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from enum import Enum
from typing import Any

import torch

from agents.lineage.documents import RoundRecord
from agents.roles.provider import ProviderAgent
from agents.roles.replay import ReplayWorker
from agents.spec import JobSpec
from agents.training.data import MicroBatch
from agents.training.worker import StageWorker


class Fault(Enum):
    """The cheats a provider can be made to commit; the value is the demo/CLI name."""

    # computation (FaultyStageWorker)
    FAKE_GRADIENT = "fake-gradient"  # halves the outgoing gradient and the parameter update
    SKIP_STEPS = "skip-steps"  # does no optimizer update but records the step
    WRONG_DATA = "wrong-data"  # stage 0 / last stage read bytes next to the seeded window
    POISON_MICRO_BATCH = "poison-micro-batch"  # made-up gradient on the last micro-batch only
    SWAP_WEIGHTS = "swap-weights"  # other weights between steps 0 and 1, honest from there
    ARBITRARY_INIT = "arbitrary-init"  # round 0 from other weights than the committed ones
    # signs and sends other activations than its leaf records, on one micro-batch a step
    # (transport mode: the only mode whose payloads are signed)
    SUBSTITUTE_PAYLOAD = "substitute-payload"
    # publication (FaultyProviderAgent)
    WITHHOLD_BUNDLES = "withhold-bundles"  # never publish audit bundles nor answer challenges
    GARBAGE_RECORD = "garbage-record"  # commit the real root, publish a record that lies
    SPEC_SWAP = "spec-swap"  # trains under lr ~ 0 and names that spec in record and bundle
    DATASET_SWAP = "dataset-swap"  # trains on another dataset, named in record and bundle
    OLD_RECORD = "old-record"  # re-commits its previous round's root and record
    WRONG_CHECKPOINT = "wrong-checkpoint"  # publishes a checkpoint the leaves do not end in

    @classmethod
    def parse(cls, name: str) -> Fault:
        """A fault from its value ('fake-gradient') or member name ('FAKE_GRADIENT')."""
        for f in cls:
            if name in (f.value, f.name, f.value.replace("-", "_")):
                return f
        raise ValueError(f"unknown fault {name!r}; one of {', '.join(f.value for f in cls)}")


WORKER_FAULTS = frozenset(
    {
        Fault.FAKE_GRADIENT,
        Fault.SKIP_STEPS,
        Fault.WRONG_DATA,
        Fault.POISON_MICRO_BATCH,
        Fault.SWAP_WEIGHTS,
        Fault.ARBITRARY_INIT,
        Fault.SUBSTITUTE_PAYLOAD,
    }
)


def _perturb(worker: StageWorker, scale: float = 1e-2) -> None:
    """Nudge every parameter by a fixed pattern (weights nobody committed to)."""
    with torch.no_grad():
        for p in worker.module.parameters():
            p.add_(torch.full_like(p, scale))
    worker._hash_cache = None


def _substituted(payload: dict) -> dict:
    """Other activations in the same format: every float tensor scaled (new tensors, so the
    payload the worker logged, hashed and keeps for its bundle stays the honest one)."""
    return {
        k: _substituted(v)
        if isinstance(v, dict)
        else (v * 1.5 if isinstance(v, torch.Tensor) and v.is_floating_point() else v)
        for k, v in payload.items()
    }


class FaultyStageWorker(StageWorker):
    """A StageWorker that commits `fault` in `fault_rounds`."""

    def __init__(
        self,
        spec: JobSpec,
        stage: int,
        *,
        store: Any,
        state: bytes | None = None,
        fault: Fault,
        fault_rounds: frozenset[int] = frozenset(),
        fault_steps: frozenset[int] | None = None,
        snapshot_dir: str | os.PathLike | None = None,
    ) -> None:
        super().__init__(spec, stage, store=store, state=state, snapshot_dir=snapshot_dir)
        self.fault = fault
        self.fault_rounds = frozenset(fault_rounds)
        # None: every step of a faulty round; else only these steps (the audit benchmark's
        # cheater falsifies a chosen fraction of its steps).
        self.fault_steps = None if fault_steps is None else frozenset(fault_steps)
        if fault is Fault.ARBITRARY_INIT and state is None and 0 in self.fault_rounds:
            _perturb(self)

    def _active(self, fault: Fault) -> bool:
        if self.fault is not fault or self._round not in self.fault_rounds:
            return False
        return self.fault_steps is None or self._step in self.fault_steps

    def _consume(self, step: int, micro_batch: int, batch: MicroBatch) -> MicroBatch:
        if not self._active(Fault.WRONG_DATA):
            return batch
        source = self._data_source()
        shifted = []
        for cid, offset, length in batch.windows:
            # The window one byte later (or earlier at a shard's end).
            moved = offset + 1 if offset + 1 + length <= source._sizes[cid] else offset - 1
            shifted.append((cid, moved, length))
        return source.read(shifted)

    def _gradient_to_send(self, micro_batch: int, grad: torch.Tensor) -> torch.Tensor:
        if self._active(Fault.FAKE_GRADIENT):
            return grad * 0.5
        if self._active(Fault.POISON_MICRO_BATCH) and micro_batch == self.micro_batches - 1:
            return grad * 0.5
        return grad

    def _apply_update(self) -> None:
        if self._active(Fault.SKIP_STEPS):
            return
        if self._active(Fault.FAKE_GRADIENT):
            for p in self.module.parameters():
                if p.grad is not None:
                    p.grad.mul_(0.5)
        super()._apply_update()

    def forward(self, step: int, micro_batch: int, payload=None, **kw):
        out = super().forward(step, micro_batch, payload, **kw)
        if (
            self._active(Fault.SUBSTITUTE_PAYLOAD)
            and micro_batch == self.micro_batches - 1
            and isinstance(out, dict)
        ):
            # Recorded the honest output in its leaf (its own replay matches); hands the
            # transport other activations, which it then signs with its staked key.
            return _substituted(out)
        return out

    def step(self, step: int) -> None:
        super().step(step)
        if self._active(Fault.SWAP_WEIGHTS) and step == 0:
            _perturb(self)


def worker_factory(fault: Fault | None, fault_rounds: frozenset[int] | tuple[int, ...] = ()):
    """What StageActorShell/StageHost take as `worker_factory` (None: honest)."""
    if fault is None or fault not in WORKER_FAULTS:
        return None
    return functools.partial(FaultyStageWorker, fault=fault, fault_rounds=frozenset(fault_rounds))


def swapped_spec(spec: JobSpec, fault: Fault, other_dataset: str | None = None) -> JobSpec:
    """The spec a SPEC_SWAP / DATASET_SWAP provider really trains under."""
    if fault is Fault.SPEC_SWAP:
        return spec.model_copy(
            update={"optimizer": spec.optimizer.model_copy(update={"lr": 1e-12})}
        )
    if fault is Fault.DATASET_SWAP:
        if other_dataset is None:
            raise ValueError("dataset-swap needs the CID of another dataset")
        return spec.model_copy(update={"dataset": other_dataset})
    return spec


def reversed_dataset(store: Any, dataset_cid: str) -> str:
    """Another dataset of the same size: every shard's bytes reversed (a DATASET_SWAP's data)."""
    from agents.lineage import load_document, save_document
    from agents.lineage.documents import DatasetManifest, ShardRef

    manifest = load_document(store, dataset_cid, DatasetManifest)
    shards = [
        ShardRef(cid=store.add_bytes(store.cat(s.cid)[::-1]), size=s.size, tokens=s.tokens)
        for s in manifest.shards
    ]
    other = manifest.model_copy(update={"name": manifest.name + "-swapped", "shards": shards})
    return save_document(store, other)


class FaultyProviderAgent(ProviderAgent):
    """A ProviderAgent that commits `fault` in `fault_rounds` (SPEC/DATASET_SWAP: always)."""

    def __init__(
        self,
        *args: Any,
        fault: Fault,
        fault_rounds: frozenset[int] = frozenset(),
        other_dataset: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.fault = fault
        self.fault_rounds = frozenset(fault_rounds)
        self.other_dataset = other_dataset
        self._swapped_cid: str | None = None

    def _cheating(self, fault: Fault, round_: int) -> bool:
        return self.fault is fault and round_ in self.fault_rounds

    def _host_spec(self) -> JobSpec:
        if self.fault is Fault.DATASET_SWAP and self.other_dataset is None:
            self.other_dataset = reversed_dataset(self.store, self.spec.dataset)
        return swapped_spec(self.spec, self.fault, self.other_dataset)

    def _worker_factory(self):
        return worker_factory(self.fault, self.fault_rounds)

    def _record_spec_cid(self) -> str:
        if self.fault in (Fault.SPEC_SWAP, Fault.DATASET_SWAP):
            from agents.lineage import save_document

            if self._swapped_cid is None:
                self._swapped_cid = save_document(self.store, self._host_spec())
            return self._swapped_cid
        return super()._record_spec_cid()

    def _published(self, round_: int, record: RoundRecord, result) -> tuple[RoundRecord, str]:
        from agents.lineage import load_document

        if self._cheating(Fault.GARBAGE_RECORD, round_):
            # Claims other outputs than it committed: nobody can prove a leaf against the root.
            forged = [
                leaf.model_copy(update={"output": "0x" + "ee" * 32}) for leaf in record.leaves
            ]
            return record.model_copy(update={"leaves": forged}), result.trace_root
        if self._cheating(Fault.OLD_RECORD, round_) and round_ > 0:
            old = self.p.commitment(self.job_id, round_ - 1, self.stage)
            return load_document(self.store, old.record_cid, RoundRecord), old.trace_root
        if self._cheating(Fault.WRONG_CHECKPOINT, round_):
            # The checkpoint the round started from, presented as the one it ended in.
            start = record.parent_checkpoint or record.new_checkpoint
            if start == record.new_checkpoint:
                state = bytearray(result.state_bytes)
                state[-1] ^= 1  # not even a loadable state: still nothing the leaves end in
                start = self.store.add_bytes(bytes(state))
            return record.model_copy(update={"new_checkpoint": start}), result.trace_root
        return record, result.trace_root

    def _withholds(self, round_: int) -> bool:
        return self._cheating(Fault.WITHHOLD_BUNDLES, round_)


def provider_class(fault: Fault | None):
    """The provider agent class for `fault` (the honest one for None)."""
    return ProviderAgent if fault is None else FaultyProviderAgent


# Preludes run in the replay child before the replay imports anything: ATen reads its
# kernel set once, at the first op, and a torch build is what `torch.__version__` says.
PLATFORMS = {
    "default-kernels": (
        "import os\nos.environ['ATEN_CPU_CAPABILITY'] = 'default'\nimport torch\ntorch.ones(2) + 1"
    ),
    "other-torch": "import torch\ntorch.__version__ = '2.12.0+cpu'",
}


class ForeignReplayWorker(ReplayWorker):
    """A validator's replay child on another platform (kernel set or torch build), to show
    that a validator that cannot reproduce the provider's platform never accuses it."""

    def __init__(self, store_spec: str, platform: str, timeout: float = 300.0):
        if platform not in PLATFORMS:
            raise ValueError(f"unknown platform {platform!r}; one of {', '.join(PLATFORMS)}")
        super().__init__(store_spec, "", timeout)
        self.platform = platform

    def _start(self) -> subprocess.Popen:
        argv = ["--store", self.store_spec, "--serve"]
        code = f"{PLATFORMS[self.platform]}\nimport sys\nfrom agents.training.replay import main\n"
        code += f"sys.exit(main({argv!r}))"
        env = {k: v for k, v in os.environ.items() if k != "ATEN_CPU_CAPABILITY"}
        return subprocess.Popen(
            [sys.executable, "-c", code],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )
