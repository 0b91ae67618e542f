"""Pipeline reference run: boundary compression vs loss gap, step time, bitwise replay.

    nice -n 10 python bench/pipeline.py                # the reference run (see defaults)
    python bench/pipeline.py --steps 100 --seeds 0     # a quick look while tuning
    python bench/pipeline.py --settings none subspace-r8-b4 --no-ray

(bench/boundary_ablation.py trains the same run to take a setting's gap apart:
what the rank costs with exact coordinates, and what each direction's codes add.)

The model (4 layers of d_model 128, one per stage, 4 stages, seq_len 64,
batch 8 in 2 micro-batches) trains for --steps steps on the demo corpus
(Python's standard library), once per seed and setting, through the real
in-process pipeline (StageWorkers with traces and the codec of the setting),
and once per seed in one process (the baseline). Loss is measured on
held-out files (every 10th document of the corpus, never trained on), the
compressed models through exactly the codec they were trained with. The
learning rate warms up linearly over 50 steps (`--warmup-steps`; without it the
uncompressed model is 0.25 nats worse and flatters every codec's gap), then
follows the spec's cosine schedule from 1.5e-3 (`--lr`) to 0 at the last
step (`--min-lr-ratio`; `--schedule constant` keeps 1.5e-3): the final iterate
of a constant rate carries the rounding noise of the compressed gradients,
which is not what a trained model is judged by. 1.5e-3 is the best peak rate
of the uncompressed pipeline on a grid (7.5e-4, 1e-3, 1.5e-3, 2.2e-3, 3e-3,
6e-3; seeds 0-3): the gap is measured against a baseline trained as well as
this schedule allows, not one a codec can look good next to (the spec's
default, 3e-3, leaves it 0.09 nats worse).

Printed, one `name value` line each:
  bytes_per_step_uncompressed / bytes_per_step_compressed / compression_ratio
      all boundaries, forward + backward, per optimizer step (main setting)
  loss_baseline, loss_pipeline_uncompressed, loss_pipeline_compressed
      held-out loss after the last step, mean over seeds
  loss_gap / loss_gap_worst_seed
      (compressed - uncompressed) / uncompressed at equal steps, same seed
  step_time_pipeline_s / step_time_single_process_s / step_time_ratio
      in-process pipeline (1 training thread, main setting, trace, per-step
      snapshots, checkpoint published every round) vs one process (1 thread),
      interleaved rounds, median wall time
  step_cpu_pipeline_s / step_cpu_single_process_s
      the same rounds' process CPU, every thread: the pipeline hashes each
      step's state on a second thread, beside the training thread
  step_time_ray_pipeline_s / step_time_single_process_<n>threads_s / step_time_ray_ratio
      4 Ray actors x 1 thread vs one process with n = min(4, cores) threads
  ray_actor_cpu_per_step_s, ray_driver_cpu_per_step_s, ray_call_cpu_s,
  ray_calls_per_round, schedule_utilisation_bound
      what bounds the Ray step on these cores (printed with the bound they give):
      one actor call per stage and step, the payloads over the stages' links
  replay_bitwise   every leaf of a published round of the main setting,
      replayed from its audit bundle in a fresh worker, matches bitwise
then a table of ratio vs loss gap per setting, and loss.png of the curves, and
the verdict: `# targets met` (exit 0) or `NOT met` (exit 1), or `not judged`
(exit 1) for a run shorter than the reference (500 steps, 3 seeds).

The step-time comparison is its own workload (--timing-*): the same 4-stage
model for both sides, seq_len 64, batch 128 in 8 micro-batches of 16 rows
(1,024 tokens each), rounds of 10 steps, 5 interleaved reps. A pipeline
stage pays per step for what makes it verifiable (hash of its whole state, a
snapshot for audits, trace leaves) and a fixed dispatch cost per call
(codec, payload hash, the hop); compute grows with tokens and those do not,
so a step of a few hundred tokens measures the bookkeeping rather than the
training. Micro-batches: GPipe's bubble is (S-1)/(M+S-1) of a step, and its
authors' rule is M >= 4S; with 8 micro-batches the actors' schedule of 4
stages can keep 2 cores busy 94% of a step (4: 89%, 2: 80%;
`schedule_utilisation`), and more, smaller micro-batches would pay the fixed
costs more often. The single process accumulates the very same micro-batches
(the arithmetic the pipeline must equal), so both sides run the same forward
and backward passes.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from pydantic import ValidationError  # noqa: E402

from agents.lineage.documents import DatasetManifest, ShardRef  # noqa: E402
from agents.spec import (  # noqa: E402
    CompressionConfig,
    DeterminismConfig,
    JobSpec,
    ModelConfig,
    OptimizerConfig,
    TrainingConfig,
)

# name -> CompressionConfig fields. The first compressed one named is the main setting.
SETTINGS: dict[str, dict] = {
    "none": {"method": "none"},
    "int8": {"method": "int8"},
    "subspace-r8-b4": {"method": "subspace", "rank": 8, "bits": 4, "grad_bits": 4},
    "subspace-r6-b4": {"method": "subspace", "rank": 6, "bits": 4, "grad_bits": 4},
    "subspace-r16-b4": {"method": "subspace", "rank": 16, "bits": 4, "grad_bits": 4},
    "subspace-r8-b4-pos": {
        "method": "subspace",
        "rank": 8,
        "bits": 4,
        "grad_bits": 4,
        "scale": "position",
    },
    "subspace-r8-b4-clip3": {
        "method": "subspace",
        "rank": 8,
        "bits": 4,
        "grad_bits": 4,
        "grad_clip": 3.0,
        "clip": 3.0,
    },
    "subspace-r12-b4-g2-clip3": {
        "method": "subspace",
        "rank": 12,
        "bits": 4,
        "grad_bits": 2,
        "grad_clip": 3.0,
    },
    "subspace-r8-b6-g3": {
        "method": "subspace",
        "rank": 8,
        "bits": 6,
        "grad_bits": 3,
        "grad_clip": 3.0,
    },
    "subspace-r8-b6-g2-clip3": {
        "method": "subspace",
        "rank": 8,
        "bits": 6,
        "grad_bits": 2,
        "grad_clip": 3.0,
        "clip": 3.0,
    },
    # The diagnostics of 2026-12-04 (README): what rank and code widths cost at 60-80x.
    "subspace-r8-b8": {"method": "subspace", "rank": 8, "bits": 8, "grad_bits": 8},
    "subspace-r8-b4-g8-clip3": {
        "method": "subspace",
        "rank": 8,
        "bits": 4,
        "grad_bits": 8,
        "clip": 3.0,
    },
    "subspace-r8-b6-g3-clip3": {
        "method": "subspace",
        "rank": 8,
        "bits": 6,
        "grad_bits": 3,
        "grad_clip": 3.0,
        "clip": 3.0,
    },
    "subspace-r16-b4-clip3": {
        "method": "subspace",
        "rank": 16,
        "bits": 4,
        "grad_bits": 4,
        "grad_clip": 3.0,
        "clip": 3.0,
    },
    # 2026-12-06 (README): 5-bit forward codes at 101x.
    "subspace-r8-b5-clip3": {
        "method": "subspace",
        "rank": 8,
        "bits": 5,
        "grad_bits": 4,
        "grad_clip": 3.0,
        "clip": 3.0,
    },
    "subspace-r8-b4-nearest": {
        "method": "subspace",
        "rank": 8,
        "bits": 4,
        "grad_bits": 4,
        "stochastic_grad": False,
    },
}
# What a run must have for its figures to be judged against the targets.
REFERENCE_STEPS = 500
REFERENCE_SEEDS = 3
# The uncompressed pipeline's best peak rate on this model and schedule (module docstring).
BENCH_LR = 1.5e-3
DEFAULT_SETTINGS = ["none", "subspace-r8-b4-clip3", "subspace-r8-b4", "int8"]
JOB = 1


# ------------------------------------------------------------------- data


def _corpus(store) -> tuple[str, bytes]:
    """The demo corpus as a training dataset (CID) and held-out bytes (every 10th file)."""
    from agents.lineage import demo_corpus_path
    from agents.lineage.datasets import iter_documents

    docs = [d.encode() + b"\n" for d in iter_documents(demo_corpus_path())]
    train = b"".join(d for i, d in enumerate(docs) if i % 10 != 9)
    held = b"".join(d for i, d in enumerate(docs) if i % 10 == 9)
    shards, size = [], 256 * 1024
    for i in range(0, len(train), size):
        part = train[i : i + size]
        cid = store.add_bytes(part)
        shards.append(ShardRef(cid=cid, size=len(part), tokens=len(part), name=f"train{i}"))
    manifest = DatasetManifest(
        name="demo-corpus-train",
        source="CPython standard library (agents.lineage.DEMO_MODULES), 9 of every 10 files",
        license="PSF-2.0",
        shards=shards,
        total_tokens=len(train),
    )
    return store.put_json(manifest.model_dump(mode="json")), held


def _eval_windows(held: bytes, seq_len: int, count: int) -> torch.Tensor:
    """`count` evenly spaced windows of seq_len + 1 held-out bytes."""
    stride = (len(held) - seq_len - 1) // count
    rows = [held[i * stride : i * stride + seq_len + 1] for i in range(count)]
    return torch.tensor([list(r) for r in rows], dtype=torch.int64)


# ------------------------------------------------------------------- runs


def _spec(
    args, dataset: str, setting: str, seed: int, threads: int = 1, batch_size: int = 0
) -> JobSpec:
    return JobSpec(
        name=f"bench-{setting}",
        model=ModelConfig(
            n_layer=args.layers, n_head=args.heads, d_model=args.d_model, seq_len=args.seq_len
        ),
        num_stages=args.stages,
        dataset=dataset,
        compression=CompressionConfig(**SETTINGS[setting]),
        training=TrainingConfig(
            batch_size=batch_size or args.batch_size,
            micro_batches=args.micro_batches,
            steps_per_round=args.steps_per_round,
        ),
        optimizer=_optimizer(args),
        determinism=DeterminismConfig(seed=seed, num_threads=threads),
    )


def _optimizer(args) -> OptimizerConfig:
    """AdamW at --lr after a linear warm-up of --warmup-steps, then (cosine) down to
    --min-lr-ratio of it at the last step."""
    common = {"lr": args.lr, "warmup_steps": args.warmup_steps}
    if args.schedule == "constant":
        return OptimizerConfig(**common)
    return OptimizerConfig(
        schedule="cosine", decay_steps=args.steps, min_lr_ratio=args.min_lr_ratio, **common
    )


# The bench flag behind each OptimizerConfig field, for its error messages.
_OPTIMIZER_FLAGS = {
    "warmup_steps": "--warmup-steps",
    "decay_steps": "--steps",
    "min_lr_ratio": "--min-lr-ratio",
    "lr": "--lr",
}


def _flag_errors(e: ValidationError) -> str:
    """A spec's validation errors on one line, the optimizer's fields in the bench's flag names."""
    parts = []
    for err in e.errors():
        msg = re.sub(r"\b(\w+)\b", lambda m: _OPTIMIZER_FLAGS.get(m[1], m[1]), err["msg"])
        loc = [str(part) for part in err["loc"]]
        field = _OPTIMIZER_FLAGS.get(loc[-1], ".".join(loc)) if loc else None
        parts.append(f"{field}: {msg}" if field else msg)
    return "; ".join(parts)


