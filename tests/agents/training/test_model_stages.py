"""The stage split equals the unsplit model."""

from __future__ import annotations

import itertools

import pytest
import torch

from agents.spec import ModelConfig
from agents.training.errors import StageError
from agents.training.model import GPT, lm_loss
from agents.training.stages import build_stage, stage_layer_ranges


def test_layer_ranges_are_contiguous_balanced_and_cover_every_layer():
    for n_layer in range(1, 9):
        for s in range(1, n_layer + 1):
            ranges = stage_layer_ranges(n_layer, s)
            assert ranges[0][0] == 0 and ranges[-1][1] == n_layer
            assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))
            sizes = [e - b for b, e in ranges]
            assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1
    with pytest.raises(StageError, match="cannot split 2 layers into 3"):
        stage_layer_ranges(2, 3)
    with pytest.raises(StageError):
        build_stage(ModelConfig(n_layer=2), 2, 2, seed=0)


def test_stages_hold_only_their_own_parameters_named_as_in_gpt():
    cfg = ModelConfig(n_layer=4, n_head=2, d_model=16, seq_len=8)
    full = dict(GPT(cfg, seed=3).named_parameters())
    names = []
    for s in range(3):
        stage = build_stage(cfg, s, 3, seed=3)
        mine = dict(stage.named_parameters())
        assert any(n.startswith("embed.") for n in mine) == (s == 0)
        assert any(n.startswith("head.") for n in mine) == (s == 2)
        for n, p in mine.items():
            assert torch.equal(p, full[n]), n
        names += list(mine)
    assert sorted(names) == sorted(full)


def test_stage_split_gives_the_same_loss_and_gradients_as_the_whole_model():
    cfg = ModelConfig(n_layer=5, n_head=4, d_model=32, seq_len=12)
    torch.manual_seed(0)
    idx = torch.randint(0, 256, (3, 12))
    targets = torch.randint(0, 256, (3, 12))
    full = GPT(cfg, seed=11)
    _, loss_full = full(idx, targets)
    loss_full.backward()

    stages = [build_stage(cfg, s, 3, seed=11) for s in range(3)]
    x = idx
    for st in stages:
        x = st(x)
    loss_split = lm_loss(x, targets)
    loss_split.backward()
    assert torch.allclose(loss_full, loss_split, rtol=1e-6, atol=1e-6)
    grads = {n: p.grad for st in stages for n, p in st.named_parameters()}
    for n, p in full.named_parameters():
        assert torch.allclose(p.grad, grads[n], rtol=1e-5, atol=1e-7), n
    # A different seed is a different model: the check above could fail.
    assert not torch.equal(
        build_stage(cfg, 0, 3, seed=12).embed.tok.weight, stages[0].embed.tok.weight
    )
