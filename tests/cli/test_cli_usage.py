"""Usage mistakes through the installed `tessera` script: one line, non-zero exit, no traceback.

No chain is needed for any of these: they must be refused before one is contacted.
"""

from __future__ import annotations

import json
import re

import pytest
from cli_helpers import ok, one_line_error, tessera

from agents.chain.local import free_port

DEAD_RPC = f"http://127.0.0.1:{free_port()}"

USAGE_ERRORS = [
    # (argv, text the line must contain)
    (["job", "status"], "Missing argument 'JOB_ID'"),
    (["provider", "run", "--job", "1", "--advertise", "tcp://10.0.0.1:7100"], "need --bind"),
    (["job", "status", "abc"], "Invalid value for 'JOB_ID'"),
    (["job", "status", "-1"], "No such option: -1"),
    (["job", "status", "0"], "JOB_ID"),
    (["job", "post"], "Missing argument"),
    (["job", "stauts", "1"], "No such command 'stauts'"),
    (["nope"], "No such command 'nope'"),
    (["stake", "add", "1", "--dev-account", "x"], "'--dev-account'"),
    (["stake", "add", "1", "--dev-account", "-1"], "'--dev-account'"),
    (["stake", "add", "1", "--dev-account", "20"], "'--dev-account'"),
    (["stake", "add", "1", "--dev-account", "99"], "'--dev-account'"),
    (["stake", "add", "--bogus"], "No such option: --bogus"),
    (["stake", "add", "1.5.5", "--rpc", DEAD_RPC], "not an amount of TSR"),
    (["stake", "add", "-3", "--rpc", DEAD_RPC], "No such option"),
    (["shares", "show", "1", "--holder", "0x1234"], "is not an address"),
    (["provider", "run"], "Missing option '--job'"),
    # Before any chain, stake or Ray: a provider must not stake, then fail at round 0.
    (["provider", "run", "--job", "1", "--snapshot-dir", "/no/such/dir"], "does not exist"),
    (["provider", "run", "--job", "1", "--snapshot-dir", "/etc/hostname"], "is not a directory"),
    (["provider", "run", "--job", "x"], "'--job'"),
    (["infer", "--model", "1"], "Missing option '--prompt'"),
    (["store", "get", "not-a-cid"], "not a CID"),
    (["lineage", "show", "QmNope", "--format", "xml"], "'--format'"),
    (["data", "add", "/no/such/folder"], "no such file or folder"),
    (["job", "status", "1", "--rpc", DEAD_RPC], "cannot reach RPC"),
    (["job", "status", "1", "--rpc", "localhost:8545"], "http://"),
    (["job", "status", "1"], "no chain given"),
]


