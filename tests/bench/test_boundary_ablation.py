"""bench/boundary_ablation.py: the arms differ from the setting only in the rounding they remove,
bad arguments are one argparse line, and a quick run prints every arm's gap and bytes."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from agents.spec import CompressionConfig, ModelConfig
from agents.training.compression import BoundaryCodec

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "bench" / "boundary_ablation.py"


def _ablation():
    spec = importlib.util.spec_from_file_location("bench_boundary_ablation", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def codec():
    model = ModelConfig(n_layer=4, n_head=4, d_model=128, seq_len=64)
    cfg = CompressionConfig(method="subspace", rank=8, bits=4, grad_bits=4)
    return BoundaryCodec(cfg, model, seed=3)


def test_exact_directions_carry_the_coordinates_bit_for_bit(codec):
    ablation = _ablation()
    gen = torch.Generator().manual_seed(0)
    features = torch.randn(2, 16, 8, generator=gen)
    grad = torch.randn(2, 16, 8, generator=gen) * 1e-4
    tokens = torch.randint(0, 256, (2, 16), generator=gen)
    exact = ablation.ExactCoordinates(codec, frozenset({"forward", "backward"}))
    got, got_tokens = exact.decode_forward(exact.encode_forward(features, tokens), (2, 16))
    assert torch.equal(got, features) and torch.equal(got_tokens, tokens)
    assert torch.equal(exact.decode_backward(exact.encode_backward(grad, "k"), (2, 16)), grad)
    # What a direction not named exact sends is the codec's own payload, rounding and all.
    forward_only = ablation.ExactCoordinates(codec, frozenset({"backward"}))
    sent = forward_only.encode_forward(features, tokens)
    want = codec.encode_forward(features, tokens)
    assert sent.keys() == want.keys() and all(torch.equal(sent[k], want[k]) for k in want)
    assert not torch.equal(forward_only.decode_forward(sent, (2, 16))[0], features)
    # Everything else is the wrapped codec's: the same basis and maps.
    assert forward_only.basis is codec.basis and forward_only.features == 8


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--exact-ranks", "7"], "--exact-ranks 7: Value error, rank (7) x bits (4) must fill"),
        (["--exact-ranks", "16", "16"], "--exact-ranks repeats a rank"),
        (["--exact-ranks", "256"], "subspace rank (256) exceeds d_model (128)"),
        (["--setting", "none"], "argument --setting: invalid choice: 'none'"),
        (["--steps", "120"], "--steps must be a multiple of --steps-per-round"),
        (["--seeds", "1", "1"], "--seeds 1 1 repeats a seed"),
    ],
)
def test_bad_arguments_are_one_error_line(argv, expected):
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), *argv], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and expected in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_quick_run_prints_every_arm():
    argv = [
        *("--steps", "20", "--steps-per-round", "10", "--warmup-steps", "5"),
        *("--seeds", "0", "--eval-windows", "8", "--exact-ranks", "16"),
    ]
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), *argv], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    figures = dict(
        line.split(" ", 1) for line in proc.stdout.splitlines() if line and line[0].isalpha()
    )
    for arm in ("exact", "forward_only", "backward_only", "codec", "exact_r16"):
        assert -1 < float(figures[f"gap_{arm}"]) <= float(figures[f"gap_{arm}_worst_seed"])
    nbytes = {k: int(v) for k, v in figures.items() if k.startswith("bytes_per_step_")}
    # 3 boundaries x 512 positions: float32 coordinates both ways plus the token byte,
    # against 4-bit codes both ways (bench/pipeline.py's 14,016 for this setting).
    assert nbytes["bytes_per_step_exact"] == 3 * 512 * (8 * 4 + 1 + 8 * 4)
    assert nbytes["bytes_per_step_exact_r16"] == 3 * 512 * (16 * 4 + 1 + 16 * 4)
    assert nbytes["bytes_per_step_codec"] == 14016
    assert nbytes["bytes_per_step_forward_only"] == nbytes["bytes_per_step_backward_only"]
    assert "# not a reference run (20 steps, 1 seeds" in proc.stdout
