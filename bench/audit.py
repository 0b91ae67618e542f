"""Audit benchmark: how often a cheater is caught, and what the audits cost.

    python bench/audit.py                  # 6000 steps a round, 2 micro-batches, K = 100
    python bench/audit.py --steps 600      # a quicker look (overhead then exceeds 5%)
    python bench/audit.py --snapshot-dir /var/tmp   # snapshots file-backed there

`rss_anon_gb_after_round` is the memory that cannot be paged out (no swap) while
every snapshot of the round is alive, `rss_file_gb_after_round` the file-backed
pages the kernel may write back and evict. With --snapshot-dir (StageWorker's
snapshot_dir, TESSERA_SNAPSHOT_DIR for a provider) the audited stage's
snapshots move from the first to the second; each costs page faults on fresh
file pages instead of anonymous ones (at --steps 600 --trials 50: 1.73 s of
snapshots for 40.2 s of compute, against 0.39 s for 41.7 s in RAM), so the
default stays in RAM and `audit_overhead` is measured there.

What runs, all real (torch, the embedded store, the production replay child):

1. One round of a small 3-stage model (6 layers, d_model 64, seq_len 64, batch 64 in
   2 micro-batches; `--steps` steps) trained with the in-process pipeline; the middle
   stage cheats (skips the optimizer update) in a seeded 5% of its steps. Only that
   stage keeps per-step snapshots (S copies of its state: ~1.2 MB each here).
2. For V = 1, 3, 10 validators, each with its own address, k = ceil(K / V) leaves:
   the provider builds ONE bundle (from the per-step snapshots its worker kept) for the
   union of the V samples, and the V validators replay their leaves' steps in the
   validator's replay child (`python -m agents.training.replay --serve`, started once
   and warmed up, as a validator keeps it). Every replayed step's verdict is checked:
   a mismatch exactly on the falsified steps, a match everywhere else (soundness).
   `audit_overhead V FRACTION` = (the provider's per-step snapshots + bundle building +
   all V validators' record checks and replays) / the audited stage's own compute time
   for the round (its `compute_seconds`, the smallest honest denominator: waiting on
   other stages is not counted as training; the snapshots are CPU time of the hashing
   thread that takes them, off the critical path but counted here all the same).
3. `detection_rate F V RATE`: over `--trials` seeded cheating runs, a provider
   falsifies F of its steps (1 step, 5%, 20% or all; whole steps are the cheater's best
   choice, since a replay checks every micro-batch of a sampled step), the seed and the
   V validators' addresses vary, and the run counts as caught when some validator's
   sampled leaf lies in a falsified step. Step 1 showed such a replay always mismatches
   and an honest one never does, so these are the rates of the real audit.

Why these sizes: a cheater falsifying a fraction f of its steps escapes K sampled steps
with probability (1-f)^K, so f = 5% at >= 99% needs K >= 90 (K = 100: 99.4%). A
replayed step costs its compute plus loading and hashing the snapshot (~1.1 steps of
compute), its bundle entry serialising two states and four payload files (~0.5), so
overhead ~ snapshots + 1.6 K / S: the per-step snapshot is ~1.2% of compute at 4096
tokens a step, and K = 100 within 5% needs S >= ~4500 steps a round (S = 6000: a
~20-minute round on 2 CPU cores; production rounds are longer and their steps far
bigger). Snapshots and the record check scale with the state, compute with the state
times the tokens a step trains on, so bigger batches only make the ratio better (at
1024 tokens a step the snapshots alone were ~4%). The union over validators is what
grows coverage: with V validators k = ceil(K / V) each, and each validator also pays
its own record check (O(leaves)) and replay-worker start.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from eth_utils import keccak  # noqa: E402

from agents.lineage.documents import DatasetManifest, ShardRef  # noqa: E402
from agents.spec import (  # noqa: E402
    AuditPolicy,
    CompressionConfig,
    DeterminismConfig,
    JobSpec,
    ModelConfig,
    TrainingConfig,
)

FRACTIONS = (("1step", None), ("5%", 0.05), ("20%", 0.20), ("all", 1.0))
VALIDATOR_COUNTS = (1, 3, 10)
JOB, ROUND, STAGE = 1, 0, 1


def _dataset(store) -> str:
    text = b"".join(p.read_bytes() for p in sorted((ROOT / "agents").rglob("*.py")))
    half = len(text) // 2
    shards = []
    for part in (text[:half], text[half:]):
        shards.append(ShardRef(cid=store.add_bytes(part), size=len(part), tokens=len(part)))
    manifest = DatasetManifest(
        name="tessera-source",
        source="this repository",
        license="Apache-2.0",
        shards=shards,
        total_tokens=sum(s.tokens for s in shards),
    )
    return store.put_json(manifest.model_dump(mode="json"))


def _spec(args, dataset: str) -> JobSpec:
    import torch

    return JobSpec(
        name="audit-bench",
        model=ModelConfig(n_layer=args.layers, n_head=2, d_model=args.d_model, seq_len=64),
        num_stages=3,
        dataset=dataset,
        compression=CompressionConfig(method="int8"),
        training=TrainingConfig(
            batch_size=args.batch_size,
            micro_batches=args.micro_batches,
            steps_per_round=args.steps,
        ),
        determinism=DeterminismConfig(
            seed=3,
            num_threads=1,
            torch_version=torch.__version__,
            cpu_capability=torch.backends.cpu.get_cpu_capability(),
        ),
        audit=AuditPolicy(leaves_per_stage=args.target_leaves),
    )


def _address(tag: str) -> str:
    return "0x" + keccak(tag.encode())[:20].hex()


def _falsified_count(fraction: float | None, steps: int) -> int:
    return 1 if fraction is None else max(1, math.ceil(fraction * steps))


def detection_rate(fraction, validators: int, k: int, steps: int, m: int, trials: int) -> float:
    """Seeded cheating runs: the share in which some validator samples a falsified step."""
    from agents.training.traces import validator_sample

    caught = 0
    n = steps * m
    for t in range(trials):
        rng = random.Random(f"cheat/{t}")
        bad = set(rng.sample(range(steps), _falsified_count(fraction, steps)))
        seed = keccak(f"seed/{t}".encode())
        addrs = [_address(f"validator/{t}/{v}") for v in range(validators)]
        if any(leaf // m in bad for a in addrs for leaf in validator_sample(seed, STAGE, a, k, n)):
            caught += 1
    return caught / trials


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print its figures."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=6000, help="steps per round")
    p.add_argument("--micro-batches", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=64, help="sequences (of 64 bytes) a step")
    p.add_argument("--d-model", type=int, default=64)
    p.add_argument("--layers", type=int, default=6, help="over 3 stages")
    p.add_argument("--target-leaves", type=int, default=100, help="K: leaves sampled in all")
    p.add_argument("--trials", type=int, default=1000, help="seeded cheating runs per (F, V)")
    p.add_argument(
        "--snapshot-dir",
        type=Path,
        default=None,
        help="map the audited stage's per-step snapshots from files here (default: RAM)",
    )
    args = p.parse_args(argv)

    from agents.faults import Fault, FaultyStageWorker
    from agents.roles.replay import ReplayWorker
    from agents.storage import open_store
    from agents.training.audit import ChainBinding, build_audit_bundle
    from agents.training.pipeline import InProcessPipeline
    from agents.training.traces import union_sample, validator_sample
    from agents.training.worker import StageWorker

    m = args.micro_batches
    with tempfile.TemporaryDirectory(prefix="tessera-audit-bench-") as tmp:
        store_dir = Path(tmp) / "store"
        store = open_store(store_dir)
        spec = _spec(args, _dataset(store))
        spec_cid = store.put_json(spec.model_dump(mode="json"))
        cheat_steps = frozenset(
            random.Random("bench-cheater").sample(
                range(args.steps), _falsified_count(0.05, args.steps)
            )
        )
        workers = [
            FaultyStageWorker(
                spec,
                s,
                store=store,
                fault=Fault.SKIP_STEPS,
                fault_rounds=frozenset({ROUND}),
                fault_steps=cheat_steps,
                snapshot_dir=args.snapshot_dir,
            )
            if s == STAGE
            # Only the audited stage keeps per-step snapshots (memory: S copies of a state).
            else StageWorker(spec, s, store=store, snapshots=False)
            for s in range(spec.num_stages)
        ]
        t0 = time.perf_counter()
        results = InProcessPipeline(workers).train_round(job_id=JOB, round=ROUND)
        wall = time.perf_counter() - t0
        res = results[STAGE]
        compute = res.metrics["compute_seconds"]
        snapshots = res.metrics["snapshot_seconds"]
        provider = _address("provider")
        record = res.to_record(
            provider=provider, spec=spec_cid, new_checkpoint=store.add_bytes(res.state_bytes)
        )
        record_cid = store.put_json(record.model_dump(mode="json"))
        binding = ChainBinding(JOB, ROUND, STAGE, spec_cid, provider, res.trace_root).to_json()
        print(f"round_steps {args.steps}")
        print(f"micro_batches {m}")
        print(f"leaves_per_round {args.steps * m}")
        print(f"target_leaves_K {args.target_leaves}")
        print(f"round_wall_s {wall:.2f}")
        print(f"stage_compute_s {compute:.2f}")
        print(f"stage_snapshot_s {snapshots:.2f}")
        # Every snapshot of the round is alive now: anonymous memory is what cannot be
        # paged out (no swap); file-backed pages the kernel writes back and evicts.
        mem = _memory_gb()
        print(f"rss_anon_gb_after_round {mem['RssAnon']:.2f}")
        print(f"rss_file_gb_after_round {mem['RssFile'] + mem['RssShmem']:.2f}")
        where = f"file-backed in {args.snapshot_dir}" if args.snapshot_dir else "in RAM"
        print(f"# snapshots {where}")

        replayer = ReplayWorker(str(store_dir), spec.determinism.cpu_capability)
        replayer.warm_up()
        seed = keccak(b"tessera/audit-bench/seed")
        n = args.steps * m
        unsound = 0
        try:
            # The child imports torch once per validator lifetime; pay it outside the figures.
            first = build_audit_bundle(workers[STAGE], workers[STAGE]._last_round, [0])
            replayer.replay([(first, record_cid, [0], binding)])
            for v in VALIDATOR_COUNTS:
                k = math.ceil(args.target_leaves / v)
                addrs = [_address(f"bench-validator/{i}") for i in range(v)]
                t0 = time.perf_counter()
                union = union_sample(seed, STAGE, addrs, k, n)
                bundle = build_audit_bundle(workers[STAGE], workers[STAGE]._last_round, union)
                bundle_s = time.perf_counter() - t0
                replay_s = 0.0
                steps_replayed = set()
                for a in addrs:
                    mine = validator_sample(seed, STAGE, a, k, n)
                    verdicts, secs = replayer.replay([(bundle, record_cid, mine, binding)])
                    replay_s += secs
                    for (_, leaf), verdict in verdicts.items():
                        step = leaf // m
                        steps_replayed.add(step)
                        if verdict.match is not (step not in cheat_steps):
                            unsound += 1
                overhead = (snapshots + bundle_s + replay_s) / compute
                print(
                    f"# V={v} k={k}: {len(steps_replayed)} distinct steps replayed, "
                    f"bundle {bundle_s:.2f}s, replays {replay_s:.2f}s"
                )
                print(f"audit_overhead {v} {overhead:.4f}")
        finally:
            replayer.close()
        print(f"replay_verdicts_wrong {unsound}")
        for name, fraction in FRACTIONS:
            for v in VALIDATOR_COUNTS:
                k = math.ceil(args.target_leaves / v)
                rate = detection_rate(fraction, v, k, args.steps, m, args.trials)
                print(f"detection_rate {name} {v} {rate:.4f}")
        expected = 1 - (1 - 0.05) ** args.target_leaves
        print(f"# (1-f)^K bound for f=5%, K={args.target_leaves}: detection {expected:.4f}")


def _memory_gb() -> dict[str, float]:
    """This process's resident memory by kind, in GB (Linux /proc/self/status)."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("RssAnon", "RssFile", "RssShmem"):
            out[key] = int(value.split()[0]) / 2**20
    return out


if __name__ == "__main__":
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    main()