@pytest.fixture(scope="module")
def usage_runs():
    """Every mistake of the table run at once (4 processes at a time): suite time."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        runs = list(
            pool.map(
                lambda argv: tessera(*argv, env={"TESSERA_RPC": ""}), [a for a, _ in USAGE_ERRORS]
            )
        )
    return {" ".join(argv): run for (argv, _), run in zip(USAGE_ERRORS, runs, strict=True)}


@pytest.mark.parametrize(
    ("argv", "needle"), USAGE_ERRORS, ids=lambda v: " ".join(v) if isinstance(v, list) else None
)
def test_usage_error_is_one_line(usage_runs, argv, needle):
    line = one_line_error(usage_runs[" ".join(argv)])
    assert needle in line


@pytest.mark.parametrize("argv", [[], ["job"], ["shares"], ["job", "-h"]])
def test_bare_noun_prints_help_and_exits_0(argv):
    proc = ok(tessera(*argv))
    assert "Usage: tessera" in proc.stdout
    assert "Commands:" in proc.stdout or "Options:" in proc.stdout


def test_version():
    from importlib.metadata import version

    proc = ok(tessera("--version"))
    assert proc.stdout.strip() == f"tessera {version('tessera')}"


def test_flags_show_no_value_placeholder_and_keystore_names_its_variables():
    for argv in (["store", "add"], ["demo"], ["data", "add"], ["job", "init"], ["provider", "run"]):
        text = ok(tessera(*argv, "--help")).stdout
        assert "<bool>" not in text, argv
        assert "--help" in text
    text = " ".join(ok(tessera("job", "post", "--help")).stdout.split())
    for var in ("$TESSERA_KEYSTORE", "$TESSERA_KEYSTORE_PASSWORD", "$TESSERA_PRIVATE_KEY"):
        assert var in text


def test_unreachable_rpc_fails_fast():
    import time

    t0 = time.monotonic()
    ok(tessera("--version"))
    startup = time.monotonic() - t0  # the script's own start on this (loaded) machine
    t0 = time.monotonic()
    line = one_line_error(tessera("job", "status", "1", "--rpc", DEAD_RPC))
    assert "connection refused" in line
    # The client's retries took 8.7 s to say so; the probe answers at once.
    assert time.monotonic() - t0 < 2 * startup + 2


def test_http_404_rpc_is_one_line(tmp_path):
    import http.server
    import threading

    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/wrong/path"
        line = one_line_error(tessera("job", "status", "1", "--rpc", url))
        assert "HTTP 404" in line
    finally:
        server.shutdown()


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("{not json", "not valid"),
        (json.dumps({"spec": {"name": "x"}, "terms": {}}), "spec.model"),
        ("[1, 2]", "must hold an object"),
        # A schedule and a codec the spec cannot run: refused before any chain call.
        (json.dumps({"spec": {"optimizer": {"schedule": "cosine"}}}), "past warmup_steps (0)"),
        (
            json.dumps({"spec": {"compression": {"method": "subspace", "rank": 3, "bits": 5}}}),
            "rank (3) x bits (5) must fill whole bytes",
        ),
        (json.dumps({"spec": {"compression": {"grad_bits": 9}}}), "spec.compression.grad_bits"),
    ],
)
def test_malformed_job_file_is_one_line(tmp_path, content, needle):
    path = tmp_path / "job.json"
    path.write_text(content)
    assert needle in one_line_error(tessera("job", "post", str(path), "--rpc", DEAD_RPC))


def test_job_file_lists_every_shape_error_at_once(tmp_path):
    path = tmp_path / "job.json"
    path.write_text(json.dumps({"spec": {"name": "x"}, "terms": {"rounds": 0}}))
    line = one_line_error(tessera("job", "post", str(path), "--rpc", DEAD_RPC))
    for field in (
        "spec.model",
        "spec.num_stages",
        "spec.dataset",
        "terms.rounds",
        "terms.min_stake",
    ):
        assert field in line
    assert re.search(r"\(\d+ problems\)", line)


def test_missing_job_file_is_one_line(tmp_path):
    line = one_line_error(tessera("job", "post", str(tmp_path / "nope.json")))
    assert "cannot read job file" in line


def test_bad_ray_address_fails_fast():
    """The Ray check alone (through the script with a chain: tests/cli/test_cli_chain.py).

    In a fresh interpreter: a Ray that an earlier test initialised in this
    process would make `join_ray` return early and hide the check.
    """
    import os
    import subprocess
    import sys
    import time

    probe = (
        "import sys\n"
        "from agents.cli.running import join_ray\n"
        "from agents.errors import TesseraError\n"
        "try:\n"
        "    join_ray()\n"
        "except TesseraError as e:\n"
        "    print(e); sys.exit(3)\n"
        "print('joined'); sys.exit(0)\n"
    )
    env = {**os.environ, "RAY_ADDRESS": f"127.0.0.1:{free_port()}"}
    t0 = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60
    )
    elapsed = time.monotonic() - t0
    assert out.returncode == 3, out.stdout + out.stderr
    assert "cannot reach the Ray cluster" in out.stdout
    assert elapsed < 15  # interpreter + torch-free import; the probe itself is sub-second


def test_snapshot_dir_from_the_environment_is_checked_first(tmp_path):
    """$TESSERA_SNAPSHOT_DIR is the same option: a bad one is refused before the chain."""
    line = one_line_error(
        tessera(
            "provider", "run", "--job", "1", "--rpc", DEAD_RPC,
            env={"TESSERA_SNAPSHOT_DIR": str(tmp_path / "gone")},
        )
    )  # fmt: skip
    assert "snapshot directory" in line and "gone does not exist" in line
