"""Shared pieces of the integration tests: accounts, a tiny spec, job terms."""

from __future__ import annotations

import contextlib

from agents.lineage.documents import AuditPolicy, JobSpec
from agents.roles.jobfile import TermsInput
from agents.roles.localnet import start_job
from agents.spec import (
    CompressionConfig,
    DeterminismConfig,
    ModelConfig,
    TrainingConfig,
)

OWNER, PAYER = 1, 2
PROVIDERS = list(range(3, 8))  # up to 5 stages
STANDBYS = list(range(8, 12))
VALIDATORS = [12, 13, 14]
EVERYONE = [OWNER, PAYER, *PROVIDERS, *STANDBYS, *VALIDATORS]


def tiny_spec(dataset: str, stages: int, *, compression: str = "none") -> JobSpec:
    """A model small enough that a round takes a second or two on 2 cores."""
    import torch

    return JobSpec(
        name="integration",
        model=ModelConfig(n_layer=stages, n_head=2, d_model=32, seq_len=32),
        num_stages=stages,
        dataset=dataset,
        compression=CompressionConfig(method=compression),
        training=TrainingConfig(batch_size=4, micro_batches=2, steps_per_round=2),
        determinism=DeterminismConfig(
            seed=7,
            num_threads=1,
            torch_version=torch.__version__,
            cpu_capability=torch.backends.cpu.get_cpu_capability(),
        ),
        audit=AuditPolicy(leaves_per_stage=1),
    )


def terms(rounds: int, *, challenge_window: int = 20) -> TermsInput:
    return TermsInput(
        rounds=rounds,
        reward_per_stage_round=10,
        shares_per_stage_round=1000,
        min_stake=100,
        commit_window=240,
        challenge_window=challenge_window,
        owner_share_bps=1000,
        validator_pool=10,
    )


@contextlib.contextmanager
def job_running(net, spec: JobSpec, job_terms: TermsInput, **kw):
    """`start_job`; if the test fails, print each agent's last notes; always stop the agents."""
    run = start_job(net, spec, job_terms, **kw)
    try:
        yield run
    except BaseException:
        for snap in run.snapshots():
            print(snap["kind"], snap["address"][:10], snap.get("stage"), snap["notes"][-5:])
        raise
    finally:
        run.stop()
