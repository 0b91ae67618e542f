"""What a subspace boundary's loss gap is made of: the rank, the forward codes, the gradients.

    nice -n 10 python bench/boundary_ablation.py                  # seeds 0-3, the main setting
    python bench/boundary_ablation.py --setting subspace-r8-b5-clip3 --exact-ranks 16 32

The reference run of bench/pipeline.py (same model, corpus, schedule, held-out
windows and defaults), trained once per seed and arm through the real
in-process pipeline:

  none           the uncompressed pipeline: the baseline of every gap
  exact          the setting's subspace (anchor, re-embeddings, rank), its
                 coordinates sent as float32 both ways: what the rank costs
  forward_only   the setting's forward codes, the gradients exact
  backward_only  the setting's gradient codes, the forward exact
  codec          the setting as it is (bench/pipeline.py's figure)
  exact_r<R>     `exact` at rank R (--exact-ranks): the rank's cost curve

Printed: `gap_<arm> <mean>` and `gap_<arm>_worst_seed <worst>` per arm (the
gap as in bench/pipeline.py: (arm - none) / none at equal steps, same seed),
`bytes_per_step_<arm>`, then a table per seed. Exact coordinates are a lab
instrument, never a wire format: the codec here is swapped into the workers
after they are built (`ExactCoordinates`), production code knows nothing of
it, and nothing is judged against the issue's targets (exit 0 on a finished
run; a run shorter than the reference says so).
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
_spec_of = importlib.util.spec_from_file_location("bench_pipeline", ROOT / "bench" / "pipeline.py")
P = importlib.util.module_from_spec(_spec_of)
_spec_of.loader.exec_module(P)

from pydantic import ValidationError  # noqa: E402

from agents.spec import CompressionConfig  # noqa: E402

_DIRECTIONS = {
    "exact": frozenset({"forward", "backward"}),
    "forward_only": frozenset({"backward"}),
    "backward_only": frozenset({"forward"}),
    "codec": frozenset(),
}


class ExactCoordinates:
    """A subspace `BoundaryCodec` whose `exact` directions carry float32 coordinates.

    Everything else (the basis, the anchor, the receiver's re-embedding, the
    other direction's codes) is the wrapped codec's own, so an arm differs
    from the setting only in the rounding it removes."""

    def __init__(self, codec, exact: frozenset[str]) -> None:
        self._codec = codec
        self._exact = exact

    def __getattr__(self, name: str):
        return getattr(self._codec, name)

    def encode_forward(self, features: torch.Tensor, tokens: torch.Tensor):
        if "forward" not in self._exact:
            return self._codec.encode_forward(features, tokens)
        x = features.detach().to("cpu", torch.float32).clone(memory_format=torch.contiguous_format)
        return {"x": x, "tokens": tokens.to("cpu", torch.uint8).contiguous()}

    def decode_forward(self, payload, shape):
        if "forward" not in self._exact:
            return self._codec.decode_forward(payload, shape)
        return payload["x"], payload["tokens"].to(torch.int64)

    def encode_backward(self, grad: torch.Tensor, key: str | None = None):
        if "backward" not in self._exact:
            return self._codec.encode_backward(grad, key)
        g = grad.detach().to("cpu", torch.float32)
        return {"x": g.clone(memory_format=torch.contiguous_format)}

    def decode_backward(self, payload, shape):
        if "backward" not in self._exact:
            return self._codec.decode_backward(payload, shape)
        return payload["x"]


def _arms(setting: str, ranks: list[int]) -> list[tuple[str, str, frozenset[str]]]:
    """(arm, SETTINGS name, exact directions) per arm; rank variants are registered in SETTINGS."""
    arms = [(arm, setting, exact) for arm, exact in _DIRECTIONS.items()]
    for rank in ranks:
        name = f"{setting}@r{rank}"
        P.SETTINGS[name] = {**P.SETTINGS[setting], "rank": rank}
        arms.append((f"exact_r{rank}", name, _DIRECTIONS["exact"]))
    return arms


def main(argv: list[str] | None = None) -> int:
    """Train every arm on every seed and print the gaps; exit 2 on bad arguments."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    P.add_run_flags(p)
    p.set_defaults(seeds=[0, 1, 2, 3])
    p.add_argument(
        "--setting",
        default=P.DEFAULT_SETTINGS[1],
        choices=sorted(n for n, c in P.SETTINGS.items() if c["method"] == "subspace"),
        help="the subspace setting to take apart (bench/pipeline.py's SETTINGS)",
    )
    p.add_argument(
        "--exact-ranks",
        type=int,
        nargs="*",
        default=[],
        help="also the exact arm at these ranks (the rank's cost curve)",
    )
    args = p.parse_args(argv)
    if len(set(args.exact_ranks)) != len(args.exact_ranks):
        p.error("--exact-ranks repeats a rank")
    base = P.SETTINGS[args.setting]
    for rank in args.exact_ranks:
        try:
            CompressionConfig(**{**base, "rank": rank})
        except ValidationError as e:
            p.error(f"--exact-ranks {rank}: {P._flag_errors(e)}")
    arms = _arms(args.setting, args.exact_ranks)
    # The bench's own checks, on the flags this script shares with it (the rest at its defaults).
    full = argparse.Namespace(**{**vars(P.parser().parse_args([])), **vars(args)})
    full.settings = ["none", *dict.fromkeys(name for _, name, _ in arms)]
    problem = P._check_runs(full)
    if problem:
        p.error(problem)
    rounds = args.steps // args.steps_per_round
    torch.set_num_threads(1)

    from agents.storage import open_store

    t_start = time.perf_counter()
    loss: dict[str, dict[int, float]] = {}
    nbytes: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="tessera-ablation-") as tmp:
        store = open_store(Path(tmp) / "store")
        dataset, held = P._corpus(store)
        windows = P._eval_windows(held, args.seq_len, args.eval_windows)
        print(
            f"# {args.setting} taken apart: {args.steps} steps, peak lr {args.lr}, "
            f"seeds {args.seeds}; arms none, {', '.join(a for a, _, _ in arms)}",
            flush=True,
        )
        for seed in args.seeds:
            for arm, name, exact in [("none", "none", frozenset()), *arms]:
                spec = P._spec(args, dataset, name, seed)
                wrap = functools.partial(ExactCoordinates, exact=exact) if exact else None
                _, ev, _, _, per_step, _ = P._train_pipeline(
                    spec, store, rounds, windows, 0, codec_of=wrap
                )
                loss.setdefault(arm, {})[seed] = ev[-1][1]
                nbytes[arm] = per_step
                print(f"# {arm} seed {seed}: held-out {ev[-1][1]:.4f}", flush=True)

    def gaps(arm: str) -> list[float]:
        return [(loss[arm][s] - loss["none"][s]) / loss["none"][s] for s in args.seeds]

    print(f"loss_none {statistics.fmean(loss['none'].values()):.4f}")
    for arm, _, _ in arms:
        print(f"gap_{arm} {statistics.fmean(gaps(arm)):.4f}")
        print(f"gap_{arm}_worst_seed {max(gaps(arm)):.4f}")
        print(f"bytes_per_step_{arm} {nbytes[arm]:.0f}")
    seeds = "".join(f"{f'seed {s}':>10}" for s in args.seeds)
    print(f"\n{'arm':<16}{'bytes/step':>12}{seeds}")
    for arm in ["none", *(a for a, _, _ in arms)]:
        cells = (
            [f"{loss[arm][s]:>10.4f}" for s in args.seeds]
            if arm == "none"
            else [f"{g:>+10.4f}" for g in gaps(arm)]
        )
        print(f"{arm:<16}{nbytes[arm]:>12,.0f}" + "".join(cells))
    print(
        f"\n# none: held-out loss per seed; the other rows: gap per seed; "
        f"{time.perf_counter() - t_start:.0f} s in all"
    )
    if args.steps < P.REFERENCE_STEPS or len(args.seeds) < P.REFERENCE_SEEDS:
        print(
            f"# not a reference run ({args.steps} steps, {len(args.seeds)} seeds; the reference "
            f"is {P.REFERENCE_STEPS} steps, {P.REFERENCE_SEEDS} seeds)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
