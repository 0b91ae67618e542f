"""Static analysis of the contracts with slither; fails on any untriaged High/Medium finding.

    .venv-slither/bin/python scripts/slither_check.py        (what `make lint` runs)

slither lives in its own virtualenv (`make .venv-slither`): its web3/eth-* pins would break
brownie's. It is fed through the solc-js shim with crytic-compile's standard-JSON platform.
Every accepted finding is listed in TRIAGED with the reason, mirrored in docs/economics.md.
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONTRACTS = ("TesseraToken", "StakeManager", "ModelShares", "JobMarket", "AuditCourt")
# JobMarket's children: terms and escrow, credited rewards (created by its constructor).
CONTRACTS += ("JobTerms", "RewardVault")
# The transport issue's contracts (kept on their own line for easy merges).
CONTRACTS += ("ProviderDirectory", "InferencePayments")
# The issue-10 additions: the stake-weighted registry, the randomness source, the timelock.
CONTRACTS += ("ValidatorRegistry", "PrevrandaoRandomness", "Timelock")

# (detector, contract.function) -> why it is accepted (see docs/economics.md, "Slither").
TRIAGED = {
    ("weak-prng", "AuditCourt._draw"): "committee draw from a future block hash, by design",
    ("reentrancy-no-eth", "AuditCourt.resolve"): "callees are the protocol's own contracts",
    ("reentrancy-no-eth", "AuditCourt.slashUnanswered"): "callees are the protocol's own contracts",
    ("reentrancy-no-eth", "JobMarket.finalizeRound"): "parking is the catch branch of the mint",
    ("unused-return", "AuditCourt._target"): "multi-value view, fields read as needed",
    ("unused-return", "AuditCourt._answer"): "multi-value view, fields read as needed",
    ("unused-return", "AuditCourt.revealLeaf"): "multi-value view, fields read as needed",
    # Issue 10's contracts. Strict equalities compare against a zero sentinel ("not set":
    # no entry, no exit, no seal, no seed), never against a balance an attacker can move.
    ("incorrect-equality", "ValidatorRegistry.validatorStakeOf"): "zero sentinel: no entry",
    ("incorrect-equality", "ValidatorRegistry.releaseValidatorStake"): "zero sentinel",
    ("incorrect-equality", "ValidatorRegistry.deregisterValidator"): "zero sentinel: no entry",
    ("incorrect-equality", "ValidatorRegistry.isValidator"): "zero sentinel: no exit",
    ("incorrect-equality", "ValidatorRegistry.registerValidator"): "first entry has no prefix",
    ("incorrect-equality", "JobMarket.auditSeed"): "zero sentinel: seed not recorded",
    ("incorrect-equality", "JobMarket.recordAuditSeed"): "zero sentinel: not sealed",
    ("reentrancy-no-eth", "JobMarket.sealRound"): "callee is the protocol's own StakeManager",
    ("unused-return", "AuditCourt._open"): "multi-value view, fields read as needed",
    ("unused-return", "AuditCourt.proveFault"): "multi-value view / slash result, read as needed",
    ("unused-return", "AuditCourt.provePayloadEquivocation"): "slash result, read as needed",
    ("unused-return", "AuditCourt._slashProven"): "slash result, provider not needed",
    ("unused-return", "AuditCourt._checkEquivocation"): "multi-value view, fields read as needed",
    ("unused-return", "AuditCourt.resolve"): "slash result, fields read as needed",
    ("unused-return", "AuditCourt.slashUnanswered"): "slash result, fields read as needed",
    ("unused-return", "JobMarket.sealRound"): "released amount is only informational",
    ("unused-return", "JobMarket.leaveStage"): "released amount is only informational",
    ("unused-return", "JobMarket._releaseHolders"): "released amount is only informational",
    ("unused-return", "JobMarket.finalizeRound"): "released amount is only informational",
    # The JobMarket split: the market reads its own JobTerms' multi-value views.
    ("unused-return", "JobMarket.joinStage"): "multi-value view of JobTerms, fields read as needed",
    ("unused-return", "JobMarket.slashCommitment"): "multi-value views of JobTerms / slash result",
    ("incorrect-equality", "JobMarket.commitRound"): "commit counter reaching the stage count",
}


def _where(result: dict) -> str:
    for el in result.get("elements", []):
        if el.get("type") == "function":
            parent = el.get("type_specific_fields", {}).get("parent", {}).get("name", "?")
            return f"{parent}.{el['name']}"
    first = (result.get("elements") or [{}])[0]
    return str(first.get("name", "?"))


def main() -> int:
    from crytic_compile import CryticCompile
    from crytic_compile.platform.solc_standard_json import SolcStandardJson
    from slither import Slither
    from slither.detectors import all_detectors
    from slither.detectors.abstract_detector import AbstractDetector

    ssj = SolcStandardJson(
        {
            "language": "Solidity",
            "sources": {},
            "settings": {"evmVersion": "cancun", "optimizer": {"enabled": True, "runs": 200}},
        }
    )
    for name in CONTRACTS:
        ssj.add_source_file(f"contracts/{name}.sol")
    ssj.add_remapping("@openzeppelin=node_modules/@openzeppelin")
    sl = Slither(
        CryticCompile(ssj, solc=str(ROOT / ".solcx/solc-v0.8.37")), filter_paths=["node_modules"]
    )
    for _, cls in inspect.getmembers(all_detectors, inspect.isclass):
        if issubclass(cls, AbstractDetector) and cls is not AbstractDetector:
            sl.register_detector(cls)
    untriaged = []
    counted = {"High": 0, "Medium": 0}
    for results in sl.run_detectors():
        for r in results:
            if r.get("impact") not in counted:
                continue
            counted[r["impact"]] += 1
            key = (r["check"], _where(r))
            if key not in TRIAGED:
                untriaged.append(
                    f"{r['impact']} {r['check']} in {key[1]}: {r['description'].splitlines()[0]}"
                )
    print(
        f"slither: {counted['High']} high, {counted['Medium']} medium, {len(untriaged)} untriaged"
    )
    for line in untriaged:
        print(f"  {line}")
    return 1 if untriaged else 0


if __name__ == "__main__":
    sys.exit(main())
