"""Incremental decoding of one stage with a key/value cache.

The stage module's own weights, run on new positions only: each block keeps
the keys and values of the positions it has seen, so a decoded token costs
one position of compute per stage instead of the whole window. The output
equals the full-window forward at the same positions (a test checks it).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from agents.training.stages import StageModule


class KVCache:
    """Per-block (keys, values) of one sequence at one stage."""

    def __init__(self) -> None:
        self.kv: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self.length = 0


@torch.no_grad()
def forward_cached(module: StageModule, x: torch.Tensor, cache: KVCache) -> torch.Tensor:
    """Run positions cache.length .. cache.length+T-1 through the stage.

    `x` is token ids (B, T) on stage 0, hidden states (B, T, C) otherwise.
    Returns hidden states, or the last position's logits (B, vocab) on the
    last stage. A prefill (T > 1) is only allowed on an empty cache.
    """
    t = x.shape[1]
    start = cache.length
    if t > 1 and start:
        raise ValueError("prefill needs an empty cache")
    if start + t > module.cfg.seq_len:
        raise ValueError(f"positions up to {start + t} exceed seq_len {module.cfg.seq_len}")
    if module.embed is not None:
        pos = torch.arange(start, start + t, device=x.device)
        x = module.embed.tok(x) + module.embed.pos(pos)
    for name, block in module.blocks.items():
        attn = block.attn
        b, _, c = x.shape
        hd = c // attn.n_head
        q, k, v = attn.qkv(block.ln1(x)).split(c, dim=2)
        q = q.view(b, t, attn.n_head, hd).transpose(1, 2)
        k = k.view(b, t, attn.n_head, hd).transpose(1, 2)
        v = v.view(b, t, attn.n_head, hd).transpose(1, 2)
        if name in cache.kv:
            pk, pv = cache.kv[name]
            k, v = torch.cat([pk, k], dim=2), torch.cat([pv, v], dim=2)
        cache.kv[name] = (k, v)
        # One new position attends to every cached one; a prefill is causal.
        y = F.scaled_dot_product_attention(q, k, v, is_causal=t > 1)
        x = x + attn.proj(y.transpose(1, 2).contiguous().view(b, t, c))
        x = x + block.mlp(block.ln2(x))
    cache.length = start + t
    if module.head is not None:
        return module.head(x)[:, -1, :].to(torch.float32)
    return x
