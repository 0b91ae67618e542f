"""Chain commands through the installed `tessera` script, on one `tessera up` chain.

One chain and a few jobs serve every test here (suite time); the tests run in
file order and build on each other's jobs where it says so.
"""

from __future__ import annotations

import json
import time

import pytest
import yaml
from chain_helpers import dev_chain
from cli_helpers import ok, one_line_error, tessera

from agents.chain.artifacts import PROJECT_ROOT
from agents.chain.local import free_port


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    with dev_chain(home) as c:
        yield c


def run(chain, *args, **kw):
    return tessera(*args, env={**chain.env, **kw.pop("env", {})}, **kw)


def _blocks(chain) -> set[str]:
    from pathlib import Path

    root = Path(chain.env["TESSERA_STORE_DIR"]) / "blocks"
    return {p.name for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def _balance(chain, account: int) -> int:
    return json.loads(
        ok(run(chain, "stake", "show", "--json", "--dev-account", str(account))).stdout
    )["balance_wei"]


def test_up_records_the_dev_deployment_in_the_data_dir(chain):
    home = chain.env["HOME"]
    assert str(chain.deployment_file).startswith(home)
    assert chain.deployment_file.parent.name == "deployments"
    assert json.loads(chain.deployment_file.read_text())["chainId"] == 31337
    assert not str(chain.deployment_file).startswith(str(PROJECT_ROOT))


def test_job_init_writes_a_commented_file_that_posts_as_is(chain, tmp_path_factory):
    folder = tmp_path_factory.mktemp("job")
    corpus = folder / "corpus.txt"
    corpus.write_text("".join(f"def f{i}(x):\n    return x * {i}\n" for i in range(400)))
    dataset = ok(run(chain, "data", "add", str(corpus))).stdout.strip()
    job = folder / "job.yaml"
    ok(run(chain, "job", "init", str(job), "--dataset", dataset))
    text = job.read_text()
    assert text.count("#") > 20  # every field explained
    assert yaml.safe_load(text)["spec"]["dataset"] == dataset
    assert "exists" in one_line_error(run(chain, "job", "init", str(job), "--dataset", dataset))
    posted = ok(run(chain, "job", "post", str(job), "--dev-account", "1")).stdout
    assert "job 1 posted" in posted and "escrow 30 TSR" in posted
    status = json.loads(ok(run(chain, "job", "status", "1", "--json")).stdout)
    assert status["status"] == "OPEN" and status["phase"] == "open"
    assert [s["provider"] for s in status["stages"]] == [None, None]
    human = ok(run(chain, "job", "status", "1")).stdout
    assert "phase: open" in human and "(vacant)" in human and "escrow 30 TSR" in human
    chain.job_file = job


def test_untrainable_and_out_of_bounds_jobs_are_refused_before_anything_is_stored(chain):
    data = yaml.safe_load(chain.job_file.read_text())
    data["spec"]["num_stages"] = 3  # n_layer is 2
    data["spec"]["model"]["d_model"] = 100_000_000
    data["spec"]["training"]["steps_per_round"] = 10**30
    data["terms"]["commit_window"] = 2**64
    bad = chain.job_file.with_name("bad.yaml")
    bad.write_text(yaml.safe_dump(data))
    before_blocks, before_balance = _blocks(chain), _balance(chain, 1)
    line = one_line_error(run(chain, "job", "post", str(bad), "--dev-account", "1"))
    assert "(4 problems)" in line
    assert "spec.num_stages: 3 stages need at least 3 layers" in line
    assert "parameters is more than" in line
    assert "spec.training.steps_per_round: 1000000000000000000000000000000 is more than" in line
    assert "terms.commit_window: 18446744073709551616 is more than JobMarket accepts" in line
    assert "0x" not in line  # names in words, not hex
    assert _blocks(chain) == before_blocks
    assert _balance(chain, 1) == before_balance


def test_escrow_beyond_the_balance_is_refused_in_tsr(chain):
    data = yaml.safe_load(chain.job_file.read_text())
    data["terms"]["reward_per_stage_round"] = 1_000_000
    rich = chain.job_file.with_name("rich.yaml")
    rich.write_text(yaml.safe_dump(data))
    before = _blocks(chain)
    line = one_line_error(run(chain, "job", "post", str(rich), "--dev-account", "1"))
    assert "escrow needs 2000010 TSR but the owner holds" in line
    assert _blocks(chain) == before


def test_job_cancel_refunds_the_escrow(chain):
    ok(run(chain, "job", "post", str(chain.job_file), "--dev-account", "1"))  # job 2
    line = one_line_error(run(chain, "job", "cancel", "2", "--dev-account", "2"))
    assert "NotJobOwner" in line
    before = _balance(chain, 1)
    assert "30 TSR refunded" in ok(run(chain, "job", "cancel", "2", "--dev-account", "1")).stdout
    assert _balance(chain, 1) - before == 30 * 10**18
    assert (
        json.loads(ok(run(chain, "job", "status", "2", "--json")).stdout)["status"] == "CANCELLED"
    )
    line = one_line_error(run(chain, "validator", "run", "--job", "2", "--dev-account", "8"))
    assert "job 2 is cancelled: there is nothing to audit" in line


def test_unknown_job_and_missing_stage_are_named(chain):
    assert "unknown job id 99" in one_line_error(run(chain, "job", "status", "99"))
    line = one_line_error(
        run(chain, "provider", "run", "--job", "1", "--stage", "7", "--dev-account", "3")
    )
    assert "job 1 has 2 stages (0-1): stage 7 does not exist" in line


def test_bad_ray_address_fails_fast_through_the_script(chain):
    t0 = time.monotonic()
    line = one_line_error(
        run(
            chain,
            "provider",
            "run",
            "--job",
            "1",
            "--dev-account",
            "3",
            env={"RAY_ADDRESS": f"127.0.0.1:{free_port()}"},
        )
    )
    assert "cannot reach the Ray cluster" in line and "ray start --head" in line
    assert time.monotonic() - t0 < 30  # it hung for minutes


def test_stake_in_tsr_and_validator_can_deregister(chain):
    shown = ok(run(chain, "stake", "add", "12.5", "--dev-account", "5")).stdout
    assert "12.5 TSR" in shown
    validator = chain.start("validator", "run", "--job", "1", "--dev-account", "8")
    validator.wait_for("audits job 1", timeout=180)
    assert validator.interrupt() in (0, 130)  # Ctrl-C: stopped, or aborted mid-call
    locked = json.loads(ok(run(chain, "stake", "show", "--json", "--dev-account", "8")).stdout)
    assert locked["locked_wei"] > 0  # the deployment's validator stake
    out = ok(run(chain, "validator", "deregister", "--dev-account", "8")).stdout
    assert "exit started" in out and "tessera validator release" in out
    again = one_line_error(run(chain, "validator", "deregister", "--dev-account", "8"))
    assert "is not a registered validator" in again
    assert "no court credit" in one_line_error(
        run(chain, "validator", "withdraw-credit", "--dev-account", "8")
    )


def test_shares_show_needs_no_account(chain):
    env = {"TESSERA_PRIVATE_KEY": "", "TESSERA_KEYSTORE": ""}
    out = ok(run(chain, "shares", "show", "1", env=env)).stdout
    assert "model 1: 0 shares" in out
    data = json.loads(ok(run(chain, "shares", "show", "1", "--json", env=env)).stdout)
    assert data == {"model": 1, "total_shares": 0, "holders": []}
