"""The job spec: everything a provider needs to train, and a verifier to replay, a job."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from agents.spec.base import CID, Document
from agents.spec.configs import (
    CompressionConfig,
    DeterminismConfig,
    ModelConfig,
    OptimizerConfig,
    TrainingConfig,
)


class AuditPolicy(Document):
    """How many leaves per stage and round are sampled, and replay tolerance."""

    leaves_per_stage: int = Field(2, ge=1)
    cross_platform_rtol: float = Field(1e-3, gt=0)


class JobSpec(Document):
    """Everything a provider needs to train, and a verifier to replay, a job."""

    kind: Literal["tessera/job-spec@1"] = "tessera/job-spec@1"
    name: str
    model: ModelConfig
    num_stages: int = Field(ge=1)
    dataset: CID
    optimizer: OptimizerConfig = OptimizerConfig()
    compression: CompressionConfig = CompressionConfig()
    training: TrainingConfig = TrainingConfig()
    determinism: DeterminismConfig = DeterminismConfig()
    audit: AuditPolicy = AuditPolicy()
    init_checkpoint: CID | None = None

    @model_validator(mode="after")
    def _codec_fits_model(self) -> JobSpec:
        c = self.compression
        if c.method == "subspace" and c.rank > self.model.d_model:
            raise ValueError(f"subspace rank ({c.rank}) exceeds d_model ({self.model.d_model})")
        return self
