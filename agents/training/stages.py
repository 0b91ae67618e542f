"""The model cut into S contiguous pipeline stages.

Stage 0 holds the embedding, the last stage the final norm and head; the
blocks are split as evenly as possible, earlier stages taking the remainder.
A stage's parameter names are the same as in `GPT` ("blocks.3.attn.qkv.weight"),
and its weights come from the same per-part seeds, so the stages of one seed
together are exactly `GPT(cfg, seed)`.

With the subspace codec (`reembed=True`) a stage after the first also holds
its own learned token + position embedding, `reembed`, added to the hidden
state it receives (the codec adds it to its anchor's tables:
`BoundaryCodec.hidden_of`). The boundary carries the tokens anyway, so it
costs no bytes; it gives the stage back a learned high-rank view of each
token, which the rank-r bottleneck otherwise keeps from every stage but the
first (bench/pipeline.py's model, r8 int4, seq_len 64, 500 steps, the bench's
schedule before 2026-12-04 (no warm-up, peak 3e-3): held-out
loss gap +3.5% mean over seeds 0-2 without it, +2.4% with it; over seeds
0-5 +3.5%, the per-seed spread being about 2 points either way). It starts
at the model's own embedding scale (std 0.02): a larger one also makes the
model learn faster, which would be a better initialisation, not a better
codec. Those stages are then no longer a slice of `GPT`: the compressed
model is its own architecture.
"""

from __future__ import annotations

import torch
from torch import nn

from agents.spec import ModelConfig
from agents.training.errors import StageError
from agents.training.model import Block, Embedding, Head


def stage_layer_ranges(n_layer: int, num_stages: int) -> list[tuple[int, int]]:
    """Half-open block ranges [start, end) of each stage, contiguous and balanced."""
    if num_stages < 1:
        raise StageError(f"num_stages must be at least 1, got {num_stages}")
    if num_stages > n_layer:
        raise StageError(f"cannot split {n_layer} layers into {num_stages} stages")
    base, extra = divmod(n_layer, num_stages)
    ranges, start = [], 0
    for s in range(num_stages):
        end = start + base + (1 if s < extra else 0)
        ranges.append((start, end))
        start = end
    return ranges


class StageModule(nn.Module):
    """One stage: optional embedding, a run of blocks, optional head."""

    def __init__(
        self, cfg: ModelConfig, stage: int, num_stages: int, seed: int, reembed: bool = False
    ) -> None:
        super().__init__()
        ranges = stage_layer_ranges(cfg.n_layer, num_stages)
        if not 0 <= stage < num_stages:
            raise StageError(f"stage {stage} is not in 0..{num_stages - 1}")
        self.cfg = cfg
        self.stage = stage
        self.num_stages = num_stages
        self.layers = ranges[stage]
        self.is_first = stage == 0
        self.is_last = stage == num_stages - 1
        self.embed = Embedding(cfg, seed) if self.is_first else None
        # A ModuleDict keyed by the global layer index keeps GPT's names.
        self.blocks = nn.ModuleDict({str(i): Block(cfg, seed, i) for i in range(*self.layers)})
        self.head = Head(cfg, seed) if self.is_last else None
        self.reembed = Embedding(cfg, seed, f"reembed.{stage}") if reembed and stage else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Token ids (stage 0) or hidden states -> hidden states, or logits on the last stage."""
        if self.embed is not None:
            x = self.embed(x)
        for block in self.blocks.values():
            x = block(x)
        if self.head is not None:
            x = self.head(x)
        return x


def build_stage(
    cfg: ModelConfig, stage: int, num_stages: int, seed: int, *, reembed: bool = False
) -> StageModule:
    """Build stage `stage` of `num_stages`: that slice of `GPT(cfg, seed)`, plus the
    stage's re-embedding when `reembed` (the subspace codec)."""
    return StageModule(cfg, stage, num_stages, seed, reembed)
