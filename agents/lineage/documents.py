"""Lineage documents: the pydantic models Tessera stores as JSON on IPFS.

Each document names its parents by CID, so any checkpoint can be traced back
to the rounds, providers and data that made it. Documents are strict: unknown
or missing fields are rejected, and they serialise to canonical JSON (sorted
keys, no whitespace), so the same document always has the same CID.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from agents.training.config import (
    CompressionConfig,
    DeterminismConfig,
    ModelConfig,
    OptimizerConfig,
    TrainingConfig,
)

_CID_RE = re.compile(r"^(Qm[1-9A-HJ-NP-Za-km-z]{44}|b[a-z2-7]{20,})$")
_HASH_RE = re.compile(r"^0x[0-9a-f]{64}$")
_ADDR_RE = re.compile(r"^0x[0-9a-fA-F]{40}$")


def _check(regex: re.Pattern[str], what: str):
    def check(value: str) -> str:
        if not regex.match(value):
            raise ValueError(f"not a {what}: {value!r}")
        return value

    return check


CID = Annotated[str, AfterValidator(_check(_CID_RE, "CID"))]
Hash32 = Annotated[str, AfterValidator(_check(_HASH_RE, "0x-prefixed 32-byte hex hash"))]
Address = Annotated[str, AfterValidator(_check(_ADDR_RE, "0x-prefixed address"))]


class Document(BaseModel):
    """Base of every stored document: strict, immutable, canonical JSON."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def canonical_json(self) -> bytes:
        """The exact bytes stored on IPFS (sorted keys, compact, UTF-8)."""
        return json.dumps(
            self.model_dump(mode="json"), sort_keys=True, separators=(",", ":")
        ).encode()


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
    round_records: list[CID] = []


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
    data_shards: list[CID] = []
    trace_root: Hash32
    leaves: list[TraceLeaf] = Field(min_length=1)
    metrics: dict[str, float] = {}
    determinism: DeterminismConfig
    bytes_sent: int = Field(0, ge=0)
    bytes_received: int = Field(0, ge=0)
