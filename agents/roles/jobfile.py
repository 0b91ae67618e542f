"""The job file a model owner posts: the training spec plus the on-chain terms.

Amounts are written in TSR (decimal strings or numbers) and converted to wei.
A malformed file is one clear error naming the field at fault.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agents.chain.protocol import JobTerms
from agents.errors import TesseraError
from agents.lineage.documents import JobSpec

WEI = 10**18


class JobFileError(TesseraError):
    """The job file is missing, unreadable or invalid."""


class TermsInput(BaseModel):
    """On-chain terms in human units."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rounds: int = Field(ge=1, le=10_000)
    reward_per_stage_round: Decimal = Field(gt=0)
    shares_per_stage_round: int = Field(1000, ge=1)
    min_stake: Decimal = Field(gt=0)
    commit_window: int = Field(600, ge=1, description="seconds")
    challenge_window: int = Field(60, ge=1, description="seconds")
    owner_share_bps: int = Field(1000, ge=0, le=9000)
    validator_pool: Decimal = Field(Decimal(0), ge=0)

    def to_terms(self, spec: JobSpec, spec_cid: str) -> JobTerms:
        """The JobMarket.JobParams for this spec."""
        return JobTerms(
            spec_cid=spec_cid,
            num_stages=spec.num_stages,
            rounds=self.rounds,
            steps_per_round=spec.training.steps_per_round,
            reward_per_stage_round=int(self.reward_per_stage_round * WEI),
            shares_per_stage_round=self.shares_per_stage_round,
            min_stake=int(self.min_stake * WEI),
            commit_window=self.commit_window,
            challenge_window=self.challenge_window,
            audit_leaves=spec.audit.leaves_per_stage,
            owner_share_bps=self.owner_share_bps,
            validator_pool=int(self.validator_pool * WEI),
        )


class JobFile(BaseModel):
    """`tessera job post FILE`: {"spec": JobSpec, "terms": TermsInput}."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    spec: JobSpec
    terms: TermsInput


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "(top level)"
    return f"{where}: {err['msg']}"


def load_job_file(path: str | Path) -> JobFile:
    """Read and validate a job file (JSON or YAML)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise JobFileError(f"cannot read job file {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else json.loads(text)
    except (ValueError, yaml.YAMLError) as exc:
        first = str(exc).splitlines()[0]
        kind = path.suffix[1:] or "JSON"
        raise JobFileError(f"job file {path} is not valid {kind}: {first}") from None
    if not isinstance(data, dict):
        raise JobFileError(f"job file {path} must hold an object with 'spec' and 'terms'")
    try:
        return JobFile.model_validate(data)
    except ValidationError as exc:
        raise JobFileError(f"invalid job file {path}: {_first_error(exc)}") from None
