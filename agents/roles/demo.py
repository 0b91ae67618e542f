"""`tessera demo`: the whole protocol on one machine, end to end.

A local anvil chain (1 s blocks, like a testnet), the embedded content store
and a local Ray cluster; an owner posts a job over the demo corpus; one
provider per stage plus a standby and several validators run as Ray actors;
one provider cheats in one round. The run passes only if the cheater was
slashed, no honest party was, and every shareholder's claim equals its
pro-rata share of the inference revenue within a few wei.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.table import Table

from agents.chain.client import ChainClient
from agents.chain.keys import dev_account
from agents.chain.local import LocalChain
from agents.chain.protocol import JobStatus, Protocol
from agents.errors import TesseraError
from agents.lineage.documents import (
    AuditPolicy,
    JobSpec,
    RoundRecord,
)
from agents.protocol.shares import pro_rata
from agents.training.config import (
    CompressionConfig,
    DeterminismConfig,
    ModelConfig,
    OptimizerConfig,
    TrainingConfig,
)

WEI = 10**18
# Dev-account roles (anvil's mnemonic; local chain only).
DEPLOYER, OWNER, PAYER = 0, 1, 2
FIRST_PROVIDER = 3  # providers 3.., then the standby, then validators


@dataclass
class DemoOptions:
    """Knobs of the demo (the CLI exposes them)."""

    out: Path = Path("demo-out")
    stages: int = 3
    rounds: int = 3
    validators: int = 3
    cheat_stage: int | None = 1
    cheat_round: int = 1
    cheat: str = "fake-gradient"
    steps_per_round: int = 3
    compression: str = "int8"
    prompt: str = "def "
    tokens: int = 48
    timeout: float = 540.0
    quiet: bool = False


@dataclass
class DemoReport:
    """What the demo measured and checked."""

    job_id: int = 0
    losses: dict[int, float] = field(default_factory=dict)
    rounds_finalized: int = 0
    slashed: list[tuple[str, int, str]] = field(default_factory=list)  # (who, amount, why)
    paid: dict[str, int] = field(default_factory=dict)
    shares: dict[str, int] = field(default_factory=dict)
    claims: dict[str, tuple[int, int]] = field(default_factory=dict)  # who -> (claimed, expected)
    revenue: int = 0
    generated: str = ""
    checkpoint: str = ""
    audit_cost: float = 0.0
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


def demo_spec(dataset_cid: str, opts: DemoOptions) -> JobSpec:
    """The demo's job spec: a small byte-level GPT in `opts.stages` stages."""
    import torch

    return JobSpec(
        name="tessera-demo",
        model=ModelConfig(n_layer=6, n_head=4, d_model=128, seq_len=64),
        num_stages=opts.stages,
        dataset=dataset_cid,
        optimizer=OptimizerConfig(lr=3e-3),
        compression=CompressionConfig(method=opts.compression),
        training=TrainingConfig(
            batch_size=8, micro_batches=2, steps_per_round=opts.steps_per_round
        ),
        determinism=DeterminismConfig(
            seed=1234,
            num_threads=1,
            torch_version=torch.__version__,
            cpu_capability=torch.backends.cpu.get_cpu_capability(),
        ),
        audit=AuditPolicy(leaves_per_stage=1),
    )


def _render(report: DemoReport, phase: str, agents: list[dict], state) -> Table:
    table = Table(title=f"tessera demo — job {report.job_id} — {phase}", expand=False)
    for col in ("agent", "address", "stage", "commits", "bundles", "challenges", "notes"):
        table.add_column(col)
    for a in agents:
        table.add_row(
            a["kind"] + (" (vacated)" if a.get("vacated") else ""),
            a["address"][:10],
            "-" if a.get("stage") is None else str(a["stage"]),
            ",".join(str(r) for r, _ in a.get("commits", [])),
            ",".join(str(r) for r, _ in a.get("bundles", [])),
            ",".join(str(c[2]) for c in a.get("challenges", [])),
            (a.get("notes") or [""])[-1][:60],
        )
    if state is not None:
        table.caption = (
            f"status {state.status.name}, round {state.current_round}, "
            f"escrow {state.escrow / WEI:.1f} TSR"
        )
    return table


