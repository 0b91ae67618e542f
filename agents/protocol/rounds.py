"""Where a round stands, computed from on-chain views and the chain's clock.

Agents poll the chain and call `round_phase`; keeping the decision pure makes
it testable without a chain and identical for every role.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Phase(Enum):
    """The protocol's phases of one round, in order."""

    NOT_STARTED = "not-started"  # a stage is vacant, or an earlier round is open
    TRAINING = "training"  # commits accepted until the commit deadline
    SEALABLE = "sealable"  # deadline passed with missing commits: anyone may seal
    AWAITING_SEED = "awaiting-seed"  # sealed; the seed block is not mined yet
    CHALLENGE = "challenge"  # audit seed known, challenge window open
    DISPUTED = "disputed"  # window closed but a dispute of this round is open
    FINALIZABLE = "finalizable"  # anyone may finalize
    FINALIZED = "finalized"


@dataclass(frozen=True)
class RoundView:
    """`JobMarket.roundInfo(jobId, round)` as read from the chain."""

    start: int
    commit_deadline: int
    sealed_at: int
    seal_block: int
    finalized: bool

    @classmethod
    def from_tuple(cls, t: tuple) -> RoundView:
        """Build from the contract's return tuple."""
        return cls(int(t[0]), int(t[1]), int(t[2]), int(t[3]), bool(t[4]))


def round_phase(
    view: RoundView,
    *,
    now: int,
    block_number: int,
    challenge_window: int,
    open_disputes: int,
) -> Phase:
    """The phase of a round at chain time `now` and height `block_number`."""
    if view.finalized:
        return Phase.FINALIZED
    if view.start == 0:
        return Phase.NOT_STARTED
    if view.sealed_at == 0:
        return Phase.SEALABLE if now > view.commit_deadline else Phase.TRAINING
    if block_number <= view.seal_block + 1:
        return Phase.AWAITING_SEED
    if now <= view.sealed_at + challenge_window:
        return Phase.CHALLENGE
    return Phase.DISPUTED if open_disputes else Phase.FINALIZABLE
