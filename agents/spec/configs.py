"""The configs a job spec is made of (model, optimizer, codec, round shape, determinism).

These are part of the job spec on IPFS, so they are strict pydantic models:
unknown fields are rejected and every value a verifier needs to replay a step
is named here.
"""

from __future__ import annotations

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
    """AdamW with an optional gradient clip."""

    name: Literal["adamw"] = "adamw"
    lr: float = Field(3e-3, gt=0)
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = Field(1e-8, gt=0)
    weight_decay: float = Field(0.0, ge=0)


class CompressionConfig(_Strict):
    """What crosses a stage boundary (activations forward, gradients backward).

    - `none`: fp32 tensors.
    - `int8`: per-row absmax int8 quantization.
    - `topk`: error-feedback top-k sparsification (the sender keeps the
      residual it did not send and adds it to the next message), `ratio` is the
      fraction of entries kept.
    """

    method: Literal["none", "int8", "topk"] = "none"
    ratio: float = Field(0.1, gt=0.0, le=1.0)


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
