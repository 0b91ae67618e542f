"""round_phase: every branch of the round state machine."""

import pytest

from agents.protocol.rounds import Phase, RoundView, round_phase


def phase(view, now=100, block=50, window=10, disputes=0):
    return round_phase(
        view, now=now, block_number=block, challenge_window=window, open_disputes=disputes
    )


@pytest.mark.parametrize(
    ("view", "kwargs", "expected"),
    [
        (RoundView(0, 0, 0, 0, False), {}, Phase.NOT_STARTED),
        (RoundView(90, 120, 0, 0, False), {}, Phase.TRAINING),
        (RoundView(90, 120, 0, 0, False), {"now": 121}, Phase.SEALABLE),
        (RoundView(90, 120, 100, 49, False), {"block": 50}, Phase.AWAITING_SEED),
        (RoundView(90, 120, 100, 48, False), {"block": 50, "now": 110}, Phase.CHALLENGE),
        (RoundView(90, 120, 100, 48, False), {"now": 111, "disputes": 1}, Phase.DISPUTED),
        (RoundView(90, 120, 100, 48, False), {"now": 111}, Phase.FINALIZABLE),
        (RoundView(90, 120, 100, 48, True), {"now": 111}, Phase.FINALIZED),
    ],
)
def test_round_phase(view, kwargs, expected):
    assert phase(view, **kwargs) is expected
