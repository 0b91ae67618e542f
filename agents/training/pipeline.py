"""Drivers that run a round through the stage workers.

Per step every stage runs the forwards of micro-batches 0..M-1, their
backwards in the same order, then its optimizer step; the parameters do not
change inside a step, so how forwards and backwards interleave changes no bit
(StageWorker checks the order that matters).

- `InProcessPipeline` calls `StageWorker`s directly (unit tests, the GPU
  machine without Ray). With one thread there is nothing to overlap, so it
  takes one micro-batch at a time, forward through every stage then
  backward, as a single process does: only one micro-batch's activations are
  alive (in one process GPipe's order, holding all of them, cost 13% more
  CPU at 2,048-token micro-batches).
- `RayPipeline` drives `StageActor`s in GPipe's order (all forwards, then all
  backwards), so stage s works on micro-batch m+1 while stage s+1 works on
  m. It submits every call at once, passing
  each actor's ObjectRef straight to the next actor, and only collects the
  round results at the end — no `ray.get` per hop. Actor calls from one caller
  run in submission order, and each worker checks that order anyway.

Payloads travel between actors as numpy arrays (Ray moves those zero-copy);
the actor shell converts them to and from torch tensors.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.training.data import DataSource
from agents.training.errors import DeterminismError, PipelineError
from agents.training.worker import StageRoundResult, StageWorker


def _check_stages(stages: Sequence[int], num_stages: Sequence[int]) -> None:
    if not stages:
        raise PipelineError("a pipeline needs at least one stage")
    if list(stages) != list(range(len(stages))) or set(num_stages) != {len(stages)}:
        raise PipelineError(
            f"workers hold stages {list(stages)} of {sorted(set(num_stages))}; "
            f"need 0..{len(stages) - 1} in order"
        )


def _generate(
    prompt: bytes,
    max_new_tokens: int,
    seq_len: int,
    next_logits,
    *,
    temperature: float,
    seed: int,
) -> bytes:
    """Continue `prompt` byte by byte; `next_logits(window)` runs the stages forward."""
    gen = torch.Generator().manual_seed(seed)
    out = bytearray(prompt)
    if not out:
        raise PipelineError("generation needs a non-empty prompt")
    for _ in range(max_new_tokens):
        window = np.array([list(out[-seq_len:])], dtype=np.int64)
        out.append(_sample(next_logits(window), temperature, gen))
    return bytes(out)


def _sample(logits: torch.Tensor, temperature: float, gen: torch.Generator | None) -> int:
    if temperature <= 0:
        return int(torch.argmax(logits[0]))
    probs = torch.softmax(logits[0] / temperature, dim=-1)
    return int(torch.multinomial(probs, 1, generator=gen))


class InProcessPipeline:
    """Drives stage workers living in this process."""

    def __init__(self, workers: Sequence[StageWorker]) -> None:
        _check_stages([w.stage for w in workers], [w.spec.num_stages for w in workers])
        self.workers = list(workers)
        self.spec = workers[0].spec

    def train_round(
        self, job_id: int, round: int, data: DataSource | None = None, *, with_state: bool = True
    ) -> list[StageRoundResult]:
        """Train one round; each stage reads its own data unless `data` is given.

        `with_state=False`: the results carry no checkpoint bytes (see
        `StageWorker.end_round`)."""
        t = self.spec.training
        for w in self.workers:
            w.begin_round(job_id, round)
        for step in range(t.steps_per_round):
            for mb in range(t.micro_batches):
                batch = data.micro_batch(job_id, round, step, mb) if data is not None else None
                x: Any = None
                for w in self.workers:
                    edge = w.is_first or w.is_last
                    x = w.forward(step, mb, x, batch=batch if edge else None)
                g = None
                for w in reversed(self.workers):
                    g = w.backward(step, mb, g)
            for w in self.workers:
                w.step(step)
        return [w.end_round(with_state=with_state) for w in self.workers]

    def generate(
        self, prompt: bytes, max_new_tokens: int, *, temperature: float = 0.0, seed: int = 0
    ) -> bytes:
        """Continue `prompt` byte by byte through the stages (forward only, no trace)."""

        def next_logits(window: np.ndarray) -> torch.Tensor:
            x = torch.from_numpy(window)
            for w in self.workers:
                x = w.infer(x)
            return x

        return _generate(
            prompt,
            max_new_tokens,
            self.spec.model.seq_len,
            next_logits,
            temperature=temperature,
            seed=seed,
        )


def to_wire(payload: Any) -> Any:
    """Torch payload -> numpy (what Ray moves cheaply); other values unchanged."""
    if isinstance(payload, dict):
        return {k: v.numpy() for k, v in payload.items()}
    if isinstance(payload, torch.Tensor):
        return payload.numpy()
    return payload


def _as_tensor(a: np.ndarray) -> torch.Tensor:
    if a.flags.writeable:
        return torch.from_numpy(a)
    # Arrays from the object store are read-only views of shared memory. The
    # worker never writes into a received payload (decoding makes new tensors),
    # so it is wrapped without a copy; torch's warning about it is moot here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(a)


def from_wire(payload: Any) -> Any:
    """Numpy payload -> torch, without copying."""
    if isinstance(payload, dict):
        return {k: _as_tensor(v) for k, v in payload.items()}
    if isinstance(payload, np.ndarray):
        return _as_tensor(payload)
    return payload


class StageActorShell:
    """The body of `StageActor`: a StageWorker behind Ray-friendly methods, no policy."""

    def __init__(
        self,
        spec: Any,
        stage: int,
        *,
        store: Any,
        state: bytes | None = None,
        num_threads: int | None = None,
        worker_factory: Any = None,
    ) -> None:
        if num_threads is not None and num_threads != spec.determinism.num_threads:
            raise DeterminismError(
                f"actor asked for {num_threads} threads, the spec fixes "
                f"{spec.determinism.num_threads}"
            )
        if isinstance(store, str | Path):
            from agents.storage import open_store

            store = open_store(store)
        # A StageWorker unless a test or the demo injects a faulty subclass (agents.faults).
        self._worker_factory = worker_factory or StageWorker
        self.worker = self._worker_factory(spec, stage, store=store, state=state)
        # The first failure of a round: later calls (and end_round, the only
        # call the driver waits on) re-raise it instead of an out-of-order error.
        self._failure: Exception | None = None

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        if self._failure is not None:
            raise self._failure
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            self._failure = exc
            raise

    def describe(self) -> dict[str, Any]:
        """Stage index, stage count and round shape."""
        w = self.worker
        return {
            "stage": w.stage,
            "num_stages": w.spec.num_stages,
            "steps_per_round": w.spec.training.steps_per_round,
            "micro_batches": w.micro_batches,
            "seq_len": w.spec.model.seq_len,
        }

    def begin_round(self, job_id: int, round: int) -> None:
        """See StageWorker.begin_round."""
        if self._failure is not None:
            # Part of the failed round may have been applied: only a checkpoint is sound.
            raise PipelineError(
                f"stage {self.worker.stage}: the last round failed ({self._failure}); "
                "restart this actor from a checkpoint"
            )
        self._call(self.worker.begin_round, job_id, round)

    def forward(self, step: int, micro_batch: int, payload: Any = None, batch: Any = None) -> Any:
        """See StageWorker.forward; payloads in and out as numpy."""
        return to_wire(
            self._call(self.worker.forward, step, micro_batch, from_wire(payload), batch=batch)
        )

    def backward(self, step: int, micro_batch: int, grad: Any = None) -> Any:
        """See StageWorker.backward; payloads in and out as numpy."""
        return to_wire(self._call(self.worker.backward, step, micro_batch, from_wire(grad)))

    def step(self, step: int) -> None:
        """See StageWorker.step."""
        self._call(self.worker.step, step)

    def end_round(self, with_state: bool = True) -> StageRoundResult:
        """See StageWorker.end_round."""
        return self._call(self.worker.end_round, with_state=with_state)

    def make_audit_bundle(self, leaf_indices: list[int]) -> str:
        """See StageWorker.make_audit_bundle."""
        return self.worker.make_audit_bundle(leaf_indices)

    def received_signatures(self, job_id: int, round_: int) -> dict:
        """See StageWorker.received_signatures."""
        return self.worker.received_signatures(job_id, round_)

    def state_hash(self) -> str:
        """See StageWorker.state_hash."""
        return self.worker.state_hash()

    def process_cpu_seconds(self) -> float:
        """CPU seconds this actor's process has used, all threads (for benchmarks)."""
        return time.process_time()

    def state_bytes(self) -> bytes:
        """See StageWorker.state_bytes."""
        return self.worker.state_bytes()

    def infer(self, x: Any, all_positions: bool = False) -> Any:
        """See StageWorker.infer; numpy in and out."""
        return to_wire(self.worker.infer(from_wire(x), all_positions=all_positions))


