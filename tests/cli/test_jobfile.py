"""docs/jobs.md documents every field a job file can hold (a new field must be documented)."""

from __future__ import annotations

from pydantic import BaseModel

from agents.chain.artifacts import PROJECT_ROOT
from agents.roles.jobfile import JobFile


def _fields(model: type[BaseModel], prefix: str = "") -> list[str]:
    out = []
    for name, info in model.model_fields.items():
        if name == "kind":  # the document's type tag, fixed
            continue
        sub = info.annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            out += _fields(sub, f"{prefix}{name}.")
        else:
            out.append(prefix + name)
    return out


def test_every_job_file_field_is_documented():
    doc = (PROJECT_ROOT / "docs" / "jobs.md").read_text()
    spec = _fields(JobFile.model_fields["spec"].annotation)
    terms = _fields(JobFile.model_fields["terms"].annotation)
    assert len(spec) > 20 and len(terms) == 8
    missing = [f for f in spec + terms if f"| `{f}` |" not in doc]
    assert missing == []


def _job(**changes):
    import yaml

    from agents.roles.jobfile import job_file_template

    data = yaml.safe_load(
        job_file_template(dataset="bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4")
    )
    for path, value in changes.items():
        *parents, leaf = path.split("__")
        node = data
        for p in parents:
            node = node[p]
        node[leaf] = value
    return JobFile.model_validate(data)


ABI_CONSTANTS = {
    "MAX_STAGES": 64,
    "MAX_ROUNDS": 10_000,
    "MAX_STEPS_PER_ROUND": 100_000,
    "MAX_LEAVES": 1 << 20,
    "MAX_AUDIT_LEAVES": 1_024,
    "MAX_TOKEN_AMOUNT": 10**30,
    "MIN_COMMIT_WINDOW": 20,
    "MAX_OWNER_SHARE_BPS": 9_000,
}


def test_the_template_passes_every_check():
    from agents.roles.jobfile import ContractBounds, check_job

    bounds = ContractBounds.from_abi(_abi(), ABI_CONSTANTS)
    assert check_job(_job(), bounds) == []


def _abi():
    from agents.chain.artifacts import load_artifact

    return load_artifact("JobMarket").abi


def test_contract_constants_bound_the_fields_they_name():
    from agents.roles.jobfile import ContractBounds, check_job

    bounds = ContractBounds.from_abi(_abi(), ABI_CONSTANTS)
    problems = check_job(
        _job(
            terms__rounds=10_001,
            terms__commit_window=15,
            terms__owner_share_bps=9_001,
            terms__min_stake=10**13,
            spec__training__steps_per_round=100_001,
        ),
        bounds,
    )
    text = "; ".join(problems)
    assert (
        "terms.rounds: 10001 is more than JobMarket accepts (at most 10000: JobTerms.MAX_ROUNDS)"
        in text
    )
    assert "terms.commit_window: 15 is less than the minimum 20" in text
    assert "terms.owner_share_bps: 9001" in text and "MAX_OWNER_SHARE_BPS" in text
    assert "terms.min_stake: 10000000000000 TSR is more than JobMarket accepts" in text
    assert "at most 1000000000000 TSR" in text
    assert "spec.training.steps_per_round: 100001" in text
    assert len(problems) == 5
