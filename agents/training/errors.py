"""Errors of the training engine, each one line naming the thing at fault."""

from agents.errors import TesseraError


class TrainingError(TesseraError):
    """Base of training-engine errors."""


class StageError(TrainingError):
    """A stage index or split that does not fit the model."""


class CheckpointError(TrainingError):
    """A stage checkpoint that is corrupt, truncated or for another stage."""


class CompressionError(TrainingError):
    """A boundary payload that does not decode."""


class DataError(TrainingError):
    """A dataset manifest or shard that cannot feed the sampler."""


class DeterminismError(TrainingError):
    """This process cannot reproduce the spec's determinism settings."""


class PipelineError(TrainingError):
    """Pipeline calls out of order, or stages that do not form a pipeline."""


class AuditError(TrainingError):
    """An audit bundle or record that cannot be replayed."""
