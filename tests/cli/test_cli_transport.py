"""`tessera provider run --bind`: providers as independent operators, through the real script.

Two providers, each its own `tessera` process with no Ray at all ($RAY_ADDRESS
unset and none started), take the two stages of a job, train it over the
authenticated transport (each publishes its endpoint and transport key
on-chain), are finalized by their own keeper duties (no validator, nobody runs
`job finalize`) and keep serving. The transport key files are made on first
use, private to the operator.
"""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path

import pytest
from chain_helpers import dev_chain
from cli_helpers import ok, post_first_job, tessera

pytestmark = pytest.mark.slow


def test_two_operators_train_a_job_over_the_transport(tmp_path):
    with dev_chain(tmp_path / "home") as chain:
        env = {k: v for k, v in chain.env.items() if k != "RAY_ADDRESS"}

        def run(*args):
            return ok(tessera(*args, env=env, timeout=300))

        post_first_job(
            run,
            tmp_path,
            "".join(f"def g{i}(y):\n    return y - {i} * {i % 5}\n" for i in range(800)),
        )
        keys = [tmp_path / f"op{i}" / "transport-key.json" for i in range(2)]
        # Operator 1 maps its per-step snapshots from files (--snapshot-dir), operator 0
        # keeps them in RAM: both must train the same job to completion.
        spill = tmp_path / "op1-snapshots"
        spill.mkdir()
        providers = [
            chain.start(
                "provider",
                "run",
                "--job",
                "1",
                "--stage",
                str(i),
                "--dev-account",
                str(3 + i),
                "--bind",
                "tcp://127.0.0.1:0",
                "--key-file",
                str(keys[i]),
                *(["--snapshot-dir", str(spill)] if i == 1 else []),
            )
            for i in range(2)
        ]
        for i, p in enumerate(providers):
            line = p.wait_for(f"serves job 1 stage {i} at tcp://127.0.0.1:", 300)
            assert "locked" in line
        for key in keys:  # made on first use, readable by its operator only
            assert key.exists() and stat.S_IMODE(key.stat().st_mode) == 0o600
        deadline = time.monotonic() + 900
        while True:
            status = json.loads(run("job", "status", "1", "--json").stdout)
            if status["status"] == "COMPLETED":
                break
            assert time.monotonic() < deadline, (status, providers[0].text[-2000:])
            time.sleep(3)
        assert status["rounds_finalized"] == status["rounds"]
        for p in providers:
            p.wait_for("serving inference", 120)
            assert "Traceback" not in p.text
        # The last round's snapshots are still held (until a bundle is no longer due):
        # shared mappings of unlinked files in that directory, and no file left by name.
        maps = Path(f"/proc/{providers[1].proc.pid}/maps").read_text().splitlines()
        spilled = [ln for ln in maps if str(spill) in ln]
        assert spilled and all(ln.endswith("(deleted)") for ln in spilled)
        maps0 = Path(f"/proc/{providers[0].proc.pid}/maps").read_text()
        assert str(spill) not in maps0
        assert list(spill.iterdir()) == []
        shares = json.loads(run("shares", "show", "1", "--json").stdout)
        minted = [h for h in shares["holders"] if h["shares"] > 0]
        assert shares["total_shares"] > 0 and len(minted) >= 2, shares  # providers (+ owner)
