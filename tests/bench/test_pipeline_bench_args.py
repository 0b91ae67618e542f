"""bench/pipeline.py refuses a bad schedule, model shape, batch split or setting list with one
argparse line (exit 2), before it trains anything: the spec's own rules, checked on every spec
the bench would build."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--warmup-steps", "500"], "needs --steps (500) past --warmup-steps (500)"),
        (["--warmup-steps", "-1"], "--warmup-steps: Input should be greater than or equal to 0"),
        (["--lr", "0"], "--lr: Input should be greater than 0"),
        (["--min-lr-ratio", "1.5"], "--min-lr-ratio: Input should be less than or equal to 1"),
        (["--settings", "none"], "--settings needs a compressed setting besides none"),
        (["--steps", "120"], "--steps must be a multiple of --steps-per-round"),
        (["--layers", "2"], "--layers / --stages: cannot split 2 layers into 4 stages"),
        (["--heads", "3"], "d_model (128) must be divisible by n_head (3)"),
        (
            ["--timing-micro-batches", "7"],
            "batch_size (128) must be divisible by micro_batches (7)",
        ),
        (["--eval-windows", "0"], "--eval-windows must be at least 1"),
        (["--seeds", "0", "1", "0"], "--seeds 0 1 0 repeats a seed"),
        (
            ["--settings", "subspace-r16-b4", "--d-model", "8", "--heads", "2"],
            "subspace rank (16) exceeds d_model (8)",
        ),
    ],
)
def test_bad_arguments_are_one_error_line(argv, expected, tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "pipeline.py"), *argv, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and expected in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists()  # refused before anything was written


def test_an_out_path_that_is_a_file_is_one_error_line_and_left_as_it_was(tmp_path):
    out = tmp_path / "results"
    out.write_bytes(b"earlier results")
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "pipeline.py"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert f"error: --out {out} is a file, not a folder" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert out.read_bytes() == b"earlier results"


def test_a_quick_look_prints_every_figure_and_judges_no_target(tmp_path):
    """A run shorter than the reference (500 steps, 3 seeds) prints its figures
    but does not say the targets are met, however small its gap."""
    out = tmp_path / "out"
    argv = [
        *("--steps", "20", "--steps-per-round", "10", "--warmup-steps", "5"),
        *("--seeds", "0", "--settings", "subspace-r8-b4", "--no-ray"),
        *("--eval-windows", "8", "--timing-reps", "1", "--timing-batch-size", "16"),
        *("--timing-micro-batches", "2", "--timing-steps-per-round", "2"),
    ]
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "pipeline.py"), *argv, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    figures = dict(
        line.split(" ", 1) for line in proc.stdout.splitlines() if line and line[0].isalpha()
    )
    for name in (
        "bytes_per_step_uncompressed",
        "bytes_per_step_compressed",
        "compression_ratio",
        "loss_baseline",
        "loss_pipeline_uncompressed",
        "loss_pipeline_compressed",
        "loss_gap",
        "step_time_pipeline_s",
        "step_time_single_process_s",
        "replay_bitwise",
    ):
        assert name in figures, proc.stdout
    assert figures["replay_bitwise"] == "ok"
    assert float(figures["compression_ratio"]) > 100
    # The uncompressed pipeline is the one-process model, step for step.
    assert figures["loss_baseline"] == figures["loss_pipeline_uncompressed"]
    assert "# targets not judged: not a reference run (20 steps < 500, 1 seeds < 3)" in proc.stdout
    assert "# targets met" not in proc.stdout
    assert (out / "loss.png").stat().st_size > 0
