"""Lineage documents: the pydantic models Tessera stores as JSON on IPFS.

Each document names its parents by CID, so any checkpoint can be traced back
to the rounds, providers and data that made it. Documents are strict: unknown
or missing fields are rejected, and they serialise to canonical JSON (sorted
keys, no whitespace), so the same document always has the same CID.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from agents.spec import (
    CID,
    Address,
    AuditPolicy,
    CompressionConfig,
    DeterminismConfig,
    Document,
    Hash32,
    JobSpec,
    ModelConfig,
    OptimizerConfig,
    TrainingConfig,
)

# The spec and its configs are owned by agents.spec; they are re-exported here
# because they are lineage documents too (JobSpec is stored and loaded by kind).
__all__ = [
    "CID",
    "Address",
    "AuditPolicy",
    "CheckpointManifest",
    "CompressionConfig",
    "DatasetManifest",
    "DeterminismConfig",
    "Document",
    "Hash32",
    "JobSpec",
    "ModelConfig",
    "OptimizerConfig",
    "RoundRecord",
    "ShardRef",
    "StageCheckpoint",
    "TraceLeaf",
    "TrainingConfig",
]


class ShardRef(Document):
    """One token shard of a dataset (a raw byte file on IPFS)."""

    cid: CID
    size: int = Field(ge=0)
    tokens: int = Field(ge=0)
    name: str = ""


class DatasetManifest(Document):
    """A dataset: byte-level token shards plus where they came from."""

    kind: Literal["tessera/dataset@1"] = "tessera/dataset@1"
    name: str
    source: str
    license: str
    tokenizer: Literal["bytes"] = "bytes"
    shards: list[ShardRef] = Field(min_length=1)
    total_tokens: int = Field(ge=0)
    parent: CID | None = None


class StageCheckpoint(Document):
    """One stage's weights and optimizer state (a safetensors file)."""

    stage: int = Field(ge=0)
    cid: CID
    params_hash: Hash32


class CheckpointManifest(Document):
    """A whole-model checkpoint as a list of per-stage files."""

    kind: Literal["tessera/checkpoint@1"] = "tessera/checkpoint@1"
    job_id: int = Field(ge=0)
    round: int = Field(ge=-1)
    spec: CID
    stages: list[StageCheckpoint] = Field(min_length=1)
    parent: CID | None = None
    round_records: list[CID] = Field(default_factory=list)


class TraceLeaf(Document):
    """One micro-batch of one step of one stage: hashes of what it saw and did.

    `input` of stage s equals `output` of stage s-1 for the same (step,
    micro_batch): stages cross-check each other for free. `data_ref` hashes the
    dataset bytes a micro-batch consumed (stage 0 inputs, last-stage targets).
    `input_attestation` / `grad_in_attestation` are keccak256 of the sending
    stage's signature over the payload received (agents.protocol.attestation),
    zero where there is no sender (stage 0's input, the last stage's gradient).
    """

    index: int = Field(ge=0)
    step: int = Field(ge=0)
    micro_batch: int = Field(ge=0)
    params_before: Hash32
    input: Hash32
    output: Hash32
    grad_in: Hash32
    grad_out: Hash32
    params_after: Hash32
    data_ref: Hash32
    input_attestation: Hash32 = "0x" + "00" * 32
    grad_in_attestation: Hash32 = "0x" + "00" * 32


class RoundRecord(Document):
    """What one provider did for one stage in one round."""

    kind: Literal["tessera/round-record@1"] = "tessera/round-record@1"
    job_id: int = Field(ge=0)
    round: int = Field(ge=0)
    stage: int = Field(ge=0)
    provider: Address
    spec: CID
    parent_checkpoint: CID | None
    parent_record: CID | None = None
    new_checkpoint: CID
    data_shards: list[CID] = Field(default_factory=list)
    trace_root: Hash32
    leaves: list[TraceLeaf] = Field(min_length=1)
    metrics: dict[str, float] = Field(default_factory=dict)
    determinism: DeterminismConfig
    bytes_sent: int = Field(0, ge=0)
    bytes_received: int = Field(0, ge=0)
