"""The learning-rate schedule: a pure function of the global step, validated up front."""

from __future__ import annotations

import itertools
import math

import pytest
from pydantic import ValidationError

from agents.spec import OptimizerConfig


def test_constant_is_the_default_and_keeps_the_rate():
    cfg = OptimizerConfig(lr=0.01)
    assert cfg.schedule == "constant"
    assert {cfg.lr_at(s) for s in (0, 1, 999, 10**9)} == {0.01}


def test_warmup_ramps_linearly_then_cosine_decays_to_the_floor_and_holds():
    cfg = OptimizerConfig(
        lr=0.01, schedule="cosine", warmup_steps=4, decay_steps=104, min_lr_ratio=0.1
    )
    assert [cfg.lr_at(s) for s in range(4)] == pytest.approx([0.0025, 0.005, 0.0075, 0.01])
    assert cfg.lr_at(4) == pytest.approx(0.01)
    assert cfg.lr_at(54) == pytest.approx(0.01 * (0.1 + 0.9 * 0.5))  # half-way: the midpoint
    assert cfg.lr_at(104) == pytest.approx(0.001)
    assert cfg.lr_at(10**6) == pytest.approx(0.001)
    rates = [cfg.lr_at(s) for s in range(4, 105)]
    assert all(a >= b for a, b in itertools.pairwise(rates))  # never rises
    # Within 2^-24 of lr of the exact cosine: the rounding that makes it platform-proof.
    t = 37 / 100
    exact = 0.01 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))
    assert abs(cfg.lr_at(41) - exact) <= 0.01 * 2**-24
    assert cfg.lr_at(41) / 0.01 * 2**24 == round(cfg.lr_at(41) / 0.01 * 2**24)


@pytest.mark.parametrize(
    "kw",
    [
        {"schedule": "cosine"},  # no decay length
        {"schedule": "cosine", "warmup_steps": 10, "decay_steps": 10},
        {"schedule": "linear"},
        {"warmup_steps": -1},
        {"min_lr_ratio": 1.5},
        {"min_lr_ratio": -0.1},
    ],
)
def test_a_schedule_that_cannot_run_is_refused(kw):
    with pytest.raises(ValidationError):
        OptimizerConfig(**kw)


def test_a_negative_step_is_an_error():
    with pytest.raises(ValueError, match="negative"):
        OptimizerConfig().lr_at(-1)