def _check_runs(args) -> str | None:
    """Why the runs these arguments ask for cannot start (None: they can).

    Builds every spec the bench will train (each setting, and the step-time
    workload) against a placeholder dataset, and the stage split, before
    anything trains: a bad model shape or batch split is one argparse line,
    not a traceback minutes in."""
    from agents.storage import compute_cid
    from agents.training.errors import StageError
    from agents.training.stages import stage_layer_ranges

    if args.steps_per_round < 1 or args.steps % args.steps_per_round:
        return "--steps must be a multiple of --steps-per-round"
    for flag in ("eval_windows", "timing_reps", "timing_steps_per_round"):
        if getattr(args, flag) < 1:
            return f"--{flag.replace('_', '-')} must be at least 1"
    if args.eval_every < 0:
        return "--eval-every must be 0 or more"
    if args.out.exists() and not args.out.is_dir():
        return f"--out {args.out} is a file, not a folder"
    if len(set(args.seeds)) != len(args.seeds):
        return f"--seeds {' '.join(map(str, args.seeds))} repeats a seed (one run per seed)"
    probe = compute_cid(b"bench-argument-check")
    timing = argparse.Namespace(
        **{
            **vars(args),
            "steps_per_round": args.timing_steps_per_round,
            "micro_batches": args.timing_micro_batches,
            "seq_len": args.timing_seq_len,
        }
    )
    try:
        for setting in args.settings:
            _spec(args, probe, setting, 0)
        _spec(timing, probe, args.settings[-1], 0, batch_size=args.timing_batch_size)
        stage_layer_ranges(args.layers, args.stages)
    except ValidationError as e:
        return _flag_errors(e)
    except StageError as e:
        return f"--layers / --stages: {e}"
    return None


