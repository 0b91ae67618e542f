"""Incremental decoding with a KV cache equals the full-window forward of the stages."""

from __future__ import annotations

import pytest
import torch

from agents.spec import ModelConfig
from agents.training.kvcache import KVCache, forward_cached
from agents.training.stages import build_stage


def test_cached_decoding_matches_the_full_window_at_every_position():
    cfg = ModelConfig(n_layer=4, n_head=4, d_model=64, seq_len=32)
    stages = [build_stage(cfg, s, 2, 7).eval() for s in range(2)]
    ids = torch.randint(0, 256, (1, 20), generator=torch.Generator().manual_seed(0))
    caches = [KVCache(), KVCache()]
    h = forward_cached(stages[0], ids[:, :12], caches[0])
    out = forward_cached(stages[1], h, caches[1])
    for i in range(12, 20):
        with torch.no_grad():
            full = stages[1](stages[0](ids[:, :i]))[:, -1, :]
        assert torch.allclose(out, full, atol=1e-5), i
        h = forward_cached(stages[0], ids[:, i : i + 1], caches[0])
        out = forward_cached(stages[1], h, caches[1])
    assert caches[0].length == 20
    with pytest.raises(ValueError, match="prefill needs an empty cache"):
        forward_cached(stages[0], torch.zeros(1, 2, dtype=torch.long), caches[0])
    with pytest.raises(ValueError, match="exceed seq_len"):
        forward_cached(stages[0], torch.zeros(1, 33, dtype=torch.long), KVCache())
