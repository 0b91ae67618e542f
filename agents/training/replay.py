"""Validator entry point: replay committed leaves in a fresh process.

    python -m agents.training.replay --store DIR BUNDLE_CID RECORD_CID LEAF_INDEX [LEAF_INDEX ...]
    python -m agents.training.replay --store DIR --item BUNDLE RECORD 0,3 --item ...

Prints one JSON line per leaf: {"leaf_index", "match", "mismatched", "detail"}.
Exit status 0 if every leaf matches, 1 if any mismatches, 2 on an error (one
line on stderr). The spec's CPU kernel set is put in the environment before
torch runs anything, which is why torch is imported only after the spec is read.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from agents.errors import TesseraError


def _replay_item(store, bundle_cid: str, record_cid: str, leaves: list[int]) -> list[dict]:
    """One (bundle, record) pair; a bundle or record that cannot be replayed is a mismatch."""
    from agents.lineage.documents import RoundRecord
    from agents.training.audit import replay_leaves

    try:
        record = RoundRecord.model_validate(store.get_json(record_cid))
        results = replay_leaves(store, bundle_cid, leaves, record=record)
        out = [results[i].to_json() for i in leaves]
    except (TesseraError, ValueError) as exc:
        detail = f"{exc}".splitlines()[0]
        out = [
            {"leaf_index": i, "match": False, "mismatched": ["bundle"], "detail": detail}
            for i in leaves
        ]
    for row in out:
        row["record"] = record_cid
    return out


def _serve(store) -> int:
    """Answer replay requests line by line until stdin closes (torch starts only once)."""
    import agents.training.audit  # noqa: F401  (pay torch's start-up before the first request)

    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            items = json.loads(line)["items"]
            rows = [row for b, r, leaves in items for row in _replay_item(store, b, r, leaves)]
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
    parser.add_argument(
        "--item",
        nargs=3,
        action="append",
        metavar=("BUNDLE", "RECORD", "LEAVES"),
        help="batch mode: replay comma-separated LEAVES of RECORD from BUNDLE (repeatable); "
        "one process for many stages saves a torch start-up per stage",
    )
    parser.add_argument(
        "--serve",
        action="store_true",
        help="stay up: read one JSON request per stdin line ({'items': [[BUNDLE, RECORD, "
        "[LEAF, ...]], ...]}) and answer one JSON line ({'rows': [...]}); the caller sets "
        "ATEN_CPU_CAPABILITY for the process",
    )
    parser.add_argument("bundle_cid", nargs="?")
    parser.add_argument("record_cid", nargs="?")
    parser.add_argument("leaf_index", type=int, nargs="*")
    args = parser.parse_args(argv)
    try:
        from agents.lineage.documents import RoundRecord
        from agents.spec import JobSpec
        from agents.storage import open_store

        store = open_store(args.store)
        if args.serve:
            return _serve(store)
        if args.item:
            items = [(b, r, [int(x) for x in leaves.split(",")]) for b, r, leaves in args.item]
        elif args.bundle_cid and args.record_cid and args.leaf_index:
            items = [(args.bundle_cid, args.record_cid, args.leaf_index)]
        else:
            parser.error("give BUNDLE RECORD LEAF [LEAF ...] or --item BUNDLE RECORD LEAVES")
        first = RoundRecord.model_validate(store.get_json(items[0][1]))
        spec = JobSpec.model_validate(store.get_json(first.spec))
        if spec.determinism.cpu_capability and spec.determinism.device == "cpu":
            os.environ["ATEN_CPU_CAPABILITY"] = spec.determinism.cpu_capability.lower()
        if args.item:
            rows = [row for item in items for row in _replay_item(store, *item)]
        else:
            from agents.training.audit import replay_leaves

            results = replay_leaves(store, args.bundle_cid, args.leaf_index, record=first)
            rows = [results[i].to_json() for i in args.leaf_index]
    except (TesseraError, ValueError) as exc:
        print(f"error: {exc}".splitlines()[0], file=sys.stderr)
        return 2
    for row in rows:
        print(json.dumps(row, sort_keys=True))
    return 0 if all(row["match"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
