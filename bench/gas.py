"""Gas used by the protocol's operations, one line each: `gas <operation> <gas used>`.

    python bench/gas.py

Starts its own anvil on a free loopback port through brownie (and stops it), deploys with
scripts/deploy.py, then runs each operation once in a realistic state. `claim_1000_holders`
claims from a model with 1,000 holders and must cost the same as `claim` with one holder.
`claimRewards` / `claimShares` are the pulls of what finalizeRound credits.
Exits non-zero when a target is missed: commitRound <= 100,000; depositRevenue and claim
<= 80,000; claim with 1,000 holders within 5% of claim with 1.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
E18 = 10**18

TARGETS = {"commitRound": 100_000, "depositRevenue": 80_000, "claim": 80_000}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _connect():
    """Load the brownie project and launch a private anvil on a free port."""
    os.chdir(ROOT)
    from brownie import network, project
    from brownie._config import CONFIG

    proj = project.load(ROOT, name="TesseraBench")
    settings = CONFIG.networks["development"]["cmd_settings"]
    settings["port"] = _free_port()
    settings["accounts"] = 20
    settings["gas_limit"] = 30_000_000
    network.connect("development")
    return proj, network


def _raw_mint(web3, shares, minter, holders, model_id):
    """Mint one share to each holder quickly: send every tx, then wait for the last."""
    fn = shares.mint
    last = None
    for h in holders:
        data = fn.encode_input(h, model_id, 1)
        last = web3.eth.send_transaction(
            {"from": minter.address, "to": shares.address, "data": data}
        )
    web3.eth.wait_for_transaction_receipt(last)


def run() -> dict[str, int]:
    """Run every operation once; return {operation: gas used}."""
    proj, network = _connect()
    try:
        from brownie import accounts, chain, web3

        deploy = _load(ROOT / "scripts" / "deploy.py", "tessera_deploy_bench").deploy
        helpers = _load(ROOT / "tests" / "contracts" / "contract_helpers.py", "tessera_helpers")
        params = dict(helpers.TEST_PARAMS)
        rec = deploy(accounts[0], params, write=False)
        c = rec["contracts"]
        token = proj.TesseraToken.at(c["TesseraToken"])
        stakes = proj.StakeManager.at(c["StakeManager"])
        shares = proj.ModelShares.at(c["ModelShares"])
        market = proj.JobMarket.at(c["JobMarket"])
        vault = proj.RewardVault.at(c["RewardVault"])
        court = proj.AuditCourt.at(c["AuditCourt"])
        registry = proj.ValidatorRegistry.at(c["ValidatorRegistry"])
        p = type("P", (), {})()
        p.deployer, p.token, p.stakes, p.shares, p.market, p.court = (
            accounts[0],
            token,
            stakes,
            shares,
            market,
            court,
        )
        owner, chal = accounts[1], accounts[2]
        provs = accounts[3:7]
        vals = accounts[7:11]
        for a in [owner, chal, *provs, *vals]:
            helpers.fund(p, a, 100_000 * E18)
        gas: dict[str, int] = {}

        gas["stake"] = stakes.stake(1_000 * E18, {"from": provs[0]}).gas_used
        for a in [*provs[1:], *vals]:
            stakes.stake(1_000 * E18, {"from": a})
        for v in vals:
            registry.registerValidator(100 * E18, {"from": v})
        gas["registerValidator"] = registry.registerValidator(
            100 * E18, {"from": provs[3]}
        ).gas_used

        n = 4
        tx = market.postJob(
            helpers.job_tuple(numStages=n, rounds=3), helpers.initial_hashes(n), {"from": owner}
        )
        gas["postJob"] = tx.gas_used
        job = tx.return_value
        gas["joinStage"] = market.joinStage(job, 0, {"from": provs[0]}).gas_used
        for s in range(1, n):
            market.joinStage(job, s, {"from": provs[s]})
        trees = [helpers.make_tree(f"bench/{s}") for s in range(n)]
        commit_gas = []
        for s in range(n):
            tx = market.commitRound(
                job,
                0,
                s,
                trees[s].root,
                helpers.final_hash(f"bench/{s}"),
                "bafyrei" + "a" * 52,
                {"from": provs[s]},
            )
            commit_gas.append(tx.gas_used)
        gas["commitRound"] = max(commit_gas[:-1])
        gas["commitRound_sealing"] = commit_gas[-1]
        gas["recordAuditSeed"] = market.recordAuditSeed(job, 0, {"from": chal}).gas_used

        leaf = 3
        tx = court.challenge(
            job, 0, 1, leaf, trees[1].leaf_hashes[leaf], trees[1].proof(leaf), {"from": chal}
        )
        gas["challenge"] = tx.gas_used
        dispute = tx.return_value
        gas["respond"] = court.respond(
            dispute, "bafybundle" + "b" * 49, {"from": provs[1]}
        ).gas_used
        members = court.committee(dispute)
        salt = b"\x01" * 32
        for m in members:
            court.commitVote(dispute, helpers.vote_hash(dispute, m, False, salt), {"from": m})
        for m in members:
            court.revealVote(dispute, False, salt, {"from": m})
        gas["resolve"] = court.resolve(dispute, {"from": chal}).gas_used
        # A structural proof: two leaves of one step with different paramsBefore.
        leaves = helpers.honest_leaves(4, 2, "bench-fault")
        lf = list(leaves[1])
        lf[2] = b"\x66" * 32  # paramsBefore of (step 0, micro-batch 1) swapped
        leaves[1] = tuple(lf)
        ftree = helpers.leaf_tree(leaves)
        job2 = market.postJob(
            helpers.job_tuple(numStages=1, rounds=1), helpers.initial_hashes(1), {"from": owner}
        ).return_value
        market.joinStage(job2, 0, {"from": provs[0]})
        market.commitRound(
            job2, 0, 0, ftree.root, helpers.final_hash("f"), "bafyrec", {"from": provs[0]}
        )
        market.recordAuditSeed(job2, 0, {"from": chal})
        gas["proveFault"] = court.proveFault(
            job2,
            0,
            0,
            0,
            (leaves[0], ftree.proof(0)),
            (leaves[1], ftree.proof(1)),
            {"from": chal},
        ).gas_used
        # A payload equivocation: a keyed provider signed a forward payload its leaf does
        # not record (agents/protocol/attestation.py makes the signature).
        from agents.protocol.attestation import FORWARD, PayloadContext, sign_payload

        signer = accounts.add()
        accounts[0].transfer(signer, "1 ether")
        helpers.fund(p, signer, 10_000 * E18)
        stakes.stake(1_000 * E18, {"from": signer})
        eleaves = helpers.honest_leaves(4, 2, "bench-equivocation")
        etree = helpers.leaf_tree(eleaves)
        job3 = market.postJob(
            helpers.job_tuple(numStages=1, rounds=1), helpers.initial_hashes(1), {"from": owner}
        ).return_value
        market.joinStage(job3, 0, {"from": signer})
        market.commitRound(
            job3, 0, 0, etree.root, helpers.final_hash("e"), "bafyrec", {"from": signer}
        )
        market.recordAuditSeed(job3, 0, {"from": chal})
        other = b"\x77" * 32
        ctx = PayloadContext(chain.id, market.address, job3, 0, 0, 0, 1, FORWARD)
        sig = sign_payload(signer.private_key, ctx, other)
        gas["provePayloadEquivocation"] = court.provePayloadEquivocation(
            job3, 0, 0, FORWARD, (eleaves[1], etree.proof(1)), other, sig, {"from": chal}
        ).gas_used
        chain.sleep(params["responseWindow"] + 101)
        chain.mine()
        tx = market.finalizeRound(job, 0, {"from": owner})
        gas["finalizeRound"] = tx.gas_used
        gas["finalizeRound_per_stage"] = tx.gas_used // n
        gas["claimRewards"] = vault.claimRewards({"from": provs[0]}).gas_used
        gas["claimShares"] = vault.claimShares(job, provs[0], {"from": provs[0]}).gas_used
        for s in range(1, n):
            vault.claimShares(job, provs[s], {"from": provs[s]})
        vault.claimShares(job, owner, {"from": owner})

        # Revenue: model `job` now has n provider holders plus the owner.
        shares.depositRevenue(job, 1_000 * E18, {"from": owner})  # first deposit warms slots
        gas["depositRevenue"] = shares.depositRevenue(job, 1_000 * E18, {"from": owner}).gas_used
        gas["claim"] = shares.claim(job, {"from": provs[0]}).gas_used

        # A model with exactly 1 holder, and one with 1,000 holders.
        shares.grantRole(shares.MINTER_ROLE(), accounts[0], {"from": accounts[0]})
        solo, crowd = 10_001, 10_002
        shares.mint(provs[2], solo, 1, {"from": accounts[0]})
        holders = [f"0x{i:040x}" for i in range(0x1000, 0x1000 + 999)]
        _raw_mint(web3, shares, accounts[0], [provs[3].address, *holders], crowd)
        assert shares.totalSupply(crowd) == 1_000, shares.totalSupply(crowd)
        for model in (solo, crowd):
            shares.depositRevenue(model, 1_000 * E18, {"from": owner})
            shares.depositRevenue(model, 1_000 * E18, {"from": owner})
        gas["claim_1_holder"] = shares.claim(solo, {"from": provs[2]}).gas_used
        gas["claim_1000_holders"] = shares.claim(crowd, {"from": provs[3]}).gas_used
        return gas
    finally:
        network.disconnect()


def check(gas: dict[str, int]) -> list[str]:
    """Return the missed targets, one line each."""
    missed = [f"{op} {gas[op]} > {limit}" for op, limit in TARGETS.items() if gas[op] > limit]
    one, many = gas["claim_1_holder"], gas["claim_1000_holders"]
    if abs(many - one) > 0.05 * one:
        missed.append(f"claim_1000_holders {many} vs claim_1_holder {one}: more than 5% apart")
    for op in ("claim_1_holder", "claim_1000_holders"):
        if gas[op] > TARGETS["claim"]:
            missed.append(f"{op} {gas[op]} > {TARGETS['claim']}")
    return missed


def main() -> int:
    """Print one `gas <operation> <gas used>` line per operation; non-zero exit on a miss."""
    gas = run()
    for op, used in gas.items():
        print(f"gas {op} {used}")
    missed = check(gas)
    for line in missed:
        print(f"TARGET MISSED: {line}", file=sys.stderr)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
