"""The lineage graph of checkpoints and rounds, its renderings, and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from rich.console import Console

from agents.lineage import LineageError, graph_dict, lineage_dot, lineage_tree, render_rich
from agents.storage import ContentNotFound, compute_cid, parse_cid


def _edges(graph):
    return {(n.cid, rel, child) for n in graph.nodes.values() for rel, child in n.edges}


def test_checkpoint_traces_back_to_its_dataset(store, chain):
    latest = chain["checkpoints"][1]
    graph = lineage_tree(store, latest)
    kinds = {cid: node.kind for cid, node in graph.nodes.items()}
    assert kinds[latest] == "checkpoint"
    assert kinds[chain["checkpoints"][0]] == "checkpoint"
    assert kinds[chain["spec"]] == "job-spec"
    assert kinds[chain["dataset"]] == "dataset"
    for rnd in chain["records"]:
        for record in rnd:
            assert kinds[record] == "round-record"
    edges = _edges(graph)
    assert (latest, "parent", chain["checkpoints"][0]) in edges
    assert (chain["spec"], "dataset", chain["dataset"]) in edges
    assert (chain["records"][1][0], "parent_checkpoint", chain["checkpoints"][0]) in edges
    for shard in chain["manifest"].shards:
        assert (chain["dataset"], "shard", shard.cid) in edges
        assert graph.nodes[shard.cid].kind == "file"
    # Weight files are named but never parsed; the new_checkpoint of a record is read
    # only far enough to see it is not a document.
    weights = [child for (_, rel, child) in edges if rel == "new_checkpoint"]
    assert all(graph.nodes[w].kind == "file" for w in weights)


def test_renderings_contain_the_chain(store, chain):
    graph = lineage_tree(store, chain["checkpoints"][1])
    console = Console(record=True, width=200)
    console.print(render_rich(graph))
    text = console.export_text()
    assert "checkpoint job 1 round 1" in text and "dataset 'fox'" in text
    assert "more shards" in text  # many shards are summarised
    assert "(above)" in text  # the shared spec is printed once
    dot = lineage_dot(store, chain["checkpoints"][1])
    assert dot.startswith("digraph lineage {") and dot.rstrip().endswith("}")
    assert f'"{chain["spec"]}" -> "{chain["dataset"]}" [label="dataset"];' in dot
    data = graph_dict(graph)
    assert data["root"] == chain["checkpoints"][1]
    assert {"from": chain["spec"], "to": chain["dataset"], "relation": "dataset"} in data["edges"]


def test_missing_parent_is_shown_and_missing_root_is_an_error(store, chain):
    store._block_path(parse_cid(chain["spec"])).unlink()
    graph = lineage_tree(store, chain["records"][0][0])
    assert graph.nodes[chain["spec"]].kind == "missing"
    with pytest.raises(ContentNotFound):
        lineage_tree(store, chain["spec"])
    with pytest.raises(LineageError, match="not a lineage document"):
        lineage_tree(store, store.add_bytes(b"plain bytes"))


def _cli(*args, env_store, check=True):
    env = {**os.environ, "TESSERA_STORE_DIR": str(env_store)}
    env.pop("TESSERA_IPFS_API", None)
    done = subprocess.run(
        [sys.executable, "-m", "agents.cli", *args], capture_output=True, text=True, env=env
    )
    if check:
        assert done.returncode == 0, done.stderr
    return done


def test_cli_store_and_lineage_commands(store, chain, tmp_path):
    root = store.root
    hello = tmp_path / "hello.txt"
    hello.write_bytes(b"hello world\n")
    assert _cli(
        "store", "add", "--only-hash", "--cid-version", "0", str(hello), env_store=root
    ).stdout == ("QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o\n")
    cid = _cli("store", "add", str(hello), env_store=root).stdout.strip()
    assert cid == compute_cid(b"hello world\n")
    assert _cli("store", "get", cid, env_store=root).stdout == "hello world\n"
    car = tmp_path / "lineage.car"
    _cli("store", "export", chain["spec"], "-o", str(car), env_store=root)
    other = tmp_path / "other"
    assert _cli("store", "import", str(car), env_store=other).stdout.split() == [chain["spec"]]
    shown = _cli("lineage", "show", chain["checkpoints"][1], "--format", "json", env_store=root)
    assert json.loads(shown.stdout)["root"] == chain["checkpoints"][1]
    tree = _cli("lineage", "show", chain["records"][0][1], env_store=root).stdout
    assert "round 0 stage 1" in tree
    bad = _cli("store", "get", "not-a-cid", env_store=root, check=False)
    assert bad.returncode == 1 and "not a CID" in bad.stderr and "Traceback" not in bad.stderr
    corpus = tmp_path / "c.jsonl"
    corpus.write_text('{"text": "a"}\n')
    added = _cli("data", "add", str(corpus), "--license", "MIT", env_store=root)
    assert added.stdout.strip().startswith("bafkrei") and "1 shard" in added.stderr
