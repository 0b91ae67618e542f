"""Training benchmark: throughput of the baseline and both pipelines, and boundary bytes.

    python bench/training.py                 # CPU: baseline, in-process, Ray, compression table
    python bench/training.py --no-ray        # the same without Ray (it need not be installed)
    python bench/training.py --device cuda --no-ray   # the in-process pipeline on CUDA too

Loss gaps of the codecs over seeds are bench/pipeline.py's business; the
table here is one round's bytes and loss, a smoke of each codec.

Defaults (6 layers, d_model 128, 4 heads, seq_len 64, 3 stages, batch 8 in
2 micro-batches) run in well under 2 minutes on 2 cores. The dataset is this
repository's own Python source, stored in a temporary embedded content store.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agents.lineage.documents import DatasetManifest, JobSpec, ShardRef  # noqa: E402
from agents.spec import (  # noqa: E402
    CompressionConfig,
    DeterminismConfig,
    ModelConfig,
    TrainingConfig,
)


class _MemoryStore:
    """Used only where agents.storage cannot be imported (a bare GPU machine)."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}

    def add_bytes(self, data: bytes) -> str:
        import base64

        digest = hashlib.sha256(data).digest()
        cid = "b" + base64.b32encode(digest).decode().lower().rstrip("=")
        self.blobs[cid] = bytes(data)
        return cid

    def cat(self, cid: str) -> bytes:
        return self.blobs[cid]

    def put_json(self, doc: dict) -> str:
        import json

        return self.add_bytes(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode())

    def get_json(self, cid: str) -> dict:
        import json

        return json.loads(self.cat(cid))


def _open_store(folder: Path):
    try:
        from agents.storage import open_store
    except ImportError:
        return _MemoryStore(), None
    return open_store(folder), folder


def _dataset(store) -> str:
    """This repository's Python source as a 2-shard byte dataset."""
    text = b"".join(p.read_bytes() for p in sorted((ROOT / "agents").rglob("*.py")))
    half = len(text) // 2
    shards = []
    for i, part in enumerate((text[:half], text[half:])):
        cid = store.add_bytes(part)
        shards.append(ShardRef(cid=cid, size=len(part), tokens=len(part), name=f"src{i}"))
    manifest = DatasetManifest(
        name="tessera-source",
        source="this repository",
        license="Apache-2.0",
        shards=shards,
        total_tokens=sum(s.tokens for s in shards),
    )
    return store.put_json(manifest.model_dump(mode="json"))


def _spec(args, dataset: str, method: str = "none", device: str = "cpu", **codec):
    return JobSpec(
        name="bench",
        model=ModelConfig(
            n_layer=args.layers, d_model=args.d_model, n_head=args.heads, seq_len=args.seq_len
        ),
        num_stages=args.stages,
        dataset=dataset,
        compression=CompressionConfig(method=method, **codec),
        training=TrainingConfig(
            batch_size=args.batch_size, micro_batches=args.micro_batches, steps_per_round=args.steps
        ),
        determinism=DeterminismConfig(seed=0, num_threads=args.threads, device=device),
    )


def _tokens(spec: JobSpec, rounds: int) -> int:
    t = spec.training
    return rounds * t.steps_per_round * t.batch_size * spec.model.seq_len


