"""Client-side check of job terms against the bounds JobMarket enforces.

The contract rejects a job outside its bounds at posting, so a posted job is always in
bounds on the chain that holds it; a provider still checks before staking (a job read from
another deployment, or bounds changed by a redeploy), and refuses with one line naming the
field. Pure: the bounds come in as a dict of JobMarket constant name -> value.
"""

from __future__ import annotations

from typing import Any

from agents.errors import TesseraError


class TermsOutOfBounds(TesseraError):
    """A job term is outside the protocol's bounds; the message names the field."""


def _ranges(b: dict[str, int]) -> dict[str, tuple[int, int]]:
    return {
        "num_stages": (1, b["MAX_STAGES"]),
        "rounds": (1, b["MAX_ROUNDS"]),
        "steps_per_round": (1, b["MAX_STEPS_PER_ROUND"]),
        "micro_batches": (1, b["MAX_MICRO_BATCHES"]),
        "reward_per_stage_round": (0, b["MAX_TOKEN_AMOUNT"]),
        "shares_per_stage_round": (1, b["MAX_SHARES_PER_STAGE_ROUND"]),
        "min_stake": (1, b["MAX_TOKEN_AMOUNT"]),
        "commit_window": (b["MIN_COMMIT_WINDOW"], b["MAX_COMMIT_WINDOW"]),
        "challenge_window": (b["minChallengeWindow"], b["MAX_CHALLENGE_WINDOW"]),
        "audit_leaves": (1, b["MAX_AUDIT_LEAVES"]),
        "owner_share_bps": (0, b["MAX_OWNER_SHARE_BPS"]),
        "validator_pool": (0, b["MAX_TOKEN_AMOUNT"]),
    }


def check_job_terms(terms: Any, bounds: dict[str, int]) -> None:
    """Raise TermsOutOfBounds for the first term of `terms` (a JobTerms) outside `bounds`."""
    for field, (lo, hi) in _ranges(bounds).items():
        value = int(getattr(terms, field))
        if not lo <= value <= hi:
            raise TermsOutOfBounds(
                f"job term {field} = {value} is outside the protocol's bounds [{lo}, {hi}]"
            )
    leaves = terms.steps_per_round * terms.micro_batches
    if leaves > bounds["MAX_LEAVES"]:
        raise TermsOutOfBounds(
            f"job term micro_batches: steps_per_round * micro_batches = {leaves} leaves is "
            f"above the protocol's bound {bounds['MAX_LEAVES']}"
        )
    if terms.audit_leaves > leaves:
        raise TermsOutOfBounds(
            f"job term audit_leaves = {terms.audit_leaves} is above the {leaves} leaves a round has"
        )
