"""Run the forge invariant campaign of the contracts and print its summary.

    python scripts/fuzz.py [--profile ci|deep] [--seed N]

Profiles live in foundry.toml: `default` (CI, >= 20,000 calls, run by `make test` through
tests/forge/test_invariant_fuzz.py) and `deep` (>= 1,000,000 calls, `make fuzz`). Prints forge's
output, then one line with the calls made, the reverts and the wall time; exits with forge's
status (non-zero when an invariant broke or forge could not run).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FORGE_BINS = [
    ROOT / "node_modules" / "@foundry-rs" / f"forge-linux-{arch}" / "bin" / "forge"
    for arch in ("amd64", "arm64")
]
# "[PASS] invariant_x() (runs: R, calls: C, reverts: V)"; a failed campaign prints its
# "[FAIL: reason]" and call sequence first, then " invariant_x() (runs: ...)" untagged.
_CAMPAIGN = re.compile(
    r"^(\[PASS\] )?\s*(\w+)\(\) \(runs: (\d+), calls: (\d+), reverts: (\d+)\)", re.MULTILINE
)
_FAIL = re.compile(r"^\[FAIL: (.*)\]$", re.MULTILINE)
STATS_DIR = ROOT / "build" / "forge"
#: Columns of the stats file, one line per run (ProtocolInvariants.afterInvariant).
STATS_COLUMNS = (
    "jobs posted",
    "rounds finalized",
    "jobs completed",
    "jobs cancelled",
    "disputes opened",
    "providers slashed",
    "challengers slashed",
    "faults proven",
    "liveness checks",
    "corrupt captures",
    "throw-away validators",
)


@dataclass(frozen=True)
class Campaign:
    """One invariant test's totals as forge reports them."""

    name: str
    passed: bool
    runs: int
    calls: int
    reverts: int


@dataclass(frozen=True)
class FuzzResult:
    """A forge run: its exit status, campaigns, wall time and output."""

    returncode: int
    campaigns: list[Campaign]
    wall_s: float
    output: str
    reached: dict[str, int]

    @property
    def calls(self) -> int:
        return sum(c.calls for c in self.campaigns)

    @property
    def reverts(self) -> int:
        return sum(c.reverts for c in self.campaigns)

    def summary(self, profile: str) -> str:
        """One line: profile, calls, reverts, wall time and verdict."""
        failures = _FAIL.findall(self.output)
        if self.returncode == 0:
            verdict = "every invariant held"
        else:
            verdict = "FAILED: " + ("; ".join(dict.fromkeys(failures)) or "see above")
        reached = ", ".join(f"{k} {v:,}" for k, v in self.reached.items())
        return (
            f"fuzz summary: profile {profile}, {len(self.campaigns)} campaign(s), "
            f"{sum(c.runs for c in self.campaigns):,} runs, {self.calls:,} calls, "
            f"{self.reverts:,} reverts, wall {self.wall_s:.1f} s: {verdict}\n"
            f"fuzz reached (summed over runs): {reached or 'nothing recorded'}"
        )


def parse_campaigns(output: str) -> list[Campaign]:
    """The campaign lines of forge's output, passed or failed."""
    # Forge repeats a failed campaign's line in its closing "Failing tests" list: one per name.
    found = {
        name: Campaign(name, bool(tag), int(runs), int(calls), int(reverts))
        for tag, name, runs, calls, reverts in _CAMPAIGN.findall(output)
    }
    return list(found.values())


def read_stats(path: Path) -> dict[str, int]:
    """Sum the per-run lines of the stats file (missing file: nothing reached)."""
    totals = dict.fromkeys(STATS_COLUMNS, 0)
    if not path.is_file():
        return {}
    for line in path.read_text().splitlines():
        values = [int(v) for v in line.split(",") if v.strip()]
        for name, value in zip(STATS_COLUMNS, values, strict=False):
            totals[name] += value
    return totals


def forge_binary() -> Path:
    """The forge binary npm installed (package @foundry-rs/forge)."""
    for candidate in FORGE_BINS:
        if candidate.is_file():
            return candidate
    found = shutil.which("forge")
    if found:
        return Path(found)
    raise FileNotFoundError("forge not found: run `make setup` (npm package @foundry-rs/forge)")


def run_fuzz(profile: str = "default", seed: int | None = None, echo: bool = True) -> FuzzResult:
    """Run every invariant campaign of tests/forge under `profile`; stream output if `echo`."""
    stats = STATS_DIR / f"fuzz-stats-{profile}.csv"
    stats.parent.mkdir(parents=True, exist_ok=True)
    stats.unlink(missing_ok=True)
    env = dict(os.environ, FOUNDRY_PROFILE=profile, TESSERA_FUZZ_STATS=str(stats))
    cmd = [str(forge_binary()), "test", "--match-path", "tests/forge/*"]
    if seed is not None:
        cmd += ["--fuzz-seed", str(seed)]
    start = time.monotonic()
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if echo:
            sys.stdout.write(line)
            sys.stdout.flush()
    returncode = proc.wait()
    output = "".join(lines)
    wall = time.monotonic() - start
    return FuzzResult(returncode, parse_campaigns(output), wall, output, read_stats(stats))


def main(argv: list[str] | None = None) -> int:
    """CLI entry: run a profile, print its summary, return forge's status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="default", choices=["default", "ci", "deep"])
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    profile = "default" if args.profile == "ci" else args.profile
    try:
        result = run_fuzz(profile, args.seed)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(result.summary(args.profile))
    if result.returncode == 0 and not result.campaigns:
        print("error: forge ran no invariant campaign", file=sys.stderr)
        return 1
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