def _timed_rounds(pipe, rounds: int) -> tuple[float, list]:
    pipe.train_round(job_id=0, round=0)  # warm-up: allocations, Ray's first hops
    t0 = time.perf_counter()
    for r in range(1, rounds + 1):
        results = pipe.train_round(job_id=0, round=r)
    return time.perf_counter() - t0, results


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print its figures."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--layers", type=int, default=6)
    p.add_argument("--d-model", type=int, default=128)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--seq-len", type=int, default=64)
    p.add_argument("--stages", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--micro-batches", type=int, default=2)
    p.add_argument("--steps", type=int, default=4, help="steps per round")
    p.add_argument("--rounds", type=int, default=2, help="timed rounds (after one warm-up)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per stage")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--no-ray", action="store_true", help="skip the Ray pipeline")
    args = p.parse_args(argv)

    from agents.training.baseline import train_baseline
    from agents.training.pipeline import InProcessPipeline
    from agents.training.worker import StageWorker

    with tempfile.TemporaryDirectory(prefix="tessera-bench-") as tmp:
        store, store_dir = _open_store(Path(tmp) / "store")
        dataset = _dataset(store)
        spec = _spec(args, dataset)
        cfg = spec.model
        print(
            f"model: {cfg.n_layer} layers, d_model {cfg.d_model}, {cfg.n_head} heads, "
            f"seq_len {cfg.seq_len}; {spec.num_stages} stages; batch {spec.training.batch_size} "
            f"in {spec.training.micro_batches} micro-batches; {args.threads} thread(s) per stage"
        )
        tokens = _tokens(spec, args.rounds)

        train_baseline(spec, store, job_id=0, rounds=1)  # warm-up
        base = train_baseline(spec, store, job_id=0, rounds=args.rounds, start_round=1)
        rows = [("baseline (1 process)", "cpu", base.seconds, base.model.num_params())]

        workers = [StageWorker(spec, s, store=store) for s in range(spec.num_stages)]
        seconds, _ = _timed_rounds(InProcessPipeline(workers), args.rounds)
        rows.append(("in-process pipeline", "cpu", seconds, None))

        if args.device == "cuda":
            cuda_spec = _spec(args, dataset, device="cuda")
            workers = [StageWorker(cuda_spec, s, store=store) for s in range(spec.num_stages)]
            seconds, _ = _timed_rounds(InProcessPipeline(workers), args.rounds)
            rows.append(("in-process pipeline", "cuda", seconds, None))

        if not args.no_ray:
            rows.append(_ray_row(spec, store, store_dir, args.rounds))

        print(f"\n{'runner':<24}{'device':<8}{'tokens/s':>12}{'s/step':>10}")
        steps = args.rounds * spec.training.steps_per_round
        for name, device, secs, _ in rows:
            print(f"{name:<24}{device:<8}{tokens / secs:>12,.0f}{secs / steps:>10.3f}")

        print(
            "\nbytes crossing all stage boundaries per step "
            f"(fwd + bwd, {spec.num_stages - 1} boundaries)"
        )
        print(f"{'compression':<20}{'bytes/step':>14}{'ratio':>9}{'final loss':>12}")
        dense = None
        settings = (
            ("none", "none", {}),
            ("int8", "int8", {}),
            ("subspace r8 int4", "subspace", {"rank": 8, "bits": 4, "grad_bits": 4}),
        )
        for label, method, codec in settings:
            s = _spec(args, dataset, method, **codec)
            ws = [StageWorker(s, i, store=store) for i in range(s.num_stages)]
            results = InProcessPipeline(ws).train_round(job_id=0, round=0)
            per_step = sum(r.bytes_sent for r in results) / s.training.steps_per_round
            dense = dense or per_step
            loss = results[-1].metrics["loss_last"]
            print(f"{label:<20}{per_step:>14,.0f}{dense / per_step:>8.1f}x{loss:>12.4f}")


def _ray_row(spec, store, store_dir, rounds):
    try:
        import ray
    except ImportError:
        print("ray is not installed: skipping the Ray pipeline (use --no-ray to silence)")
        return ("ray pipeline (absent)", "cpu", float("inf"), None)
    from agents.training.pipeline import RayPipeline, StageActor

    if store_dir is None:
        raise SystemExit("the Ray pipeline needs agents.storage (actors open the store folder)")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=200 * 2**20,
        log_to_driver=False,
        _system_config={"enable_worker_prestart": False},
    )
    try:
        actors = [StageActor.remote(spec, s, store=str(store_dir)) for s in range(spec.num_stages)]
        seconds, _ = _timed_rounds(RayPipeline(actors), rounds)
    finally:
        ray.shutdown()
    return ("ray pipeline", "cpu", seconds, None)


if __name__ == "__main__":
    main()
