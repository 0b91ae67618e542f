"""`tessera` answers user mistakes with one clear line and a non-zero exit."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from agents.chain.local import free_port


def tessera(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "agents.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        check=False,
    )


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("{not json", "not valid"),
        (json.dumps({"spec": {"name": "x"}, "terms": {}}), "spec.model"),
        ("[1, 2]", "must hold an object"),
    ],
)
def test_malformed_job_file_is_one_clear_line(tmp_path, content, needle):
    path = tmp_path / "job.json"
    path.write_text(content)
    line = one_line_error(tessera("job", "post", str(path), "--rpc", "http://127.0.0.1:1"))
    assert needle in line


def test_missing_job_file_is_one_clear_line(tmp_path):
    line = one_line_error(tessera("job", "post", str(tmp_path / "nope.json")))
    assert "cannot read job file" in line


def test_unreachable_rpc_is_one_clear_line():
    line = one_line_error(tessera("job", "status", "1", "--rpc", f"http://127.0.0.1:{free_port()}"))
    assert "cannot reach RPC" in line


def test_unknown_job_id_is_one_clear_line(tmp_path):
    from agents.roles.localnet import local_net

    with local_net(tmp_path, block_time=None) as net:
        env = {"TESSERA_DEPLOYMENTS_DIR": str(tmp_path / "deployments")}
        from agents.chain.deployments import save_deployment

        save_deployment(net.deployment)
        line = one_line_error(tessera("job", "status", "99", "--rpc", net.url, env=env))
        assert "unknown job id 99" in line


def test_missing_key_is_one_clear_line(tmp_path):
    env = {"TESSERA_PRIVATE_KEY": "", "TESSERA_KEYSTORE": ""}
    line = one_line_error(
        tessera("stake", "add", "1", "--rpc", f"http://127.0.0.1:{free_port()}", env=env)
    )
    assert "cannot reach RPC" in line or "signing key" in line
