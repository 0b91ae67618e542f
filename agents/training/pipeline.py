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
- `RayPipeline` makes ONE call per stage and step (`run_steps`): each actor
  runs its own steps in GPipe's order (`links.stage_order`, which says why
  not one-forward-one-backward), so stage s works on micro-batch m+1 while
  stage s+1 works on m, and hands its payloads straight to its neighbours
  over `agents.training.links`
  (TCP between the actors, a safetensors payload per frame, blocking while it
  waits). The driver only links the stages, starts each step and collects
  the round results; between steps a host answers its provider's calls.
  Making every forward and backward an actor call instead cost about a
  millisecond of Ray's CPU per call, 36 calls a step on the bench's 4 stages
  of 4 micro-batches: a fifth of the actors' CPU, plus the driver's.
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
from agents.training.links import LinkClosed, StageLinks, new_token, stage_order
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


# numpy has no bfloat16: such a tensor travels as its int16 bits, tagged.
_BF16 = "bfloat16"


def _as_array(t: torch.Tensor) -> Any:
    if t.dtype == torch.bfloat16:
        return (_BF16, t.view(torch.int16).numpy())
    return t.numpy()


def to_wire(payload: Any) -> Any:
    """Torch payload -> numpy (what Ray moves cheaply); other values unchanged."""
    if isinstance(payload, dict):
        return {k: _as_array(v) for k, v in payload.items()}
    if isinstance(payload, torch.Tensor):
        return _as_array(payload)
    return payload


def _as_tensor(a: Any) -> torch.Tensor:
    if isinstance(a, tuple) and len(a) == 2 and a[0] == _BF16 and isinstance(a[1], np.ndarray):
        return _as_tensor(a[1]).view(torch.bfloat16)
    if not isinstance(a, np.ndarray):
        raise PipelineError(f"a payload value is {type(a).__name__}, not an array")
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
    if isinstance(payload, (np.ndarray, tuple)):
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
        self._links: StageLinks | None = None

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

    def step(self, step: int) -> None:
        """See StageWorker.step."""
        self._call(self.worker.step, step)

    def end_round(self, with_state: bool = True) -> StageRoundResult:
        """See StageWorker.end_round."""
        return self._call(self.worker.end_round, with_state=with_state)

    def open_links(self) -> tuple[str, int]:
        """Listen for the previous stage's link (see agents.training.links); the address."""
        import ray

        self.close_links()
        self._links = StageLinks(self.worker.stage, ray.util.get_node_ip_address())
        return self._links.address

    def join_links(self, downstream: tuple[str, int] | None, token: bytes, timeout: float) -> None:
        """Connect to the next stage and accept the previous one (both present `token`)."""
        if self._links is None:
            raise PipelineError(f"stage {self.worker.stage}: join_links before open_links")
        try:
            self._links.join(
                downstream, token, has_upstream=not self.worker.is_first, timeout=timeout
            )
        except BaseException:
            self.close_links()
            raise

    def close_links(self) -> None:
        """Close this stage's links (its neighbours' next receive fails at once)."""
        if self._links is not None:
            self._links.close()
            self._links = None

    def run_steps(
        self,
        job_id: int,
        round: int,
        start: int,
        count: int,
        with_state: bool = True,
        data: DataSource | None = None,
    ) -> StageRoundResult | None:
        """Train steps start..start+count-1 of a round in `stage_order`, payloads over
        the joined links; step 0 begins the round and the last step ends it (and
        returns its result).

        The driver calls this a step at a time, so the provider's own calls (a
        status, an audit bundle while a challenge window runs) wait one step at
        most, never a round. On any failure the links close (so the neighbours
        stop too) and the round counts as failed (see `begin_round`)."""
        links, w = self._links, self.worker
        if links is None or (links.up is None) != w.is_first or (links.down is None) != w.is_last:
            raise PipelineError(f"stage {w.stage}: run_steps before its links were joined")
        edge = (w.is_first or w.is_last) and data is not None
        steps_per_round = w.spec.training.steps_per_round
        try:
            if start == 0:
                self.begin_round(job_id, round)
                w = self.worker  # a host restarts its round from a fresh worker
            elif self._failure is not None:
                raise self._failure

            def forward(step: int, mb: int, x: Any) -> Any:
                batch = data.micro_batch(job_id, round, step, mb) if edge else None
                return self._call(w.forward, step, mb, x, batch=batch)

            links.run_steps(
                stage_order(w.stage, w.spec.num_stages, w.micro_batches),
                range(start, min(start + count, steps_per_round)),
                forward,
                lambda step, mb, g: self._call(w.backward, step, mb, g),
                self.step,
            )
            if start + count < steps_per_round:
                return None
            return self.end_round() if with_state else self.end_round(with_state=False)
        except BaseException as exc:
            self.close_links()
            if self._failure is None and isinstance(exc, Exception):
                self._failure = exc
            raise

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


def _root_cause(errors: list[Exception]) -> Exception:
    """The first error that is not a stage seeing its link close because of another's."""
    for exc in errors:
        cause = getattr(exc, "cause", None)
        if not isinstance(cause, LinkClosed):
            return exc
    return errors[0]


class RayPipeline:
    """Drives StageActor handles (one per provider) without a driver round-trip per hop."""

    def __init__(
        self, actors: Sequence[Any], *, link_timeout: float = 600.0, steps_per_call: int = 1
    ) -> None:
        import ray

        if steps_per_call < 1:
            raise PipelineError("steps_per_call must be at least 1")
        self._ray = ray
        self.actors = list(actors)
        self.link_timeout = link_timeout
        self.steps_per_call = steps_per_call
        self._linked = False
        info = ray.get([a.describe.remote() for a in self.actors])
        _check_stages([i["stage"] for i in info], [i["num_stages"] for i in info])
        shapes = {(i["steps_per_round"], i["micro_batches"], i["seq_len"]) for i in info}
        if len(shapes) != 1:
            raise PipelineError(f"stages disagree on the round shape: {sorted(shapes)}")
        self.steps_per_round, self.micro_batches, self.seq_len = shapes.pop()

    def train_round(
        self, job_id: int, round: int, data: DataSource | None = None, *, with_state: bool = True
    ) -> list[StageRoundResult]:
        """Train one round: a call per stage and step, payloads over the stages' own links.

        `with_state=False` keeps each stage's checkpoint bytes in its actor. A
        failed round raises the error of the stage that failed first (the
        others only saw their links close) and relinks on the next call."""
        last = len(self.actors) - 1
        if not self._linked:
            self._link()
        results: list = []
        for start in range(0, self.steps_per_round, self.steps_per_call):
            results = self._gather(
                [
                    a.run_steps.remote(
                        job_id,
                        round,
                        start,
                        self.steps_per_call,
                        with_state,
                        data if s in (0, last) else None,
                    )
                    for s, a in enumerate(self.actors)
                ]
            )
        return results

    def _gather(self, refs: list) -> list:
        results, errors = [], []
        for ref in refs:
            try:
                results.append(self._ray.get(ref))
            except Exception as exc:
                errors.append(exc)
        if errors:
            self._linked = False
            raise _root_cause(errors)
        return results

    def _link(self) -> None:
        ray = self._ray
        addresses = ray.get([a.open_links.remote() for a in self.actors])
        token = new_token()
        downstream = [*addresses[1:], None]
        ray.get(
            [
                a.join_links.remote(down, token, self.link_timeout)
                for a, down in zip(self.actors, downstream, strict=True)
            ]
        )
        self._linked = True

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
