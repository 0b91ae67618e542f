"""The job spec and its configs: the one owner of what a job fixes.

A `JobSpec` (stored on IPFS, named by CID on-chain) fixes the model, the
optimizer, the boundary codec, the round shape and the determinism settings
a verifier needs. Both `agents.training` (which trains what the spec says)
and `agents.lineage` (which stores and links documents) import it from here;
this package imports neither, so there is no circle between them.
"""

from __future__ import annotations

from agents.spec.base import CID, Address, Document, Hash32
from agents.spec.configs import (
    CompressionConfig,
    DeterminismConfig,
    ModelConfig,
    OptimizerConfig,
    TrainingConfig,
)
from agents.spec.job import AuditPolicy, JobSpec

__all__ = [
    "CID",
    "Address",
    "AuditPolicy",
    "CompressionConfig",
    "DeterminismConfig",
    "Document",
    "Hash32",
    "JobSpec",
    "ModelConfig",
    "OptimizerConfig",
    "TrainingConfig",
]