@torch.no_grad()
def _eval_pipeline(workers, windows: torch.Tensor, batch: int = 32) -> float:
    from agents.training.model import lm_loss

    total = 0.0
    for i in range(0, len(windows), batch):
        rows = windows[i : i + batch]
        x = rows[:, :-1]
        for w in workers:
            x = w.infer(x, all_positions=True)
        total += float(lm_loss(x, rows[:, 1:])) * len(rows)
    return total / len(windows)


@torch.no_grad()
def _eval_model(model, windows: torch.Tensor, batch: int = 32) -> float:
    model.eval()
    total = 0.0
    for i in range(0, len(windows), batch):
        rows = windows[i : i + batch]
        _, loss = model(rows[:, :-1], rows[:, 1:])
        total += float(loss) * len(rows)
    model.train()
    return total / len(windows)


def _train_pipeline(spec: JobSpec, store, rounds: int, windows, eval_every: int, codec_of=None):
    """Train through the in-process pipeline; (train losses, [(step, held-out loss)], workers,
    last results, bytes per step, seconds per step). `codec_of` (diagnostics only,
    bench/boundary_ablation.py) replaces each worker's boundary codec before it trains."""
    from agents.training.pipeline import InProcessPipeline
    from agents.training.worker import StageWorker

    workers = [StageWorker(spec, s, store=store) for s in range(spec.num_stages)]
    if codec_of is not None:
        for w in workers:
            w.codec = codec_of(w.codec)
    pipe = InProcessPipeline(workers)
    losses, evals, seconds = [], [], 0.0
    results = None
    for r in range(rounds):
        last = r == rounds - 1
        t0 = time.perf_counter()
        results = pipe.train_round(JOB, r, with_state=last)
        seconds += time.perf_counter() - t0
        losses.extend(results[-1].step_losses)
        if last or (eval_every and (r + 1) % eval_every == 0):
            evals.append((len(losses), _eval_pipeline(workers, windows)))
    steps = len(losses)
    per_step = sum(res.bytes_sent for res in results) / spec.training.steps_per_round
    return losses, evals, workers, results, per_step, seconds / steps


