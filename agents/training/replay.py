"""Validator entry point: replay committed leaves in a fresh process.

    python -m agents.training.replay --store DIR BUNDLE_CID RECORD_CID LEAF_INDEX [LEAF_INDEX ...]

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


def main(argv: list[str] | None = None) -> int:
    """Run the replay; returns the process exit status."""
    parser = argparse.ArgumentParser(prog="python -m agents.training.replay")
    parser.add_argument("--store", required=True, help="content store directory")
    parser.add_argument("bundle_cid")
    parser.add_argument("record_cid")
    parser.add_argument("leaf_index", type=int, nargs="+")
    args = parser.parse_args(argv)
    try:
        from agents.lineage.documents import JobSpec, RoundRecord
        from agents.storage import open_store

        store = open_store(args.store)
        record = RoundRecord.model_validate(store.get_json(args.record_cid))
        spec = JobSpec.model_validate(store.get_json(record.spec))
        if spec.determinism.cpu_capability and spec.determinism.device == "cpu":
            os.environ["ATEN_CPU_CAPABILITY"] = spec.determinism.cpu_capability.lower()
        from agents.training.audit import replay_leaves

        results = replay_leaves(store, args.bundle_cid, args.leaf_index, record=record)
    except (TesseraError, ValueError) as exc:
        print(f"error: {exc}".splitlines()[0], file=sys.stderr)
        return 2
    for index in args.leaf_index:
        print(json.dumps(results[index].to_json(), sort_keys=True))
    return 0 if all(r.match for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
