"""`tessera job …`: write, post, follow, finalize and cancel training jobs."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from agents.cli.apps import noun_app
from agents.cli.options import (
    DevAccount,
    JobId,
    Json,
    Keystore,
    Network,
    Rpc,
    Store,
    conn,
    console,
    err_console,
    job_exists,
    print_json,
    tsr,
)
from agents.errors import TesseraError

job_app = noun_app("Write, post and follow training jobs.")


@job_app.command("init")
def job_init(
    path: Annotated[Path, typer.Argument(help="job file to write")] = Path("job.yaml"),
    dataset: Annotated[
        str | None,
        typer.Option(help="DatasetManifest CID (default: add the local sample corpus now)"),
    ] = None,
    stages: Annotated[int, typer.Option(min=1, max=64, help="pipeline stages")] = 2,
    force: Annotated[bool, typer.Option("--force", help="overwrite an existing file")] = False,
    store: Store = None,
) -> None:
    """Write a commented job file that `tessera job post` accepts as is."""
    from agents.lineage.datasets import build_dataset, demo_corpus_path
    from agents.roles.jobfile import job_file_template
    from agents.storage import open_store, validate_cid

    if path.exists() and not force:
        raise TesseraError(f"{path} exists; pass --force to overwrite it")
    target = open_store(store)
    if dataset is None:
        corpus = demo_corpus_path()
        dataset, manifest = build_dataset(
            target, corpus, name=corpus.name, source=str(corpus), license="PSF-2.0"
        )
        err_console.print(
            f"added the sample corpus {corpus} as dataset {dataset} "
            f"({manifest.total_tokens} tokens)",
            highlight=False,
        )
    else:
        dataset = validate_cid(dataset)
        if not target.has(dataset):
            raise TesseraError(f"dataset {dataset} is not in the content store")
    import torch  # the job pins this machine's torch build and CPU kernels for replays

    text = job_file_template(
        dataset=dataset,
        stages=stages,
        torch_version=torch.__version__,
        cpu_capability=torch.backends.cpu.get_cpu_capability(),
    )
    path.write_text(text)
    err_console.print(f"wrote {path}; edit it, then `tessera job post {path}`", highlight=False)


@job_app.command("post")
def job_post(
    job_file: Annotated[Path, typer.Argument(help="job file (YAML or JSON; see `job init`)")],
    rpc: Rpc = None,
    network: Network = None,
    keystore: Keystore = None,
    dev_account: DevAccount = None,
    store: Store = None,
) -> None:
    """Post the job JOB_FILE describes; the escrow is pulled from your account.

    Every field is checked first (all problems reported at once), against the
    bounds of the deployed JobMarket too; nothing is stored or sent until the
    whole file is acceptable.
    """
    from agents.roles.jobfile import ContractBounds, load_job_file, require_postable
    from agents.roles.owner import OwnerAgent

    jf = load_job_file(job_file)
    require_postable(jf, ContractBounds.from_artifact(), job_file)  # before any connection
    c = conn(rpc, network, keystore, dev_account, store)
    require_postable(jf, ContractBounds.from_chain(c.client), job_file)
    posted = OwnerAgent(c.protocol, c.store).post(jf.spec, jf.terms)
    console.print(
        f"job {posted.job_id} posted: spec {posted.spec_cid}, escrow {tsr(posted.escrow)}",
        highlight=False,
    )


def _when(ts: int | None, now: int) -> str:
    if ts is None:
        return "-"
    at = dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%H:%M:%S UTC")
    return f"{at} (in {max(0, ts - now)} s)"


@job_app.command("status")
def job_status(
    job_id: JobId,
    json_out: Json = False,
    rpc: Rpc = None,
    network: Network = None,
) -> None:
    """Show a job's phase, next deadline, stages and escrow."""
    from agents.roles.keeper import describe_job

    c = conn(rpc, network, None, None, need_key=False)
    job_exists(c, job_id)
    info = describe_job(c.protocol, job_id)
    if json_out:
        print_json(info)
        return
    where = (
        f"round {info['current_round'] + 1} of {info['rounds']}"
        if info["current_round"] is not None
        else f"{info['rounds_finalized']} of {info['rounds']} rounds finalized"
    )
    console.print(
        f"job {job_id}: [bold]{info['status']}[/], {where}, escrow {tsr(info['escrow_wei'])}",
        highlight=False,
    )
    console.print(f"phase: {info['phase']} — {info['phase_text']}", highlight=False)
    if info["next_deadline"] is not None:
        when = _when(info["next_deadline"], info["now"])
        console.print(
            f"next deadline: {info['deadline_what']} at {when}",
            highlight=False,
        )
    if info.get("open_disputes"):
        console.print(f"open disputes: {info['open_disputes']}")
    table = Table("stage", "provider", "last finalized round")
    for st in info["stages"]:
        last = st["last_finalized_round"]
        table.add_row(
            str(st["stage"]), st["provider"] or "(vacant)", str(last) if last >= 0 else "-"
        )
    console.print(table)
    console.print(f"spec {info['spec_cid']}", highlight=False)


@job_app.command("finalize")
def job_finalize(
    job_id: JobId,
    rpc: Rpc = None,
    network: Network = None,
    keystore: Keystore = None,
    dev_account: DevAccount = None,
) -> None:
    """Seal / record the seed / finalize whatever round of JOB_ID is due (anyone may).

    Running providers and validators do this on their own; this command is for
    when none of them is running.
    """
    from agents.roles.keeper import Keeper

    c = conn(rpc, network, keystore, dev_account)
    job_exists(c, job_id)
    done = Keeper(c.protocol, job_id, c.client.deployment.block).tick()
    console.print("; ".join(done) or "nothing is due yet")


@job_app.command("cancel")
def job_cancel(
    job_id: JobId,
    rpc: Rpc = None,
    network: Network = None,
    keystore: Keystore = None,
    dev_account: DevAccount = None,
) -> None:
    """Cancel your job while it is open or between rounds; the escrow comes back."""
    from agents.roles.owner import OwnerAgent

    c = conn(rpc, network, keystore, dev_account)
    job_exists(c, job_id)
    refund = OwnerAgent(c.protocol, c.store).cancel(job_id)
    console.print(f"job {job_id} cancelled; {tsr(refund)} refunded", highlight=False)


@job_app.command("checkpoint")
def job_checkpoint(job_id: JobId, rpc: Rpc = None, network: Network = None, store: Store = None):
    """Publish the job's latest finalized CheckpointManifest; print its CID."""
    from agents.roles.owner import publish_checkpoint_manifest

    c = conn(rpc, network, None, None, store, need_key=False)
    job_exists(c, job_id)
    typer.echo(publish_checkpoint_manifest(c.protocol, c.store, job_id))
