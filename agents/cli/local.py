"""Top-level verbs: `tessera up` (a local chain), `tessera infer`, `tessera demo`."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from agents.cli.options import (
    WEI,
    DevAccount,
    Keystore,
    Network,
    Rpc,
    Store,
    conn,
    console,
    job_exists,
    parse_tsr,
    tsr,
)
from agents.errors import TesseraError

FUNDED_DEV_ACCOUNTS = range(1, 10)
DEV_FUNDING = 10_000 * WEI


def up(
    port: Annotated[int, typer.Option(min=0, max=65535, help="anvil port (0: a free one)")] = 0,
    block_time: Annotated[float, typer.Option(min=0.1, help="seconds per block")] = 1.0,
    rpc: Rpc = None,
    network: Network = None,
) -> None:
    """Start a local chain, deploy the protocol and fund dev accounts (or check a remote one).

    The deployment is recorded in your data directory (~/.tessera/deployments,
    or $TESSERA_HOME), not in the checkout.
    """
    from agents.chain.client import ChainClient
    from agents.chain.deploy import deploy_protocol
    from agents.chain.deployments import load_deployment, save_deployment
    from agents.chain.keys import dev_account
    from agents.chain.local import LocalChain

    if rpc or network:
        c = conn(rpc, network, None, None, need_key=False)
        dep = load_deployment(c.client.chain_id)
        console.print(f"chain {dep.chain_id}: protocol deployed at block {dep.block}")
        for name, addr in sorted(dep.contracts.items()):
            console.print(f"  {name:13} {addr}")
        return
    import signal

    def _interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops anvil too, like Ctrl-C
    chain = LocalChain(port=port, block_time=block_time).start()
    try:
        from agents.roles.localnet import FAST_PARAMS

        deployer = ChainClient(chain.url, dev_account(0, chain.chain_id))
        dep = deploy_protocol(deployer, FAST_PARAMS)  # dispute windows of seconds, for dev
        path = save_deployment(dep)
        for i in FUNDED_DEV_ACCOUNTS:
            deployer.send(
                "TesseraToken", "mint", dev_account(i, chain.chain_id).address, DEV_FUNDING
            )
        console.print(
            f"anvil on {chain.url}; deployment written to {path}", highlight=False, soft_wrap=True
        )
        console.print(
            f"dev accounts {FUNDED_DEV_ACCOUNTS.start}-{FUNDED_DEV_ACCOUNTS.stop - 1} hold "
            f"{tsr(DEV_FUNDING)} each. In another shell:\n"
            f"  export TESSERA_RPC={chain.url}\n  ray start --head  # for providers and infer",
            highlight=False,
        )
        console.print("Ctrl-C stops the chain.")
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        chain.stop()


def infer(
    model: Annotated[int, typer.Option(min=1, help="model id (= job id)")],
    prompt: Annotated[str, typer.Option(help="text to continue")],
    max_tokens: Annotated[int, typer.Option(min=1, help="byte tokens to generate")] = 64,
    price: Annotated[str, typer.Option(help="TSR per generated token")] = "0.01",
    rpc: Rpc = None,
    network: Network = None,
    keystore: Keystore = None,
    dev_account: DevAccount = None,
    store: Store = None,
) -> None:
    """Generate text through the stage holders' pipeline and pay the shareholders for it."""
    from agents.cli.running import join_ray
    from agents.roles.gateway import InferenceGateway

    fee = parse_tsr(price)
    c = conn(rpc, network, keystore, dev_account, store)
    job_exists(c, model)
    join_ray()
    gw = InferenceGateway(c.protocol, c.store, model, price_per_token=fee)
    done = gw.generate(prompt, max_tokens)
    console.print(done.text.decode("utf-8", errors="replace"), markup=False, highlight=False)
    console.print(
        f"[dim]{done.tokens} tokens, {tsr(done.fee)} paid to model {model}'s holders[/]",
        highlight=False,
    )


def demo(
    out: Annotated[str, typer.Option(help="output folder")] = "demo-out",
    stages: Annotated[int, typer.Option(min=1, help="pipeline stages (one provider each)")] = 3,
    rounds: Annotated[int, typer.Option(min=1, help="training rounds")] = 3,
    validators: Annotated[int, typer.Option(min=0, help="validator agents")] = 3,
    cheat_stage: Annotated[int, typer.Option(help="stage whose provider cheats")] = 1,
    cheat_round: Annotated[int, typer.Option(help="round (0-based) it cheats in")] = 1,
    cheat: Annotated[
        str,
        typer.Option(
            help="fake-gradient | skip-steps | wrong-data | withhold-bundles | garbage-record"
        ),
    ] = "fake-gradient",
    no_cheat: Annotated[bool, typer.Option("--no-cheat", help="everyone is honest")] = False,
    compression: Annotated[str, typer.Option(help="none | int8 | subspace")] = "int8",
) -> None:
    """Run the whole protocol locally; exit 0 only if every check holds."""
    from pathlib import Path

    from agents.roles.demo import DemoOptions, print_report, run_demo

    if not no_cheat and not 0 <= cheat_stage < stages:
        raise TesseraError(f"--cheat-stage must be in 0..{stages - 1}")
    if not no_cheat and not 0 <= cheat_round < rounds - 1:
        raise TesseraError(f"--cheat-round must be in 0..{rounds - 2} (a later round must follow)")
    opts = DemoOptions(
        out=Path(out),
        stages=stages,
        rounds=rounds,
        validators=validators,
        cheat_stage=None if no_cheat else cheat_stage,
        cheat_round=cheat_round,
        cheat=cheat,
        compression=compression,
    )
    report = run_demo(opts, console)
    print_report(report, console)
    if not report.ok:
        raise typer.Exit(1)
