"""The README's "Using it" flow, top to bottom, each command in its own process.

`tessera up`, `data add`, `job init`, `job post`, two providers started at the
same moment (they race for stage 0: one must take stage 1), a validator,
`job status` until the job completes (nobody runs `job finalize`: the agents
keep it moving), `job checkpoint`, `lineage show`, `infer`, `shares show`
(no key), `shares claim`, `validator deregister`, `store verify`. Then the
stage host of stage 1 is killed: its provider re-creates it from the
checkpoint and `infer` works again.

The README's `ray start --head` is this test's own Ray cluster (the session
fixture); the commands join it through $RAY_ADDRESS.
"""

from __future__ import annotations

import json
import time

import pytest
from chain_helpers import dev_chain
from cli_helpers import ok, post_first_job, tessera

from agents.chain.artifacts import PROJECT_ROOT

pytestmark = pytest.mark.slow


def test_readme_using_it_flow(tmp_path, ray_cluster):
    ray = ray_cluster
    gcs = ray.get_runtime_context().gcs_address
    with dev_chain(tmp_path / "home") as chain:
        chain.env["RAY_ADDRESS"] = gcs

        ran: list[tuple[str, ...]] = []

        def run(*args, **kw):
            ran.append(args)
            return ok(tessera(*args, env=chain.env, timeout=300, **kw))

        post_first_job(
            run,
            tmp_path,
            "".join(f"def f{i}(x):\n    return x * {i} + {i % 7}\n" for i in range(800)),
        )

        # Started together: both see stage 0 free; the loser takes stage 1.
        p3 = chain.start("provider", "run", "--job", "1", "--dev-account", "3")
        p4 = chain.start("provider", "run", "--job", "1", "--dev-account", "4")
        stages = {
            int(p.wait_for("serves job 1 stage", 300).split("stage ")[1].split()[0])
            for p in (p3, p4)
        }
        assert stages == {0, 1}
        validator = chain.start("validator", "run", "--job", "1", "--dev-account", "8")
        validator.wait_for("audits job 1", 300)

        deadline = time.monotonic() + 600
        phases = set()
        while True:
            status = json.loads(run("job", "status", "1", "--json").stdout)
            phases.add(status["phase"])
            if status["status"] == "COMPLETED":
                break
            assert time.monotonic() < deadline, (status, p3.text[-2000:], validator.text[-2000:])
            time.sleep(3)
        assert status["rounds_finalized"] == status["rounds"] == 1

        for p in (p3, p4):  # live progress: commits, bundles, phases, payments
            p.wait_for("serving inference", 120)
            assert "trained and committed" in p.text or p is p4
            assert "payment:" in p.text
            assert "challenge window" in p.text
        validator.wait_for("`tessera validator deregister` releases", 120)  # it ends with the job
        validator.proc.wait(120)

        checkpoint = run("job", "checkpoint", "1").stdout.strip()
        tree = run("lineage", "show", checkpoint).stdout
        assert "checkpoint job 1 round 0" in tree and "dataset" in tree
        out = run(
            "infer", "--model", "1", "--prompt", "def ", "--max-tokens", "8", "--dev-account", "2"
        )
        assert "8 tokens, 0.08 TSR paid to model 1's holders" in out.stdout

        keyless = {**chain.env, "TESSERA_PRIVATE_KEY": "", "TESSERA_KEYSTORE": ""}
        holders = json.loads(ok(tessera("shares", "show", "1", "--json", env=keyless)).stdout)
        ran += [("up",), ("provider", "run"), ("validator", "run"), ("shares", "show")]
        assert len(holders["holders"]) >= 2  # the providers (the owner's are credited to pull)
        assert all(h["claimable_wei"] > 0 for h in holders["holders"])
        assert "claimed" in run("shares", "claim", "1", "--dev-account", "3").stdout
        assert "deregistered" in run("validator", "deregister", "--dev-account", "8").stdout
        assert run("store", "verify").returncode == 0

        # A lost stage host is re-created from the checkpoint; serving resumes.
        from agents.roles.stage_host import host_actor_name

        holder = json.loads(run("job", "status", "1", "--json").stdout)["stages"][1]["provider"]
        ray.kill(ray.get_actor(host_actor_name(1, 1, holder), namespace="tessera"))
        serving = p3 if holder.lower() in p3.text.lower() else p4
        serving.wait_for("re-created it from the round 0 checkpoint", 120)
        out = run(
            "infer", "--model", "1", "--prompt", "def ", "--max-tokens", "4", "--dev-account", "2"
        )
        assert "4 tokens" in out.stdout

        # The README's block lists exactly the commands this test ran.
        readme = (PROJECT_ROOT / "README.md").read_text()
        block = readme.split("## Using it", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
        listed = {
            tuple(w for w in line.split("#")[0].split()[1:3] if not w.startswith(("-", "<")))
            for line in block.splitlines()
            if line.startswith("tessera ")
        }
        done = {tuple(w for w in a[:2] if not w.startswith("-") and "/" not in w) for a in ran}
        assert {cmd for cmd in listed if cmd not in done} == set()
