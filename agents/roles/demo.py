"""`tessera demo`: the whole protocol on one machine, end to end.

A local anvil chain (1 s blocks, like a testnet), the embedded content store
and a local Ray cluster; an owner posts a job over the demo corpus; one
provider per stage plus a standby and several validators run as Ray actors;
one provider cheats in one round. The run passes only if the cheater was
slashed, no honest party was, and every shareholder's claim equals its
pro-rata share of the inference revenue within a few wei.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.table import Table

from agents.chain.protocol import Protocol
from agents.errors import TesseraError
from agents.lineage.documents import (
    AuditPolicy,
    JobSpec,
    RoundRecord,
)
from agents.protocol.shares import pro_rata
from agents.spec import (
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
    steps_per_round: int = 16
    compression: str = "int8"
    prompt: str = "def "
    tokens: int = 48
    timeout: float = 540.0
    quiet: bool = False
    # Each provider in its own OS process, stages talking over the transport (the
    # across-operators mode); False: every provider a Ray actor of one cluster.
    transport: bool = True


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
    tokens_per_second: float = 0.0
    checkpoint: str = ""
    audit_cost: float = 0.0
    disputes: list[dict] = field(default_factory=list)
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
        optimizer=OptimizerConfig(lr=6e-3),
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

    from agents.lineage import build_dataset, demo_corpus_path
    from agents.roles.jobfile import TermsInput
    from agents.roles.localnet import drive, init_local_ray, local_net, start_job

    console = console or Console()
    started = time.monotonic()
    out = opts.out.resolve()
    report = DemoReport()
    n_providers = opts.stages
    standby = FIRST_PROVIDER + n_providers
    validator_base = standby + 1
    everyone = [OWNER, PAYER, *range(FIRST_PROVIDER, validator_base + opts.validators)]
    with local_net(out) as net:
        started_ray = init_local_ray()
        run = None
        try:
            console.print(f"[bold]chain[/] anvil at {net.url} (1 s blocks); contracts deployed")
            net.fund(everyone)
            corpus = demo_corpus_path()
            dataset_cid, manifest = build_dataset(
                net.store,
                corpus,
                name="python-stdlib-sample",
                source=str(corpus),
                license="PSF-2.0",
            )
            console.print(
                f"[bold]dataset[/] {dataset_cid} ({manifest.total_tokens:,} byte tokens, "
                f"{len(manifest.shards)} shards)"
            )
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
            faults = {}
            if opts.cheat_stage is not None:
                faults[opts.cheat_stage] = (opts.cheat, (opts.cheat_round,))
            run = start_job(
                net,
                demo_spec(dataset_cid, opts),
                terms,
                owner_index=OWNER,
                provider_indices=list(range(FIRST_PROVIDER, FIRST_PROVIDER + n_providers)),
                validator_indices=list(range(validator_base, validator_base + opts.validators)),
                standby_indices=[standby],
                faults=faults,
                transport=opts.transport,
            )
            report.job_id = run.job_id
            console.print(
                f"[bold]job {run.job_id}[/] posted (spec {run.spec_cid}); "
                f"{n_providers} providers, {opts.validators} validators, 1 standby"
                + (
                    " (each provider its own OS process, no shared Ray, over the transport)"
                    if opts.transport
                    else ""
                )
                + (
                    f"; stage {opts.cheat_stage} cheats ({opts.cheat}) in round {opts.cheat_round}"
                    if opts.cheat_stage is not None
                    else ""
                )
            )
            with Live(console=console, refresh_per_second=2, transient=opts.quiet) as live:

                def show(state) -> None:
                    live.update(_render(report, "running", run.snapshots(), state))

                try:
                    drive(net, run, timeout=opts.timeout, on_tick=show)
                except TimeoutError as exc:
                    report.failures.append(str(exc))
            p = run.owner.protocol
            (out / "agents.json").write_text(json.dumps(run.snapshots(), indent=2, default=str))
            _summarize(report, p, net.store, run.job_id, run.snapshots(), net.deployment.block)
            if not report.failures:
                _infer_and_claim(report, opts, net, run.job_id, everyone)
            _outputs(report, p, net.store, run.job_id, out)
        finally:
            if run is not None:
                run.stop()
            if started_ray:
                ray.shutdown()
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
    for ev in client.events("AuditCourt", "ChallengeOpened", from_block):
        d = p.dispute(int(ev.args["disputeId"]))
        report.disputes.append(
            {
                "id": d.dispute_id,
                "round": d.round,
                "stage": d.stage,
                "leaf": d.leaf_index,
                "challenger": d.challenger,
                "provider": d.provider,
                "status": d.status.name,
                "answered": bool(d.bundle_cid),
            }
        )
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


def _infer_and_claim(report, opts, net, job, everyone) -> None:
    payer = net.protocol(PAYER)
    if opts.transport:
        from agents.roles.gateway import TransportGateway
        from agents.transport.keys import TransportKey

        # Paid on-chain first (InferencePayments -> ModelShares.depositRevenue), then
        # served stage by stage with a KV cache per stage.
        gateway = TransportGateway(payer, net.store, job, TransportKey.generate())
        try:
            completion = gateway.generate(opts.prompt, opts.tokens)
        finally:
            gateway.close()
        report.tokens_per_second = completion.tokens_per_second
    else:
        from agents.roles.gateway import InferenceGateway

        gateway = InferenceGateway(payer, net.store, job, price_per_token=WEI // 100)
        completion = gateway.generate(opts.prompt, opts.tokens)
    report.generated = completion.text.decode("utf-8", errors="replace")
    report.revenue = completion.fee
    supply = payer.total_shares(job)
    for i in everyone:
        holder = net.protocol(i)
        bal = holder.shares_of(job)
        if not bal:
            continue
        expected = pro_rata(report.revenue, bal, supply)
        claimed = holder.claim(job)
        report.claims[net.address(i)] = (claimed, expected)


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
    # Several validators may dispute the cheater's commitment at once (each dispute finds
    # it guilty; the commitment is slashed once): count the parties, not the verdicts.
    if len({who for who, _, _ in provider_slashes}) > (1 if cheated else 0):
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
    if report.tokens_per_second:
        console.print(
            f"inference over the transport (KV cache per stage): "
            f"{report.tokens_per_second:.1f} tokens/s"
        )
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