def run_demo(opts: DemoOptions, console: Console | None = None) -> DemoReport:
    """Run the demo; returns the report (its `failures` say what did not hold)."""
    import ray

    from agents.chain.deploy import deploy_protocol
    from agents.lineage import build_dataset, demo_corpus_path
    from agents.roles.owner import OwnerAgent
    from agents.roles.runner import agent_actor
    from agents.storage import open_store

    console = console or Console()
    started = time.monotonic()
    out = opts.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    store_dir = out / "store"
    os.environ["TESSERA_DEPLOYMENTS_DIR"] = str(out / "deployments")
    report = DemoReport()
    chain = LocalChain(block_time=1, log_path=out / "anvil.log").start()
    started_ray = False
    actors: list = []
    try:
        console.print(f"[bold]chain[/] anvil at {chain.url} (1 s blocks)")
        deployer = ChainClient(chain.url, dev_account(DEPLOYER, chain.chain_id))
        deployment = deploy_protocol(
            deployer,
            params={
                "unbondingPeriod": 30,
                "responseWindow": 12,
                "commitVoteWindow": 12,
                "revealWindow": 12,
                "challengeBond": 5 * WEI,
                "minValidatorStake": 20 * WEI,
                "committeeSize": 3,
            },
        )
        console.print(f"[bold]contracts[/] deployed at block {deployment.block}")
        n_providers = opts.stages + 1
        validator_base = FIRST_PROVIDER + n_providers
        everyone = [OWNER, PAYER, *range(FIRST_PROVIDER, validator_base + opts.validators)]
        for i in everyone:
            deployer.send(
                "TesseraToken", "mint", dev_account(i, chain.chain_id).address, 10_000 * WEI
            )

        store = open_store(str(store_dir))
        corpus = demo_corpus_path()
        dataset_cid, manifest = build_dataset(
            store, corpus, name="python-stdlib-sample", source=str(corpus), license="PSF-2.0"
        )
        console.print(
            f"[bold]dataset[/] {dataset_cid} ({manifest.total_tokens:,} byte tokens, "
            f"{len(manifest.shards)} shards)"
        )
        owner = OwnerAgent(
            Protocol(
                ChainClient(chain.url, dev_account(OWNER, chain.chain_id), deployment=deployment)
            ),
            store,
        )
        from agents.roles.jobfile import TermsInput

        spec = demo_spec(dataset_cid, opts)
        terms = TermsInput(
            rounds=opts.rounds,
            reward_per_stage_round=10,
            shares_per_stage_round=1000,
            min_stake=100,
            commit_window=300,
            challenge_window=30,
            owner_share_bps=1000,
            validator_pool=30,
        )
        posted = owner.post(spec, terms)
        report.job_id = job = posted.job_id
        console.print(
            f"[bold]job {job}[/] posted: spec {posted.spec_cid}, escrow {posted.escrow / WEI:g} TSR"
        )

        if not ray.is_initialized():
            ray.init(
                address="local",
                namespace="tessera",
                num_cpus=2,
                include_dashboard=False,
                object_store_memory=300 * 2**20,
                log_to_driver=False,
                _system_config={"enable_worker_prestart": False},
            )
            started_ray = True
        common = {
            "rpc": chain.url,
            "store": str(store_dir),
            "job_id": job,
            "deployment": deployment.to_dict(),
        }
        Agent = agent_actor()
        providers = []
        for stage in range(opts.stages):
            cheat = opts.cheat_stage == stage
            providers.append(
                Agent.remote(
                    "provider",
                    dev_index=FIRST_PROVIDER + stage,
                    stage=stage,
                    fault=opts.cheat if cheat else None,
                    fault_rounds=(opts.cheat_round,) if cheat else (),
                    **common,
                )
            )
        standby = Agent.remote("provider", dev_index=FIRST_PROVIDER + opts.stages, **common)
        validators = [
            Agent.remote("validator", dev_index=validator_base + i, **common)
            for i in range(opts.validators)
        ]
        actors = [*providers, *validators, standby]
        ray.get([a.setup.remote() for a in [*providers, *validators]])
        ray.get([a.start.remote() for a in [*providers, *validators]])
        console.print(
            f"[bold]agents[/] {len(providers)} providers, {len(validators)} validators, 1 standby"
            + (
                f"; stage {opts.cheat_stage} cheats ({opts.cheat}) in round {opts.cheat_round}"
                if opts.cheat_stage is not None
                else ""
            )
        )
        standby_started = False
        deadline = time.monotonic() + opts.timeout
        with Live(console=console, refresh_per_second=2, transient=opts.quiet) as live:
            while True:
                state = owner.protocol.job_state(job)
                owner.tick(job, deployment.block)
                snaps = ray.get([a.snapshot.remote() for a in actors])
                live.update(_render(report, "running", snaps, state))
                vacant = [
                    s
                    for s in range(opts.stages)
                    if int(owner.protocol.stage_provider(job, s), 16) == 0
                ]
                if vacant and not standby_started and state.status == JobStatus.RUNNING:
                    ray.get(standby.setup.remote())
                    ray.get(standby.start.remote())
                    standby_started = True
                    console.print(f"[yellow]standby provider joins vacated stage {vacant[0]}[/]")
                if state.status in (JobStatus.COMPLETED, JobStatus.CANCELLED):
                    break
                if time.monotonic() > deadline:
                    report.failures.append(f"job did not complete within {opts.timeout:.0f}s")
                    break
                time.sleep(1.0)
        _summarize(report, owner.protocol, store, job, snaps, deployment.block)
        if report.ok or state.status == JobStatus.COMPLETED:
            _infer_and_claim(report, opts, chain, deployment, store, job, everyone)
        _outputs(report, owner.protocol, store, job, out)
    finally:
        for a in actors:
            with contextlib.suppress(Exception):  # best effort: Ray shuts them down anyway
                ray.get(a.stop.remote(), timeout=30)
        if started_ray:
            ray.shutdown()
        chain.stop()
    report.seconds = time.monotonic() - started
    _check(report, opts)
    return report


