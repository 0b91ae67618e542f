"""Keeper duties anyone may perform: seal, finalize, resolve, slash the silent.

Owners and validators run `Keeper.tick` in their loops so a job never stalls
for want of a permissionless transaction. Every action is idempotent: a
revert because someone else acted first is expected and ignored.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from agents.chain.client import EventCursor
from agents.chain.errors import RevertError
from agents.chain.protocol import DisputeStatus, JobStatus, Protocol
from agents.protocol.rounds import Phase, round_phase

log = logging.getLogger(__name__)


@dataclass
class Keeper:
    """Moves one job forward through its permissionless transitions."""

    protocol: Protocol
    job_id: int
    from_block: int = 0
    record_seeds: bool = False  # the owner's keeper stores each seed; others need not
    _cursor: EventCursor | None = field(default=None, repr=False)
    _open: set[int] = field(default_factory=set, repr=False)
    _seeded: set[int] = field(default_factory=set, repr=False)

    def _disputes(self) -> set[int]:
        if self._cursor is None:
            self._cursor = EventCursor(
                self.protocol.client, [("AuditCourt", "ChallengeOpened")], self.from_block
            )
        for ev in self._cursor.poll():
            if int(ev.args["jobId"]) == self.job_id:
                self._open.add(int(ev.args["disputeId"]))
        return self._open

    def phase(self, round_: int) -> Phase:
        """The phase of `round_` of this job now."""
        p = self.protocol
        terms = p.job_terms(self.job_id)
        block = p.client.w3.eth.get_block("latest")
        return round_phase(
            p.round_view(self.job_id, round_),
            now=int(block["timestamp"]),
            block_number=int(block["number"]),
            challenge_window=terms.challenge_window,
            open_disputes=p.open_disputes(self.job_id, round_),
        )

    def tick(self) -> list[str]:
        """Perform whatever permissionless step is due; returns what was done."""
        p = self.protocol
        done: list[str] = []
        now = p.client.now()
        for dispute_id in sorted(self._disputes()):
            d = p.dispute(dispute_id)
            try:
                if d.status == DisputeStatus.AWAITING_RESPONSE and now > d.response_deadline:
                    p.slash_unanswered(dispute_id)
                    done.append(f"slashed unanswered dispute {dispute_id}")
                elif d.status == DisputeStatus.VOTING and now > d.reveal_deadline:
                    p.resolve(dispute_id)
                    done.append(f"resolved dispute {dispute_id}")
                elif d.status.closed:
                    self._open.discard(dispute_id)
            except RevertError as exc:
                log.debug("keeper: dispute %s: %s", dispute_id, exc)
        state = p.job_state(self.job_id)
        if state.status != JobStatus.RUNNING:
            return done
        r = state.current_round
        phase = self.phase(r)
        try:
            if phase is Phase.SEALABLE:
                p.seal_round(self.job_id, r)
                done.append(f"sealed round {r}")
            elif phase is Phase.CHALLENGE and self.record_seeds and r not in self._seeded:
                self._seeded.add(r)
                p.record_audit_seed(self.job_id, r)
                done.append(f"recorded audit seed of round {r}")
            elif phase is Phase.FINALIZABLE:
                p.finalize_round(self.job_id, r)
                done.append(f"finalized round {r}")
        except RevertError as exc:
            log.debug("keeper: round %s: %s", r, exc)
        return done
