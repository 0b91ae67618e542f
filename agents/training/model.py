"""A byte-level decoder-only transformer (GPT), written plainly in one file.

The model is three kinds of parts so it can be cut into pipeline stages
without changing any arithmetic: an `Embedding` (token + position), a list of
pre-norm `Block`s, and a `Head` (final LayerNorm + vocabulary projection). The
input embedding and the output head are not tied: they live on different
stages, and no provider ever holds the whole model.

Initialisation is deterministic and local: every part draws its weights from
its own generator seeded by (model seed, part name), so a stage can be built
alone and still equal the same slice of the whole model.
"""

from __future__ import annotations

import hashlib
import math

import torch
import torch.nn.functional as F
from torch import nn

from agents.spec import ModelConfig


def part_seed(seed: int, part: str) -> int:
    """The 63-bit seed of one model part (e.g. "embed", "block.3", "head")."""
    digest = hashlib.sha256(f"tessera/init/{seed}/{part}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def _init_linear(layer: nn.Linear, gen: torch.Generator, std: float) -> None:
    nn.init.normal_(layer.weight, 0.0, std, generator=gen)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)


class Embedding(nn.Module):
    """Token and learned position embeddings (stage 0)."""

    def __init__(self, cfg: ModelConfig, seed: int, part: str = "embed") -> None:
        super().__init__()
        self.tok = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos = nn.Embedding(cfg.seq_len, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        gen = torch.Generator().manual_seed(part_seed(seed, part))
        with torch.no_grad():
            nn.init.normal_(self.tok.weight, 0.0, 0.02, generator=gen)
            nn.init.normal_(self.pos.weight, 0.0, 0.02, generator=gen)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Token ids (B, T) -> hidden states (B, T, d_model)."""
        positions = torch.arange(idx.shape[1], device=idx.device)
        return self.drop(self.tok(idx) + self.pos(positions))

    def at(self, idx: torch.Tensor, start: int = 0) -> torch.Tensor:
        """Token + position embedding of positions start.. (no dropout; cached decoding)."""
        positions = torch.arange(start, start + idx.shape[1], device=idx.device)
        return self.tok(idx) + self.pos(positions)


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_head = cfg.n_head
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.dropout = cfg.dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C) -> (B, T, C), each position attending only to itself and the past."""
        b, t, c = x.shape
        q, k, v = self.qkv(x).split(c, dim=2)
        q = q.view(b, t, self.n_head, c // self.n_head).transpose(1, 2)
        k = k.view(b, t, self.n_head, c // self.n_head).transpose(1, 2)
        v = v.view(b, t, self.n_head, c // self.n_head).transpose(1, 2)
        y = F.scaled_dot_product_attention(
            q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0
        )
        return self.proj(y.transpose(1, 2).contiguous().view(b, t, c))


class MLP(nn.Module):
    """The position-wise feed-forward network."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(cfg.d_model, cfg.mlp_ratio * cfg.d_model)
        self.proj = nn.Linear(cfg.mlp_ratio * cfg.d_model, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C) -> (B, T, C)."""
        return self.drop(self.proj(F.gelu(self.fc(x))))


class Block(nn.Module):
    """A pre-norm transformer block."""

    def __init__(self, cfg: ModelConfig, seed: int, layer: int) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.attn = CausalSelfAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.mlp = MLP(cfg)
        gen = torch.Generator().manual_seed(part_seed(seed, f"block.{layer}"))
        # GPT-2's scaled init of the residual projections keeps the residual
        # stream's variance flat with depth.
        residual_std = 0.02 / math.sqrt(2 * cfg.n_layer)
        with torch.no_grad():
            _init_linear(self.attn.qkv, gen, 0.02)
            _init_linear(self.attn.proj, gen, residual_std)
            _init_linear(self.mlp.fc, gen, 0.02)
            _init_linear(self.mlp.proj, gen, residual_std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C) -> (B, T, C)."""
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class Head(nn.Module):
    """Final LayerNorm and the projection to byte logits (last stage)."""

    def __init__(self, cfg: ModelConfig, seed: int) -> None:
        super().__init__()
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        gen = torch.Generator().manual_seed(part_seed(seed, "head"))
        with torch.no_grad():
            _init_linear(self.lm_head, gen, 0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C) -> logits (B, T, vocab_size)."""
        return self.lm_head(self.ln_f(x))


def lm_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean next-byte cross-entropy."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


class GPT(nn.Module):
    """The whole model in one module: the reference the stages must equal."""

    def __init__(self, cfg: ModelConfig, seed: int = 0) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = Embedding(cfg, seed)
        self.blocks = nn.ModuleList(Block(cfg, seed, i) for i in range(cfg.n_layer))
        self.head = Head(cfg, seed)

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Token ids (B, T) -> (logits, mean loss or None)."""
        x = self.embed(idx)
        for block in self.blocks:
            x = block(x)
        logits = self.head(x)
        return logits, (lm_loss(logits, targets) if targets is not None else None)

    def num_params(self) -> int:
        """Number of trainable scalars."""
        return sum(p.numel() for p in self.parameters())
