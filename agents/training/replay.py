"""Validator entry point: replay committed leaves in a fresh process.

    python -m agents.training.replay --store DIR --binding JSON BUNDLE RECORD LEAF [LEAF ...]
    python -m agents.training.replay --store DIR --serve

`--binding` is what the chain committed (`ChainBinding.to_json()`: job_id,
round, stage, spec_cid, provider, trace_root); the spec is read from there,
never from the record or the bundle. Prints one JSON line per leaf of every
replayed step: {"leaf_index", "match", "mismatched", "detail"}; "match" is
null when this process cannot reproduce the platform (abstain). Exit status 0
if every leaf matches, 1 if any mismatches, 3 if it abstained, 2 on an error
(one line on stderr). The spec's CPU kernel set is put in the environment
before torch runs anything, which is why torch is imported only after the
spec is read.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from agents.errors import TesseraError


def _replay_item(store, bundle_cid: str, record_cid: str, leaves: list[int], binding) -> list:
    """One (bundle, record) pair; a record or bundle that cannot be replayed is a mismatch."""
    from agents.lineage.documents import RoundRecord
    from agents.training.audit import ChainBinding, replay_leaves

    b = ChainBinding.from_json(binding)
    try:
        record = RoundRecord.model_validate(store.get_json(record_cid))
    except (TesseraError, ValueError) as exc:
        detail = f"record {record_cid} is unusable: {exc}".splitlines()[0]
        out = [
            {"leaf_index": i, "match": False, "mismatched": ["record"], "detail": detail}
            for i in leaves
        ]
    else:
        try:
            results = replay_leaves(store, bundle_cid, leaves, record=record, binding=b)
            out = [results[i].to_json() for i in sorted(results)]
        except (TesseraError, ValueError) as exc:
            # Not the provider's fault (the chain's spec, this machine): never a mismatch.
            detail = f"abstain: {exc}".splitlines()[0]
            out = [
                {"leaf_index": i, "match": None, "mismatched": [], "detail": detail} for i in leaves
            ]
    for row in out:
        row["record"] = record_cid
    return out


def _state_hash(store, cid: str, stage: int) -> str:
    """The state hash of a published stage checkpoint; the zero hash if it is none (missing,
    corrupt, another stage's): no leaf ever ends in the zero hash, so that is a mismatch."""
    from agents.training.checkpoint import state_from_bytes, state_hash

    try:
        return state_hash(state_from_bytes(store.cat(cid), stage=stage))
    except (TesseraError, ValueError):
        return "0x" + "00" * 32


def _initial_hash(store, spec_cid: str, stage: int) -> str | None:
    """The state hash a stage of this spec starts round 0 from (its seeded init or checkpoint)."""
    from agents.spec import JobSpec
    from agents.training.worker import StageWorker

    try:
        spec = JobSpec.model_validate(store.get_json(spec_cid))
        init = store.cat(spec.init_checkpoint) if spec.init_checkpoint else None
        return StageWorker(spec, stage, store=store, state=init).state_hash()
    except (TesseraError, ValueError):
        return None  # e.g. the platform cannot be reproduced: no finding from this


def _serve(store) -> int:
    """Answer replay requests line by line until stdin closes (torch starts only once)."""
    import agents.training.audit  # noqa: F401  (pay torch's start-up before the first request)

    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
            if "state_hashes" in request:
                reply = {"hashes": [_state_hash(store, c, st) for c, st in request["state_hashes"]]}
            elif "initial" in request:
                reply = {"hashes": [_initial_hash(store, c, st) for c, st in request["initial"]]}
            else:
                items = request["items"]
                rows = [
                    row for b, r, lv, bind in items for row in _replay_item(store, b, r, lv, bind)
                ]
                reply = {"rows": rows}
        except (KeyError, TypeError, ValueError) as exc:
            reply = {"error": f"bad request: {exc}"}
        sys.stdout.write(json.dumps(reply, sort_keys=True) + "\n")
        sys.stdout.flush()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the replay; returns the process exit status."""
    parser = argparse.ArgumentParser(prog="python -m agents.training.replay")
    parser.add_argument("--store", required=True, help="content store directory")
    parser.add_argument("--binding", help="JSON of the chain's commitment (ChainBinding)")
    parser.add_argument(
        "--serve",
        action="store_true",
        help="stay up: read one JSON request per stdin line ({'items': [[BUNDLE, RECORD, "
        "[LEAF, ...], BINDING], ...]}) and answer one JSON line ({'rows': [...]}); the caller "
        "sets ATEN_CPU_CAPABILITY for the process",
    )
    parser.add_argument("bundle_cid", nargs="?")
    parser.add_argument("record_cid", nargs="?")
    parser.add_argument("leaf_index", type=int, nargs="*")
    args = parser.parse_args(argv)
    try:
        from agents.spec import JobSpec
        from agents.storage import open_store

        store = open_store(args.store)
        if args.serve:
            return _serve(store)
        if not (args.binding and args.bundle_cid and args.record_cid and args.leaf_index):
            parser.error("give --binding JSON BUNDLE RECORD LEAF [LEAF ...], or --serve")
        binding = json.loads(args.binding)
        spec = JobSpec.model_validate(store.get_json(binding["spec_cid"]))
        if spec.determinism.cpu_capability and spec.determinism.device == "cpu":
            os.environ["ATEN_CPU_CAPABILITY"] = spec.determinism.cpu_capability.lower()
        rows = _replay_item(store, args.bundle_cid, args.record_cid, args.leaf_index, binding)
    except (TesseraError, ValueError, KeyError) as exc:
        print(f"error: {exc}".splitlines()[0], file=sys.stderr)
        return 2
    for row in rows:
        print(json.dumps(row, sort_keys=True))
    if any(row["match"] is False for row in rows):
        return 1
    return 3 if any(row["match"] is None for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
