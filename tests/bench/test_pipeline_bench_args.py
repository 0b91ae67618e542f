"""bench/pipeline.py refuses a bad schedule or setting list with one argparse line (exit 2),
before it trains anything: the spec's own rules, in the bench's flag names."""

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
