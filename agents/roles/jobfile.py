"""The job file a model owner posts: the training spec plus the on-chain terms.

Amounts are written in TSR (decimal strings or numbers) and converted to wei.
Checking happens in two passes, each reporting every problem at once:

1. `load_job_file`: the file parses and every field has the right shape
   (pydantic);
2. `check_job`: the job can be trained (stages ≤ layers, a model that fits
   in memory, byte tokens) and every value is one the JobMarket contract
   accepts (`ContractBounds`, read from the deployed contract's ABI and
   constants), named in the file's own words and amounts in TSR.

Nothing is stored or sent before both pass. `job_file_template` writes the
commented file `tessera job init` starts from; docs/jobs.md documents every
field.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agents.errors import TesseraError
from agents.spec import JobSpec
from agents.spec.pinning import pin_determinism

if TYPE_CHECKING:  # web3 loads only when terms are built, not for formatting or checks
    from agents.chain.protocol import JobTerms

WEI = 10**18
BPS = 10_000
# A model above this many parameters cannot be trained by this system's stage
# hosts (fp32 weights + AdamW state are 16 bytes a parameter): refuse it rather
# than lock escrow for a job nobody can run.
MAX_PARAMETERS = 10_000_000_000
MAX_SEQ_LEN = 32_768
BYTE_VOCAB = 256


class JobFileError(TesseraError):
    """The job file is missing, unreadable or invalid."""


class TermsInput(BaseModel):
    """On-chain terms in human units."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rounds: int = Field(ge=1, description="training rounds")
    reward_per_stage_round: Decimal = Field(gt=0, description="TSR per stage per round")
    shares_per_stage_round: int = Field(1000, ge=1, description="model shares per stage-round")
    min_stake: Decimal = Field(gt=0, description="TSR a provider locks per stage")
    commit_window: int = Field(600, ge=10, description="seconds")
    challenge_window: int = Field(60, ge=1, description="seconds")
    owner_share_bps: int = Field(1000, ge=0, lt=BPS, description="basis points")
    validator_pool: Decimal = Field(Decimal(0), ge=0, description="TSR for validators")

    def to_terms(self, spec: JobSpec, spec_cid: str) -> JobTerms:
        """The JobMarket.JobParams for this spec."""
        from agents.chain.protocol import JobTerms

        return JobTerms(
            spec_cid=spec_cid,
            num_stages=spec.num_stages,
            rounds=self.rounds,
            steps_per_round=spec.training.steps_per_round,
            micro_batches=spec.training.micro_batches,
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


def _all_errors(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def load_job_file(path: str | Path) -> JobFile:
    """Read and validate a job file (JSON or YAML); every shape error in one message."""
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
        job = JobFile.model_validate(data)
    except ValidationError as exc:
        n = exc.error_count()
        raise JobFileError(
            f"invalid job file {path} ({n} problem{'s' if n > 1 else ''}): {_all_errors(exc)}"
        ) from None
    # What the file leaves open is pinned to the poster's platform (then checked at post).
    return job.model_copy(update={"spec": pin_determinism(job.spec)})


# -- what the contract accepts --------------------------------------------------------------

# Where each JobParams field comes from in the job file, for messages in its words.
FIELD_PATHS = {
    "num_stages": "spec.num_stages",
    "steps_per_round": "spec.training.steps_per_round",
    "micro_batches": "spec.training.micro_batches",
    "audit_leaves": "spec.audit.leaves_per_stage",
    "leaf_count": "spec.training (steps_per_round x micro_batches)",
}
AMOUNT_FIELDS = {"reward_per_stage_round", "min_stake", "validator_pool"}
# JobMarket._validate rejects zero for these (besides its explicit constants).
NONZERO_FIELDS = {
    "num_stages",
    "rounds",
    "steps_per_round",
    "shares_per_stage_round",
    "min_stake",
    "commit_window",
    "challenge_window",
    "audit_leaves",
    "micro_batches",
}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


def _norm(name: str) -> str:
    return re.sub(r"[^a-z]", "", name.lower())


@dataclass(frozen=True)
class Bound:
    """The inclusive range JobMarket accepts for one JobParams field, and why."""

    low: int
    high: int
    why_high: str


@dataclass(frozen=True)
class ContractBounds:
    """Per-field ranges of JobMarket.postJob, from the ABI's integer widths and constants."""

    bounds: dict[str, Bound] = field(default_factory=dict)

    @classmethod
    def from_abi(cls, abi: list[dict], constants: dict[str, int] | None = None) -> ContractBounds:
        """Integer widths of postJob's JobParams, narrowed by `MAX_*`/`MIN_*` constants.

        `constants` maps a constant's ABI name (e.g. MAX_STAGES) to its value; a
        constant applies to the field whose name contains its words.
        """
        components = next(e["inputs"][0]["components"] for e in abi if e.get("name") == "postJob")
        from agents.chain.protocol import JobTerms

        out: dict[str, Bound] = {}
        camel_to_snake = {_camel(f.name): f.name for f in dataclasses.fields(JobTerms)}
        for comp in components:
            kind = comp["type"]
            name = camel_to_snake.get(comp["name"])
            if name is None or not kind.startswith("uint"):
                continue
            bits = int(kind[4:] or 256)
            low = 1 if name in NONZERO_FIELDS else 0
            out[name] = Bound(low, 2**bits - 1, f"a {kind}")
        if "owner_share_bps" in out:
            out["owner_share_bps"] = Bound(0, BPS - 1, "less than 100% (10000 basis points)")
        for const, value in (constants or {}).items():
            prefix, _, words = const.partition("_")
            if prefix not in ("MAX", "MIN"):
                continue
            if words == "LEAVES":  # stepsPerRound x microBatches: checked in check_job
                out["leaf_count"] = Bound(1, value, f"JobTerms.{const}")
                continue
            for name, b in out.items():
                applies = (words == "TOKEN_AMOUNT" and name in AMOUNT_FIELDS) or (
                    _norm(words) and _norm(words) == _norm(name).removeprefix("num")
                )
                if applies:
                    if prefix == "MAX" and value < b.high:
                        out[name] = Bound(b.low, value, f"JobTerms.{const}")
                    elif prefix == "MIN" and value > b.low:
                        out[name] = Bound(value, b.high, b.why_high)
        return cls(out)

    @classmethod
    def from_chain(cls, client) -> ContractBounds:
        """The bounds of the JobMarket deployed where `client` points (the job terms'
        constants live in its JobTerms)."""
        abi = client.contract("JobMarket").abi
        constants = {}
        for e in client.contract("JobTerms").abi:
            name = e.get("name", "")
            if not (
                e.get("type") == "function"
                and not e.get("inputs")
                and e.get("outputs")
                and e["outputs"][0]["type"].startswith("uint")
            ):
                continue
            if re.fullmatch(r"(MAX|MIN)_[A-Z_]+", name):
                constants[name] = int(client.call("JobTerms", name))
            elif re.fullmatch(r"(max|min)[A-Z]\w*", name):  # a deployment parameter view
                key = re.sub(r"(?<!^)(?=[A-Z])", "_", name).upper()
                constants[key] = int(client.call("JobTerms", name))
        return cls.from_abi(abi, constants)

    @classmethod
    def from_artifact(cls) -> ContractBounds:
        """Bounds from the compiled ABI alone (no chain: constants known from the source)."""
        from agents.chain.artifacts import load_artifact

        return cls.from_abi(load_artifact("JobMarket").abi, {"MAX_STAGES": 64})


def format_tsr(wei: int) -> str:
    """Wei as a TSR amount for people: '12.5 TSR', never '1.25e+01'."""
    text = f"{Decimal(int(wei)) / WEI:f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return f"{text} TSR"


def _show(name: str, value: int) -> str:
    return format_tsr(value) if name in AMOUNT_FIELDS else str(value)


def parameter_count(spec: JobSpec) -> int:
    """Parameters of the byte-level GPT a spec describes (embeddings, blocks, head)."""
    m = spec.model
    per_block = 4 * m.d_model * m.d_model + 2 * m.mlp_ratio * m.d_model * m.d_model
    return m.n_layer * per_block + 2 * m.vocab_size * m.d_model + m.seq_len * m.d_model


def check_job(job: JobFile, bounds: ContractBounds) -> list[str]:
    """Every reason the job cannot be trained or posted (empty: it can)."""
    spec, problems = job.spec, []
    m = spec.model
    if spec.num_stages > m.n_layer:
        problems.append(
            f"spec.num_stages: {spec.num_stages} stages need at least {spec.num_stages} layers "
            f"(each stage trains at least one), but spec.model.n_layer is {m.n_layer}"
        )
    if m.vocab_size < BYTE_VOCAB:
        problems.append(
            f"spec.model.vocab_size: {m.vocab_size} is below {BYTE_VOCAB}, the byte tokens "
            "every dataset uses"
        )
    params = parameter_count(spec)
    if params > MAX_PARAMETERS:
        problems.append(
            f"spec.model: {params:,} parameters is more than the {MAX_PARAMETERS:,} a stage "
            "host can train (d_model, n_layer, mlp_ratio or vocab_size too large)"
        )
    if m.seq_len > MAX_SEQ_LEN:
        problems.append(f"spec.model.seq_len: {m.seq_len} is more than {MAX_SEQ_LEN}")
    leaves = spec.training.steps_per_round * spec.training.micro_batches
    if spec.audit.leaves_per_stage > leaves:
        problems.append(
            f"spec.audit.leaves_per_stage: {spec.audit.leaves_per_stage} is more than the "
            f"{leaves} leaves a stage commits per round (steps_per_round x micro_batches)"
        )
    terms = job.terms.to_terms(spec, "")
    values = dataclasses.asdict(terms)
    values.setdefault("micro_batches", spec.training.micro_batches)
    values["leaf_count"] = leaves
    for name, b in bounds.bounds.items():
        if name not in values or not isinstance(values[name], int):
            continue
        v = values[name]
        where = FIELD_PATHS.get(name, f"terms.{name}")
        if v > b.high:
            problems.append(
                f"{where}: {_show(name, v)} is more than JobMarket accepts "
                f"(at most {_show(name, b.high)}: {b.why_high})"
            )
        elif v < b.low:
            problems.append(
                f"{where}: {_show(name, v)} is less than the minimum {_show(name, b.low)}"
            )
    return problems


def require_postable(job: JobFile, bounds: ContractBounds, path: str | Path = "job file") -> None:
    """Raise one JobFileError listing every problem `check_job` finds."""
    problems = check_job(job, bounds)
    if problems:
        n = len(problems)
        raise JobFileError(
            f"job file {path} cannot be posted ({n} problem{'s' if n > 1 else ''}): "
            + "; ".join(problems)
        )


# -- the template `tessera job init` writes -------------------------------------------------


def job_file_template(
    *,
    dataset: str,
    stages: int = 2,
    name: str = "my-model",
    torch_version: str = "",
    cpu_capability: str = "",
) -> str:
    """A commented YAML job file that posts as is on a `tessera up` chain."""
    return f"""\
# Tessera job file: `tessera job post {{this file}} --dev-account 1`.
# Every field is documented in docs/jobs.md. Amounts are TSR; windows are seconds.

spec:                          # what to train; stored on IPFS, named by CID on-chain
  name: {name}
  num_stages: {stages}                # pipeline stages, one provider each (<= model.n_layer)
  dataset: {dataset}   # DatasetManifest CID (`tessera data add`)
  model:                       # a byte-level GPT
    vocab_size: 256            # byte tokens: at least 256
    n_layer: {max(stages, 2)}                 # transformer blocks, split across the stages
    n_head: 2                  # attention heads; must divide d_model
    d_model: 32                # width
    seq_len: 32                # context length in bytes
    mlp_ratio: 4               # MLP hidden width = mlp_ratio x d_model
    dropout: 0.0
  optimizer:
    name: adamw
    lr: 0.003
    betas: [0.9, 0.95]
    eps: 1.0e-08
    weight_decay: 0.0
    schedule: constant         # constant | cosine (over the global step; replays apply it too)
    warmup_steps: 0            # linear warm-up steps before the schedule
    decay_steps: 0             # cosine only: steps to decay over (> warmup_steps)
    min_lr_ratio: 0.1          # cosine only: the rate it ends at, as a fraction of lr
  compression:                 # what crosses a stage boundary
    method: none               # none | int8 | subspace
    rank: 8                    # subspace only: coordinates sent per position
    bits: 4                    # subspace only: bits per coordinate (2..8; rank x bits whole bytes)
    grad_bits: 4               # subspace only: bits per gradient coordinate
    stochastic_grad: true      # subspace only: seeded stochastic rounding of gradients
    scale: channel             # subspace only: channel | position
    grad_clip: 0.0             # subspace only: gradient range cap in RMS units (0: absmax)
    clip: 0.0                  # subspace only: activation range cap in RMS units (0: absmax)
  training:
    batch_size: 4              # sequences per step; divisible by micro_batches
    micro_batches: 2           # one trace leaf per micro-batch
    steps_per_round: 2         # optimizer steps per round
  determinism:                 # what a validator needs to replay a step bitwise
    seed: 7
    num_threads: 1
    torch_version: "{torch_version}"
    cpu_capability: "{cpu_capability}"
    device: cpu
  audit:
    leaves_per_stage: 1        # leaves each validator samples per stage and round
    cross_platform_rtol: 0.001 # tolerance when replaying on another platform
  init_checkpoint: null        # CID of starting weights, or null for the seeded init

terms:                         # on-chain; the escrow is pulled from the owner when posting
  rounds: 1                    # training rounds
  reward_per_stage_round: 10   # TSR paid to each unslashed stage per finalized round
  shares_per_stage_round: 1000 # model shares minted to each stage per finalized round
  min_stake: 100               # TSR each provider locks for this job
  commit_window: 240           # seconds from round start to commit
  challenge_window: 20         # seconds after the seal in which validators may challenge
  owner_share_bps: 1000        # owner's extra shares, basis points of each round's mint
  validator_pool: 10           # TSR set aside to reward validators
# escrow = reward_per_stage_round x num_stages x rounds + validator_pool
"""