def _summarize(
    report: DemoReport, p: Protocol, store, job: int, snaps: list[dict], from_block: int
) -> None:
    from agents.lineage import load_document

    client = p.client
    terms = p.job_terms(job)
    for ev in client.events("JobMarket", "RoundFinalized", from_block):
        if int(ev.args["jobId"]) == job:
            report.rounds_finalized += 1
    for ev in client.events("JobMarket", "StagePaid", from_block):
        if int(ev.args["jobId"]) == job:
            who = ev.args["provider"]
            report.paid[who] = report.paid.get(who, 0) + int(ev.args["reward"])
    for ev in client.events("AuditCourt", "DisputeResolved", from_block):
        d = p.dispute(int(ev.args["disputeId"]))
        who = d.provider if ev.args["providerSlashed"] else d.challenger
        why = (
            "provider, replay mismatch"
            if ev.args["providerSlashed"]
            else "challenger, frivolous challenge"
        )
        report.slashed.append((who, int(ev.args["slashAmount"]), why))
    last_stage = terms.num_stages - 1
    for r in range(terms.rounds):
        c = p.commitment(job, r, last_stage)
        if c.exists and not c.slashed:
            rec = load_document(store, c.record_cid, RoundRecord)
            if "loss" in rec.metrics:
                report.losses[r] = rec.metrics["loss"]
    holders = {s["address"] for s in snaps} | {p.job_state(job).owner}
    report.shares = {h: p.shares_of(job, h) for h in sorted(holders) if p.shares_of(job, h)}
    costs = [s["audit_cost"] for s in snaps if s["kind"] == "validator" and s.get("audit_cost")]
    report.audit_cost = sum(costs) / len(costs) if costs else 0.0


