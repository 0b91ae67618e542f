"""Keeper duties anyone may perform: seal, record the seed, finalize, resolve, slash the silent.

Every provider and validator agent (and the owner's) runs `Keeper.tick` in its
loop, so a job never stalls for want of a permissionless transaction, whoever
is still running. Every action is idempotent: a revert because someone else
acted first is expected and ignored.

`describe_job` is the read-only view of the same state machine that
`tessera job status` prints: the phase and the next deadline.
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
    # Storing the seed keeps it readable after blockhash's 256-block horizon; whoever
    # keeps the job does it once per round (a second store by another keeper reverts).
    record_seeds: bool = True
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
            elif phase in (Phase.CHALLENGE, Phase.AWAITING_SEED) and self.record_seeds:
                # The seed is the randomness of one anchor block: poke until it is recorded
                # (a poke before the anchor is a no-op, one after it re-anchors).
                if r not in self._seeded and p.ensure_audit_seed(self.job_id, r, 20.0):
                    self._seeded.add(r)
                    done.append(f"audit seed of round {r} recorded")
            elif phase is Phase.FINALIZABLE:
                p.finalize_round(self.job_id, r)
                done.append(f"finalized round {r}")
        except RevertError as exc:
            log.debug("keeper: round %s: %s", r, exc)
        return done


# What each phase means to a person waiting on it, and who moves it on.
PHASE_TEXT = {
    Phase.NOT_STARTED: "waiting for every stage to have a provider",
    Phase.TRAINING: "training: providers commit their stages",
    Phase.SEALABLE: "commit deadline passed: any agent seals the round",
    Phase.AWAITING_SEED: "sealed: waiting for the audit-seed block",
    Phase.CHALLENGE: "challenge window: validators audit and may challenge",
    Phase.DISPUTED: "disputes open: the committee votes",
    Phase.FINALIZABLE: "awaiting finalize: any agent finalizes the round",
    Phase.FINALIZED: "finalized",
}


def describe_job(protocol: Protocol, job_id: int) -> dict:
    """A job's status as plain data: phase, next deadline, stages, escrow (wei).

    Deadlines are chain timestamps; `seconds_left` counts from the latest block.
    """
    terms = protocol.job_terms(job_id)
    state = protocol.job_state(job_id)
    block = protocol.client.w3.eth.get_block("latest")
    now, height = int(block["timestamp"]), int(block["number"])
    stages = []
    for s in range(terms.num_stages):
        who = protocol.stage_provider(job_id, s)
        stages.append(
            {
                "stage": s,
                "provider": None if int(who, 16) == 0 else who,
                "last_finalized_round": protocol.last_finalized_round(job_id, s),
            }
        )
    finalized = min(st["last_finalized_round"] for st in stages) + 1
    out: dict = {
        "job_id": job_id,
        "status": state.status.name,
        "owner": state.owner,
        "spec_cid": terms.spec_cid,
        "rounds": terms.rounds,
        "rounds_finalized": finalized if state.status != JobStatus.COMPLETED else terms.rounds,
        "current_round": None,
        "phase": state.status.name.lower(),
        "phase_text": {
            JobStatus.OPEN: "open: waiting for providers to join every stage",
            JobStatus.COMPLETED: "completed: every round is finalized",
            JobStatus.CANCELLED: "cancelled: the escrow went back to the owner",
        }.get(state.status, ""),
        "next_deadline": None,
        "deadline_what": None,
        "seconds_left": None,
        "escrow_wei": state.escrow,
        "stages": stages,
        "now": now,
    }
    if state.status != JobStatus.RUNNING:
        return out
    r = state.current_round
    view = protocol.round_view(job_id, r)
    disputes = protocol.open_disputes(job_id, r)
    phase = round_phase(
        view,
        now=now,
        block_number=height,
        challenge_window=terms.challenge_window,
        open_disputes=disputes,
    )
    deadline, what = None, None
    if phase is Phase.TRAINING:
        deadline, what = view.commit_deadline, "commit deadline"
    elif phase in (Phase.AWAITING_SEED, Phase.CHALLENGE):
        deadline, what = view.sealed_at + terms.challenge_window, "challenge window closes"
    out.update(
        current_round=r,
        phase=phase.value,
        phase_text=PHASE_TEXT[phase],
        open_disputes=disputes,
        next_deadline=deadline,
        deadline_what=what,
        seconds_left=None if deadline is None else max(0, deadline - now),
    )
    return out