_ACTOR_CLASS = None


def _stage_actor() -> Any:
    global _ACTOR_CLASS
    if _ACTOR_CLASS is None:
        try:
            import ray
        except ModuleNotFoundError:
            raise PipelineError("Ray is not installed; use InProcessPipeline") from None
        # num_cpus=0: several torch actors share 2 cores; each pins its own
        # thread count from the spec instead of Ray's CPU accounting.
        _ACTOR_CLASS = ray.remote(num_cpus=0)(StageActorShell)
    return _ACTOR_CLASS


def __getattr__(name: str) -> Any:
    # `StageActor` is built on first use so importing this module never needs Ray.
    if name == "StageActor":
        return _stage_actor()
    raise AttributeError(name)


class RayPipeline:
    """Drives StageActor handles (one per provider) without a driver round-trip per hop."""

    def __init__(self, actors: Sequence[Any]) -> None:
        import ray

        self._ray = ray
        self.actors = list(actors)
        info = ray.get([a.describe.remote() for a in self.actors])
        _check_stages([i["stage"] for i in info], [i["num_stages"] for i in info])
        shapes = {(i["steps_per_round"], i["micro_batches"], i["seq_len"]) for i in info}
        if len(shapes) != 1:
            raise PipelineError(f"stages disagree on the round shape: {sorted(shapes)}")
        self.steps_per_round, self.micro_batches, self.seq_len = shapes.pop()

    def train_round(
        self, job_id: int, round: int, data: DataSource | None = None, *, with_state: bool = True
    ) -> list[StageRoundResult]:
        """Train one round; returns each stage's result (collected once, at the end).

        `with_state=False` keeps each stage's checkpoint bytes in its actor."""
        ray = self._ray
        last = len(self.actors) - 1
        for a in self.actors:
            a.begin_round.remote(job_id, round)
        for step in range(self.steps_per_round):
            for mb in range(self.micro_batches):
                batch = None
                if data is not None:
                    batch = ray.put(data.micro_batch(job_id, round, step, mb))
                x = None
                for s, a in enumerate(self.actors):
                    x = a.forward.remote(step, mb, x, batch if s in (0, last) else None)
            for mb in range(self.micro_batches):
                g = None
                for a in reversed(self.actors):
                    g = a.backward.remote(step, mb, g)
            for a in self.actors:
                a.step.remote(step)
        ends = [
            a.end_round.remote(with_state=False) if not with_state else a.end_round.remote()
            for a in self.actors
        ]
        return ray.get(ends)

    def generate(
        self, prompt: bytes, max_new_tokens: int, *, temperature: float = 0.0, seed: int = 0
    ) -> bytes:
        """Continue `prompt` through the stage actors (one driver get per token)."""

        def next_logits(window: np.ndarray) -> torch.Tensor:
            x: Any = window
            for a in self.actors:
                x = a.infer.remote(x)
            return torch.from_numpy(np.array(self._ray.get(x)))

        return _generate(
            prompt, max_new_tokens, self.seq_len, next_logits, temperature=temperature, seed=seed
        )
