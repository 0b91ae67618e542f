"""Which messages a stage accepts: a pure state machine, no sockets, no chain.

A stage in round r runs attempt A of it. It receives two streams: forward
payloads from stage-1 and gradients from stage+1, each in a fixed order
(step-major, micro-batch-minor: GPipe). A message is accepted only if it is
for this job, for this round, from the right neighbour for its direction,
for the current attempt, and exactly the next one of its stream. Anything
else is refused with a reason that names it:

- another job or round ("message for round 2, this stage runs round 1");
- a sender that is not the neighbour for that direction;
- an older attempt ("stale attempt");
- a position already received ("replayed"), or one ahead of the next
  expected ("out of order").

A newer attempt of the same round means a peer restarted the round from the
checkpoint (it died, or timed out on another peer): the stage adopts it
(`Verdict.ADOPT`), restarts from its own checkpoint, and the message then
counts as the first of the new attempt. Signatures are checked by the caller
before a verdict is acted on, so an unsigned message can never move state.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from agents.transport.frames import Header, Kind

FORWARD, BACKWARD = 0, 1


class Verdict(Enum):
    ACCEPT = "accept"
    ADOPT = "adopt"  # a newer attempt of this round: restart, then accept
    FUTURE = "future"  # a later round: the caller checks the chain before refusing
    IGNORE = "ignore"  # a reset of the attempt already running (its echo): nothing to do
    REFUSE = "refuse"


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reason: str = ""


class RoundGuard:
    """Per-stream cursors of one stage in one (round, attempt)."""

    def __init__(
        self, job_id: int, stage: int, num_stages: int, steps: int, micro_batches: int
    ) -> None:
        self.job_id = job_id
        self.stage = stage
        self.num_stages = num_stages
        self.steps = steps
        self.micro_batches = micro_batches
        self.round = -1
        self.attempt = -1
        self._next: dict[int, tuple[int, int]] = {}

    def begin(self, round_: int, attempt: int) -> None:
        """Start (or restart) `round_` under `attempt`: both streams expect (0, 0)."""
        self.round, self.attempt = round_, attempt
        self._next = {FORWARD: (0, 0), BACKWARD: (0, 0)}

    def expected_sender(self, direction: int) -> int:
        return self.stage - 1 if direction == FORWARD else self.stage + 1

    def check(self, h: Header, sender_stage: int) -> Decision:
        """Decide on `h`, which arrived over the connection of `sender_stage`'s provider."""
        if h.job_id != self.job_id:
            return _refuse(f"{h.describe()}: message for job {h.job_id}, this is job {self.job_id}")
        if h.kind not in (Kind.DATA, Kind.RESET):
            return _refuse(f"{h.describe()}: not a training message")
        if h.stage != sender_stage:
            return _refuse(
                f"{h.describe()}: claims stage {h.stage} but came from stage {sender_stage}'s "
                "provider"
            )
        if abs(sender_stage - self.stage) != 1:
            return _refuse(f"{h.describe()}: stage {sender_stage} is not a neighbour")
        if h.kind is Kind.DATA and self.expected_sender(h.direction) != sender_stage:
            return _refuse(
                f"{h.describe()}: direction {h.direction} must come from stage "
                f"{self.expected_sender(h.direction)}"
            )
        if h.round > self.round:
            return Decision(
                Verdict.FUTURE,
                f"{h.describe()}: message for round {h.round}, this stage runs round {self.round}",
            )
        if h.round < self.round:
            return _refuse(
                f"{h.describe()}: message for round {h.round}, this stage runs round {self.round}"
            )
        if h.attempt < self.attempt:
            if h.kind is Kind.RESET:
                return Decision(Verdict.IGNORE)  # attempts converge on the newest
            return _refuse(f"{h.describe()}: stale attempt (current attempt {self.attempt})")
        if h.attempt > self.attempt:
            if h.kind is Kind.DATA and h.key != (0, 0):
                return _refuse(f"{h.describe()}: a new attempt must start at step 0 micro-batch 0")
            return Decision(Verdict.ADOPT)
        if h.kind is Kind.RESET:
            return Decision(Verdict.IGNORE)
        want = self._next[h.direction]
        if h.key < want:
            return _refuse(
                f"{h.describe()}: replayed (step {want[0]} micro-batch {want[1]} is next)"
            )
        if h.key > want:
            return _refuse(
                f"{h.describe()}: out of order (expected step {want[0]} micro-batch {want[1]})"
            )
        return Decision(Verdict.ACCEPT)

    def accepted(self, h: Header) -> None:
        """Advance the stream of `h` past it (call after the payload checked out)."""
        step, mb = h.key
        mb += 1
        if mb == self.micro_batches:
            step, mb = step + 1, 0
        self._next[h.direction] = (step, mb)


def _refuse(reason: str) -> Decision:
    return Decision(Verdict.REFUSE, reason)
