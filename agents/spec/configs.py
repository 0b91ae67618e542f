"""The configs a job spec is made of (model, optimizer, codec, round shape, determinism).

These are part of the job spec on IPFS, so they are strict pydantic models:
unknown fields are rejected and every value a verifier needs to replay a step
is named here.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelConfig(_Strict):
    """A byte-level decoder-only transformer."""

    vocab_size: int = Field(256, ge=2)
    n_layer: int = Field(4, ge=1)
    n_head: int = Field(4, ge=1)
    d_model: int = Field(128, ge=8)
    seq_len: int = Field(64, ge=2)
    mlp_ratio: int = Field(4, ge=1)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)

    @model_validator(mode="after")
    def _heads_divide_width(self) -> ModelConfig:
        if self.d_model % self.n_head:
            raise ValueError(
                f"d_model ({self.d_model}) must be divisible by n_head ({self.n_head})"
            )
        return self


class OptimizerConfig(_Strict):
    """AdamW, with a learning-rate schedule over the job's global step.

    The global step is round x steps_per_round + step: public coordinates, so
    a validator replaying any one step applies the very rate the provider did.
    `constant` keeps `lr`; `cosine` decays it from `lr` to `min_lr_ratio` x lr
    over `decay_steps` (half a cosine) and holds it there. Either starts with
    a linear warm-up over `warmup_steps`. Annealing matters to a compressed
    boundary: the rounding noise of its gradients is scaled down with the rate.
    """

    name: Literal["adamw"] = "adamw"
    lr: float = Field(3e-3, gt=0)
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = Field(1e-8, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    schedule: Literal["constant", "cosine"] = "constant"
    warmup_steps: int = Field(0, ge=0)
    decay_steps: int = Field(0, ge=0)
    min_lr_ratio: float = Field(0.1, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _decay_after_warmup(self) -> OptimizerConfig:
        if self.schedule == "cosine" and self.decay_steps <= self.warmup_steps:
            raise ValueError(
                f"a cosine schedule needs decay_steps ({self.decay_steps}) "
                f"past warmup_steps ({self.warmup_steps})"
            )
        return self

    def lr_at(self, step: int) -> float:
        """The learning rate of global step `step` (0-based).

        Rounded to 2^-24 of `lr`, so a last-bit difference between two
        platforms' cosine cannot reach the optimizer (its update is bitwise
        checked by replays)."""
        if step < 0:
            raise ValueError(f"step {step} is negative")
        if step < self.warmup_steps:
            factor = (step + 1) / self.warmup_steps
        elif self.schedule == "constant":
            factor = 1.0
        else:
            t = min(1.0, (step - self.warmup_steps) / (self.decay_steps - self.warmup_steps))
            floor = self.min_lr_ratio
            factor = floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * t))
        return self.lr * (round(factor * 2**24) / 2**24)


class CompressionConfig(_Strict):
    """What crosses a stage boundary (activations forward, gradients backward).

    - `none`: fp32 tensors.
    - `int8` (the default): per-row absmax int8 quantisation, 4x smaller.
    - `subspace`: the boundary is a bottleneck of the model itself. The
      hidden state a stage hands on is confined to a fixed `rank`-dimensional
      subspace (an orthonormal basis both sides rebuild from the seed) around
      a fixed high-rank anchor, the seeded initial token + position embedding
      of the tokens, which ride along as one byte each. What is sent is the
      exact low-dimensional coordinates, quantised to `bits` with one scale
      per channel (or per position); the backward pass sends the gradient
      projected onto the same subspace, quantised to `grad_bits`, with seeded
      stochastic rounding when `stochastic_grad` (unbiased, and a replay draws
      the same bits). No error-feedback state: the trained model *is* the
      bottlenecked model, and inference runs the same codec. Each stage after
      the first learns its own embedding of the tokens the payload carries.

    Top-k with error feedback is gone: on activations it adds one sample's
    leftover to another micro-batch, and it did not train (issue 14).
    """

    method: Literal["none", "int8", "subspace"] = "int8"
    rank: int = Field(8, ge=1)
    bits: int = Field(4, ge=2, le=8)
    grad_bits: int = Field(4, ge=2, le=8)
    stochastic_grad: bool = True
    scale: Literal["channel", "position"] = "channel"
    # Gradient scales: at most `grad_clip` x the channel's RMS (0: absmax).
    # Activation gradients are heavy-tailed across positions; an absmax scale
    # would round most of them to zero. Entries past the clip are clamped.
    grad_clip: float = Field(0.0, ge=0.0)
    # Activation scales, the same way: at most `clip` x the channel's RMS (0: absmax).
    # Round to nearest, so inference (same codec) clamps exactly as training did.
    clip: float = Field(0.0, ge=0.0)

    @model_validator(mode="after")
    def _packs_into_bytes(self) -> CompressionConfig:
        for name, bits in (("bits", self.bits), ("grad_bits", self.grad_bits)):
            if (self.rank * bits) % 8:
                raise ValueError(f"rank ({self.rank}) x {name} ({bits}) must fill whole bytes")
        return self


class DeterminismConfig(_Strict):
    """Everything that must match for a replay to be bitwise identical on CPU."""

    seed: int = 0
    num_threads: int = Field(1, ge=1)
    torch_version: str = ""
    cpu_capability: str = ""
    device: Literal["cpu", "cuda"] = "cpu"


class TrainingConfig(_Strict):
    """How one round of one job is trained."""

    batch_size: int = Field(8, ge=1)
    micro_batches: int = Field(2, ge=1)
    steps_per_round: int = Field(4, ge=1)

    @model_validator(mode="after")
    def _split_evenly(self) -> TrainingConfig:
        if self.batch_size % self.micro_batches:
            raise ValueError(
                f"batch_size ({self.batch_size}) must be divisible by "
                f"micro_batches ({self.micro_batches})"
            )
        return self

    @property
    def micro_batch_size(self) -> int:
        return self.batch_size // self.micro_batches