def _replay_bitwise(spec: JobSpec, store, workers, results) -> bool:
    """Replay every leaf of the last round of every stage from its audit bundle."""
    from agents.training.audit import ChainBinding, replay_leaves, spec_cid

    spec_id = spec_cid(store, spec)
    ok = True
    for w, res in zip(workers, results, strict=True):
        provider = "0x" + f"{res.stage + 1:040x}"
        record = res.to_record(
            provider=provider,
            spec=spec_id,
            new_checkpoint=store.add_bytes(res.state_bytes),
        )
        binding = ChainBinding(
            job_id=res.job_id,
            round=res.round,
            stage=res.stage,
            spec_cid=spec_id,
            provider=provider,
            trace_root=res.trace_root,
        )
        leaves = list(range(len(res.leaves)))
        bundle = w.make_audit_bundle(leaves)
        verdicts = replay_leaves(store, bundle, leaves, record=record, binding=binding)
        ok &= all(v.match is True for v in verdicts.values())
    return ok


# ----------------------------------------------------------------- timing


def _time_single(spec: JobSpec, store, steps: int) -> tuple[float, float]:
    """(wall s/step, process CPU s/step) of the one-process baseline."""
    from agents.training.baseline import train_baseline

    c0 = time.process_time()
    run = train_baseline(spec, store, job_id=JOB, rounds=steps // spec.training.steps_per_round)
    # The CPU figure includes building the model (milliseconds, next to a round).
    return run.seconds / len(run.losses), (time.process_time() - c0) / len(run.losses)


def _time_in_process(spec: JobSpec, store, reps: int) -> dict[str, float]:
    """Medians over alternating rounds: wall and process CPU (every thread) per step,
    in-process pipeline vs one process."""
    from agents.training.pipeline import InProcessPipeline
    from agents.training.worker import StageWorker

    pipe = InProcessPipeline([StageWorker(spec, s, store=store) for s in range(spec.num_stages)])
    pipe.train_round(JOB, 0)  # warm-up
    n = spec.training.steps_per_round
    single_spec = spec.model_copy(update={"compression": CompressionConfig(method="none")})
    _time_single(single_spec, store, n)  # warm-up
    rows = []
    for r in range(1, reps + 1):
        t0, c0 = time.perf_counter(), time.process_time()
        pipe.train_round(JOB, r)  # publishes its checkpoint, as a provider does
        pipe_t, pipe_c = (time.perf_counter() - t0) / n, (time.process_time() - c0) / n
        rows.append((pipe_t, pipe_c, *_time_single(single_spec, store, n)))
    keys = ("pipe", "pipe_cpu", "single", "single_cpu")
    return {k: statistics.median(r[i] for r in rows) for i, k in enumerate(keys)}


def schedule_utilisation(
    stages: int, micro_batches: int, cores: int, backward: float = 2.0
) -> float:
    """Busy fraction of `cores` for one step of the Ray actors' schedule (forward 1,
    backward `backward` time units per stage and micro-batch; each stage runs its
    tasks one at a time in `stage_order`): the better of two greedy list schedules,
    lower stages served first or higher stages first. The bubble the schedule
    leaves, as far as a scheduler that knows nothing of the stages can avoid it."""
    return max(
        _list_schedule(stages, micro_batches, cores, backward, list(range(stages))),
        _list_schedule(stages, micro_batches, cores, backward, list(reversed(range(stages)))),
    )


def _list_schedule(
    stages: int, micro_batches: int, cores: int, backward: float, priority: list[int]
) -> float:
    import heapq

    from agents.training.links import FORWARD, stage_order

    queues = {
        s: [("F" if k == FORWARD else "B", s, m) for k, m in stage_order(s, stages, micro_batches)]
        for s in range(stages)
    }
    done: set = set()
    running: list = []
    busy: set = set()
    now = 0.0
    while any(queues.values()) or running:
        for s in priority:
            if len(running) >= cores:
                break
            if s in busy or not queues[s]:
                continue
            kind, _, m = queues[s][0]
            ok = (
                (s == 0 or ("F", s - 1, m) in done)
                if kind == "F"
                else (s == stages - 1 or ("B", s + 1, m) in done)
            )
            if ok:
                task = queues[s].pop(0)
                busy.add(s)
                heapq.heappush(running, (now + (1.0 if kind == "F" else backward), s, task))
        now, s, task = heapq.heappop(running)
        done.add(task)
        busy.discard(s)
    return stages * micro_batches * (1.0 + backward) / (cores * now)


def _time_ray(spec: JobSpec, store, store_dir: Path, reps: int) -> dict[str, float]:
    """Medians: Ray pipeline vs one process with the same threads capped at cores, plus
    what bounds the pipeline (CPU of actors and driver, per-call cost, bubble)."""
    import ray

    from agents.training.pipeline import RayPipeline, StageActor

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    cores = os.cpu_count() or 1
    ray.init(
        address="local",
        num_cpus=cores,
        include_dashboard=False,
        object_store_memory=200 * 2**20,
        log_to_driver=False,
        _system_config={"enable_worker_prestart": False},
    )
    n = spec.training.steps_per_round
    threads = min(spec.num_stages, cores)
    single_spec = spec.model_copy(
        update={
            "compression": CompressionConfig(method="none"),
            "determinism": spec.determinism.model_copy(update={"num_threads": threads}),
        }
    )
    try:
        actors = [StageActor.remote(spec, s, store=str(store_dir)) for s in range(spec.num_stages)]
        pipe = RayPipeline(actors)
        pipe.train_round(JOB, 0, with_state=False)  # warm-up
        _time_single(single_spec, store, n)
        # Per-call cost: a burst of the cheapest actor call, wall and CPU everywhere.
        calls = 400
        a0 = sum(ray.get([a.process_cpu_seconds.remote() for a in actors]))
        t0, c0 = time.perf_counter(), time.process_time()
        ray.get([actors[i % len(actors)].describe.remote() for i in range(calls)])
        call_wall = (time.perf_counter() - t0) / calls
        call_driver = (time.process_time() - c0) / calls
        call_actor = (sum(ray.get([a.process_cpu_seconds.remote() for a in actors])) - a0) / calls
        rows = []
        for r in range(1, reps + 1):
            a0 = sum(ray.get([a.process_cpu_seconds.remote() for a in actors]))
            t0, c0 = time.perf_counter(), time.process_time()
            pipe.train_round(JOB, r, with_state=False)  # the state stays with its stage
            wall, driver = (time.perf_counter() - t0) / n, (time.process_time() - c0) / n
            actor = (sum(ray.get([a.process_cpu_seconds.remote() for a in actors])) - a0) / n
            rows.append((wall, actor, driver, _time_single(single_spec, store, n)[0]))
        for a in actors:
            ray.kill(a)
    finally:
        ray.shutdown()
        torch.set_num_threads(1)
    out = {
        k: statistics.median(r[i] for r in rows)
        for i, k in enumerate(("ray", "actor_cpu", "driver_cpu", "single"))
    }
    m = spec.training.micro_batches
    out.update(
        threads=threads,
        cores=cores,
        call_wall=call_wall,
        call_cpu=call_driver + call_actor,
        calls_per_round=spec.num_stages * n,
        utilisation=schedule_utilisation(spec.num_stages, m, cores),
    )
    return out


# ------------------------------------------------------------------- main


def _plot(path: Path, curves: dict[str, list[list[float]]], evals: dict) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(f"# matplotlib is not installed: no {path}")
        return
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.5))
    k = 20
    for name, runs in curves.items():
        mean = [statistics.fmean(v) for v in zip(*runs, strict=True)]
        smooth = [statistics.fmean(mean[max(0, i - k + 1) : i + 1]) for i in range(len(mean))]
        ax.plot(range(1, len(smooth) + 1), smooth, label=name)
        pts = evals.get(name)
        if pts:
            steps = [s for s, _ in pts[0]]
            vals = [statistics.fmean(p[i][1] for p in pts) for i in range(len(steps))]
            bx.plot(steps, vals, marker="o", label=name)
    ax.set(xlabel="step", ylabel=f"train loss (nats, mean of seeds, {k}-step mean)")
    bx.set(xlabel="step", ylabel="held-out loss (nats, mean of seeds)")
    ax.legend()
    bx.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def add_run_flags(p: argparse.ArgumentParser) -> None:
    """The training run's flags and defaults: the model, schedule, seeds and held-out windows
    (bench/boundary_ablation.py trains the same run)."""
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--steps-per-round", type=int, default=50)
    p.add_argument(
        "--schedule",
        choices=["cosine", "constant"],
        default="cosine",
        help="learning rate: cosine to --min-lr-ratio of it by the last step, or constant",
    )
    p.add_argument(
        "--min-lr-ratio",
        type=float,
        default=0.0,
        help="the cosine's floor, reached at the last step, as a fraction of the rate",
    )
    p.add_argument(
        "--lr",
        type=float,
        default=BENCH_LR,
        help="peak learning rate (the uncompressed pipeline's best on the grid in the docstring)",
    )
    p.add_argument(
        "--warmup-steps",
        type=int,
        default=50,
        help="linear warm-up to --lr over this many steps (0: none, the figures before 2026-12-04)",
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--d-model", type=int, default=128)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--seq-len", type=int, default=64)
    p.add_argument("--stages", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--micro-batches", type=int, default=2)
    p.add_argument("--eval-windows", type=int, default=256)


def parser() -> argparse.ArgumentParser:
    """This bench's flags: the run's, the settings, the step-time workload, the output."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_run_flags(p)
    p.add_argument("--settings", nargs="+", default=DEFAULT_SETTINGS, choices=sorted(SETTINGS))
    p.add_argument("--eval-every", type=int, default=2, help="rounds between held-out evals")
    p.add_argument("--timing-reps", type=int, default=5)
    p.add_argument("--timing-seq-len", type=int, default=64)
    p.add_argument(
        "--timing-batch-size",
        type=int,
        default=128,
        help="batch of the step-time comparison (micro-batches big enough to amortise calls)",
    )
    p.add_argument(
        "--timing-micro-batches",
        type=int,
        default=8,
        help="micro-batches of the step-time comparison (GPipe's bubble shrinks with them)",
    )
    p.add_argument("--timing-steps-per-round", type=int, default=10)
    p.add_argument("--no-ray", action="store_true")
    p.add_argument("--out", type=Path, default=ROOT / "bench-out")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the reference run and print its figures; exit 1 if a target is missed."""
    p = parser()
    args = p.parse_args(argv)
    if "none" not in args.settings:
        args.settings = ["none", *args.settings]
    compressed = [s for s in args.settings if s != "none"]
    if not compressed:
        p.error("--settings needs a compressed setting besides none (the gap is against it)")
    problem = _check_runs(args)
    if problem:
        p.error(problem)
    main_setting = next((s for s in compressed if s.startswith("subspace")), compressed[0])
    rounds = args.steps // args.steps_per_round
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)

    from agents.storage import open_store
    from agents.training.baseline import train_baseline

    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tessera-bench-") as tmp:
        store_dir = Path(tmp) / "store"
        store = open_store(store_dir)
        dataset, held = _corpus(store)
        windows = _eval_windows(held, args.seq_len, args.eval_windows)
        probe = _spec(args, dataset, "none", 0)
        cfg, opt = probe.model, probe.optimizer
        rate = f"{args.schedule} learning rate from {opt.lr}"
        if opt.warmup_steps:
            rate = f"{opt.warmup_steps} warm-up steps, then {rate}"
        if opt.schedule == "cosine":
            rate += f" to {opt.min_lr_ratio:g}x"
        print(
            f"# model: {cfg.n_layer} layers, d_model {cfg.d_model}, {cfg.n_head} heads, "
            f"seq_len {cfg.seq_len}; {probe.num_stages} stages; batch "
            f"{probe.training.batch_size} in {probe.training.micro_batches} micro-batches; "
            f"{args.steps} steps, {rate}; "
            f"seeds {args.seeds}; held-out {len(held):,} bytes, "
            f"{len(windows)} windows; main setting {main_setting}",
            flush=True,
        )
        base_losses = []
        for seed in args.seeds:
            spec = _spec(args, dataset, "none", seed)
            run = train_baseline(spec, store, job_id=JOB, rounds=rounds)
            base_losses.append(_eval_model(run.model, windows))
            print(f"# baseline seed {seed}: held-out {base_losses[-1]:.4f}", flush=True)

        final: dict[str, dict[int, float]] = {}
        curves: dict[str, list[list[float]]] = {}
        evals: dict[str, list] = {}
        nbytes: dict[str, float] = {}
        replay_ok = None
        for setting in args.settings:
            for seed in args.seeds:
                spec = _spec(args, dataset, setting, seed)
                losses, ev, workers, results, per_step, sps = _train_pipeline(
                    spec, store, rounds, windows, args.eval_every
                )
                final.setdefault(setting, {})[seed] = ev[-1][1]
                curves.setdefault(setting, []).append(losses)
                evals.setdefault(setting, []).append(ev)
                nbytes[setting] = per_step
                print(
                    f"# {setting} seed {seed}: held-out {ev[-1][1]:.4f}, "
                    f"{per_step:,.0f} B/step, {sps:.3f} s/step",
                    flush=True,
                )
                if setting == main_setting and replay_ok is None:
                    replay_ok = _replay_bitwise(spec, store, workers, results)
                del workers, results

        args.steps_per_round = args.timing_steps_per_round
        args.micro_batches = args.timing_micro_batches
        args.seq_len = args.timing_seq_len
        timing_spec = _spec(
            args, dataset, main_setting, args.seeds[0], batch_size=args.timing_batch_size
        )
        print(
            f"# step time: seq_len {timing_spec.model.seq_len}, batch "
            f"{timing_spec.training.batch_size} in "
            f"{timing_spec.training.micro_batches} micro-batches, rounds of "
            f"{timing_spec.training.steps_per_round} steps, {args.timing_reps} interleaved reps",
            flush=True,
        )
        inproc = _time_in_process(timing_spec, store, args.timing_reps)
        pipe_s, single_s = inproc["pipe"], inproc["single"]
        ray_t = None
        if not args.no_ray:
            try:
                ray_t = _time_ray(timing_spec, store, store_dir, args.timing_reps)
            except ImportError:
                print("# ray is not installed: no Ray timing")

    def gaps(setting: str) -> list[float]:
        return [(final[setting][s] - final["none"][s]) / final["none"][s] for s in args.seeds]

    main_gaps = gaps(main_setting)
    ratio = nbytes["none"] / nbytes[main_setting]
    lines = [
        ("bytes_per_step_uncompressed", f"{nbytes['none']:.0f}"),
        ("bytes_per_step_compressed", f"{nbytes[main_setting]:.0f}"),
        ("compression_ratio", f"{ratio:.1f}"),
        ("loss_baseline", f"{statistics.fmean(base_losses):.4f}"),
        ("loss_pipeline_uncompressed", f"{statistics.fmean(final['none'].values()):.4f}"),
        ("loss_pipeline_compressed", f"{statistics.fmean(final[main_setting].values()):.4f}"),
        ("loss_gap", f"{statistics.fmean(main_gaps):.4f}"),
        ("loss_gap_worst_seed", f"{max(main_gaps):.4f}"),
        ("step_time_pipeline_s", f"{pipe_s:.4f}"),
        ("step_time_single_process_s", f"{single_s:.4f}"),
        ("step_time_ratio", f"{pipe_s / single_s:.3f}"),
    ]
    lines += [
        # Every thread of the process (the state hash runs beside the training thread).
        ("step_cpu_pipeline_s", f"{inproc['pipe_cpu']:.4f}"),
        ("step_cpu_single_process_s", f"{inproc['single_cpu']:.4f}"),
    ]
    if ray_t is not None:
        lines += [
            ("step_time_ray_pipeline_s", f"{ray_t['ray']:.4f}"),
            (f"step_time_single_process_{ray_t['threads']}threads_s", f"{ray_t['single']:.4f}"),
            ("step_time_ray_ratio", f"{ray_t['ray'] / ray_t['single']:.3f}"),
            ("ray_actor_cpu_per_step_s", f"{ray_t['actor_cpu']:.4f}"),
            ("ray_driver_cpu_per_step_s", f"{ray_t['driver_cpu']:.4f}"),
            ("ray_call_cpu_s", f"{ray_t['call_cpu']:.5f}"),
            ("ray_calls_per_round", f"{ray_t['calls_per_round']}"),
            ("schedule_utilisation_bound", f"{ray_t['utilisation']:.3f}"),
        ]
    lines.append(("replay_bitwise", "ok" if replay_ok else "fail"))
    for name, value in lines:
        print(f"{name} {value}")
    # A process with more threads than it can get cores for spins in OpenMP's
    # barriers and can run many times slower than with one thread: then the Ray
    # ratio measures that collapse, not the pipeline, and cannot meet a target.
    ray_broken = ray_t is not None and ray_t["single"] > single_s
    if ray_broken:
        print(
            f"# the {ray_t['threads']}-thread single process ran slower than the 1-thread one "
            f"({ray_t['single']:.4f} vs {single_s:.4f} s a step): its threads did not get "
            "their cores, so step_time_ray_ratio is no measurement (rerun on quieter cores)"
        )
    if ray_t is not None:
        bound = (ray_t["actor_cpu"] + ray_t["driver_cpu"]) / (ray_t["cores"] * ray_t["utilisation"])
        print(
            f"# ray: the CPU its actors and driver burn per step, spread over {ray_t['cores']} "
            f"cores at the schedule's utilisation, allows no step under about {bound:.4f} s "
            f"({bound / ray_t['single']:.3f}x); Ray's own share: {ray_t['calls_per_round']} "
            f"calls a round x {ray_t['call_cpu'] * 1e3:.2f} ms CPU (the payloads cross the "
            "stages' own links)"
        )

    print(
        f"\n{'setting':<24}{'bytes/step':>12}{'ratio':>9}{'held-out':>10}{'gap mean':>10}"
        f"{'gap worst':>11}"
    )
    for setting in args.settings:
        g = gaps(setting)
        print(
            f"{setting:<24}{nbytes[setting]:>12,.0f}{nbytes['none'] / nbytes[setting]:>8.1f}x"
            f"{statistics.fmean(final[setting].values()):>10.4f}"
            f"{statistics.fmean(g):>+10.4f}{max(g):>+11.4f}"
        )
    _plot(args.out / "loss.png", curves, evals)
    print(f"\n# loss curves: {args.out / 'loss.png'}; {time.perf_counter() - t_start:.0f} s in all")
    met = (
        ratio >= 100
        and statistics.fmean(main_gaps) <= 0.03
        and max(main_gaps) <= 0.05
        and pipe_s / single_s <= 1.2
        and (ray_t is None or (not ray_broken and ray_t["ray"] / ray_t["single"] <= 1.2))
        and replay_ok
    )
    # The targets are judged on a reference run only (issue 14: >= 500 steps,
    # >= 3 seeds): a quick look's gap after a few steps says nothing of them.
    short = [
        why
        for why, bad in (
            (f"{args.steps} steps < {REFERENCE_STEPS}", args.steps < REFERENCE_STEPS),
            (f"{len(args.seeds)} seeds < {REFERENCE_SEEDS}", len(args.seeds) < REFERENCE_SEEDS),
        )
        if bad
    ]
    if short:
        print(f"# targets not judged: not a reference run ({', '.join(short)})")
        return 1
    print(f"# targets {'met' if met else 'NOT met'}")
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
