"""A provider's stage actor: the training engine's actor shell plus round bookkeeping.

The pipeline driver calls `begin_round/forward/backward/step/end_round` on
every stage's host; the host's own provider calls `prepare` (load the round's
starting checkpoint from the content store) and `take_result`. Two rules keep
the protocol sound:

- `end_round` returns the result WITHOUT the state bytes: the driver, who may
  be another provider, never receives this stage's weights.
- `begin_round` always restarts from the prepared checkpoint, so a driver that
  retries a round after any failure recomputes exactly the same thing.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from agents.lineage.documents import JobSpec
from agents.training.errors import PipelineError
from agents.training.pipeline import StageActorShell
from agents.training.worker import StageRoundResult


class StageHost(StageActorShell):
    """One stage of one job, owned by one provider."""

    def __init__(self, spec_json: dict, stage: int, *, store: Any, worker_factory: Any = None):
        spec = JobSpec.model_validate(spec_json)
        super().__init__(spec, stage, store=store, worker_factory=worker_factory)
        self._spec = spec
        self._prepared: tuple[int, int] | None = None
        self._start_bytes: bytes | None = None
        self._start_hash = ""
        self._result: StageRoundResult | None = None

    def prepare(self, job_id: int, round_: int, checkpoint_cid: str | None) -> str:
        """Load the state round `round_` starts from (None: the spec's initial state)."""
        store = self.worker.store
        start = store.cat(checkpoint_cid) if checkpoint_cid else None
        self._reset(start)
        self._start_bytes = self.worker.state_bytes()
        self._start_hash = self.worker.state_hash()
        self._prepared = (job_id, round_)
        if self._result is not None and (self._result.job_id, self._result.round) != self._prepared:
            self._result = None
        return self._start_hash

    def _reset(self, state: bytes | None) -> None:
        self.worker = self._worker_factory(
            self._spec, self.worker.stage, store=self.worker.store, state=state
        )
        self._failure = None

    def status(self) -> dict:
        """(job, round) prepared for, whether its result is here, the start hash."""
        return {
            "prepared": self._prepared,
            "result": (self._result.job_id, self._result.round) if self._result else None,
            "start_hash": self._start_hash,
            "stage": self.worker.stage,
        }

    def begin_round(self, job_id: int, round: int) -> None:
        """Start (or restart) the prepared round from its checkpoint."""
        if self._prepared != (job_id, round):
            raise PipelineError(
                f"stage {self.worker.stage} is prepared for {self._prepared}, not {(job_id, round)}"
            )
        # A round left open by a lost peer, a failure, or any state change: only the
        # checkpoint is sound, so every attempt starts from it.
        if (
            self._failure is not None
            or self.worker._round is not None
            or self.worker.state_hash() != self._start_hash
        ):
            self._reset(self._start_bytes)
        super().begin_round(job_id, round)

    def end_round(self) -> StageRoundResult:
        """Keep the full result here; hand the driver everything but the weights."""
        self._result = super().end_round()
        return dataclasses.replace(self._result, state_bytes=b"")

    def end_round_full(self) -> StageRoundResult:
        """In-process use (the transport loop): keep and return the full result."""
        self._result = super().end_round()
        return self._result

    def node_id(self) -> str:
        """The Ray node this host runs on (placement checks)."""
        import ray

        return ray.get_runtime_context().get_node_id()

    def take_result(self, job_id: int, round_: int) -> StageRoundResult | None:
        """This stage's full result of (job, round), if it has been trained."""
        r = self._result
        return r if r is not None and (r.job_id, r.round) == (job_id, round_) else None


def host_actor_name(job_id: int, stage: int, provider: str) -> str:
    """The Ray actor name other agents look a stage's host up by."""
    return f"tessera-stage-{job_id}-{stage}-{provider.lower()}"
