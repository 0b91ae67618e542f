"""Deprecated import path: the configs live in `agents.spec` (kept while other branches rebase)."""

from agents.spec.configs import (  # noqa: F401
    CompressionConfig,
    DeterminismConfig,
    ModelConfig,
    OptimizerConfig,
    TrainingConfig,
)