def _infer_and_claim(report, opts, chain, deployment, store, job, everyone) -> None:
    from agents.roles.gateway import InferenceGateway

    payer = Protocol(
        ChainClient(chain.url, dev_account(PAYER, chain.chain_id), deployment=deployment)
    )
    gateway = InferenceGateway(payer, store, job, price_per_token=WEI // 100)
    completion = gateway.generate(opts.prompt, opts.tokens)
    report.generated = completion.text.decode("utf-8", errors="replace")
    report.revenue = completion.fee
    supply = payer.total_shares(job)
    for i in everyone:
        acct = dev_account(i, chain.chain_id)
        holder = Protocol(ChainClient(chain.url, acct, deployment=deployment))
        bal = holder.shares_of(job)
        if not bal:
            continue
        expected = pro_rata(report.revenue, bal, supply)
        claimed = holder.claim(job)
        report.claims[acct.address] = (claimed, expected)


def _outputs(report: DemoReport, p: Protocol, store, job: int, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from agents.lineage import lineage_dot
    from agents.roles.owner import publish_checkpoint_manifest

    if report.losses:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        rounds = sorted(report.losses)
        ax.plot(rounds, [report.losses[r] for r in rounds], marker="o")
        ax.set_xlabel("round")
        ax.set_ylabel("mean training loss (last stage)")
        ax.set_title(f"Tessera demo — job {job}")
        ax.set_xticks(rounds)
        fig.tight_layout()
        fig.savefig(out / "loss.png", dpi=120)
        plt.close(fig)
    try:
        report.checkpoint = publish_checkpoint_manifest(p, store, job)
        (out / "lineage.dot").write_text(lineage_dot(store, report.checkpoint))
    except TesseraError as exc:
        report.failures.append(f"no final checkpoint: {exc}")
    (out / "summary.json").write_text(
        json.dumps({k: v for k, v in report.__dict__.items()}, indent=2, default=str)
    )


def _check(report: DemoReport, opts: DemoOptions) -> None:
    cheated = opts.cheat_stage is not None and opts.cheat_round < opts.rounds
    provider_slashes = [s for s in report.slashed if s[2].startswith("provider")]
    if cheated and not provider_slashes:
        report.failures.append("the cheating provider was not slashed")
    if len(provider_slashes) > (1 if cheated else 0):
        report.failures.append(f"honest parties were slashed: {provider_slashes}")
    if any(s[2].startswith("challenger") for s in report.slashed):
        report.failures.append("a validator (challenger) was slashed")
    if report.rounds_finalized < opts.rounds:
        report.failures.append(f"only {report.rounds_finalized}/{opts.rounds} rounds finalized")
    if not report.claims:
        report.failures.append("no shareholder claimed revenue")
    for who, (claimed, expected) in report.claims.items():
        if abs(claimed - expected) > 10:
            report.failures.append(f"{who} claimed {claimed}, pro-rata share is {expected}")


def print_report(report: DemoReport, console: Console) -> None:
    """The end-of-demo summary."""
    t = Table(title="loss per round (last stage, mean over steps)")
    t.add_column("round")
    t.add_column("loss")
    for r, loss in sorted(report.losses.items()):
        t.add_row(str(r), f"{loss:.4f}")
    console.print(t)
    console.print(f"rounds finalized: {report.rounds_finalized}")
    for who, amount, why in report.slashed:
        console.print(f"[red]slashed[/] {who}: {amount / WEI:g} TSR ({why})")
    t = Table(title="payments and shares")
    for col in (
        "account",
        "escrow paid (TSR)",
        "shares",
        "revenue claimed (TSR)",
        "pro-rata (TSR)",
    ):
        t.add_column(col)
    for who in sorted(set(report.paid) | set(report.shares)):
        claimed, expected = report.claims.get(who, (0, 0))
        t.add_row(
            who,
            f"{report.paid.get(who, 0) / WEI:g}",
            str(report.shares.get(who, 0)),
            f"{claimed / WEI:.6f}",
            f"{expected / WEI:.6f}",
        )
    console.print(t)
    console.print(f"generated through the pipeline: {report.generated!r}")
    console.print(f"inference revenue deposited: {report.revenue / WEI:g} TSR")
    console.print(f"audit cost: {report.audit_cost:.1%} of the training compute audited")
    console.print(f"final checkpoint manifest: {report.checkpoint}")
    console.print(f"wall time: {report.seconds:.0f}s")
    if report.ok:
        console.print(
            "[bold green]demo passed[/]: the cheater was slashed, nobody honest was, "
            "claims are pro rata"
        )
    else:
        for f in report.failures:
            console.print(f"[bold red]FAILED[/] {f}")
