"""Audit bundles and replay: honest leaves match in a fresh process; every lie is named."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from agents.lineage.documents import RoundRecord
from agents.training.audit import AuditBundle, check_boundaries, replay, replay_leaves
from agents.training.checkpoint import canonical_safetensors
from agents.training.errors import AuditError
from agents.training.pipeline import InProcessPipeline
from agents.training.worker import Fault, StageWorker

REPO = Path(__file__).resolve().parents[3]


def _record(store, result, spec) -> tuple[RoundRecord, str]:
    spec_cid = store.put_json(spec.model_dump(mode="json"))
    record = result.to_record(
        provider="0x" + f"{result.stage + 1:040x}",
        spec=spec_cid,
        new_checkpoint=store.add_bytes(result.state_bytes),
    )
    return record, store.put_json(record.model_dump(mode="json"))


def _train(spec, store, *, rounds=2, fault=None, fault_stage=1):
    workers = [
        StageWorker(
            spec,
            s,
            store=store,
            fault=fault if s == fault_stage else None,
            fault_rounds=frozenset({rounds - 1}),
        )
        for s in range(spec.num_stages)
    ]
    pipe = InProcessPipeline(workers)
    for r in range(rounds):
        results = pipe.train_round(job_id=5, round=r)
    return workers, results


def test_replay_in_a_separate_process_matches_every_committed_leaf(spec_factory, store, tmp_path):
    spec = spec_factory(compression="topk", ratio=0.05)
    workers, results = _train(spec, store)
    n = len(results[0].leaves)
    for w, res in zip(workers, results, strict=True):
        bundle = w.make_audit_bundle(list(range(n)))
        _, record_cid = _record(store, res, spec)
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "agents.training.replay",
                "--store",
                str(tmp_path / "store"),
                bundle,
                record_cid,
                *map(str, range(n)),
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            env=dict(os.environ),
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr + proc.stdout
        lines = [json.loads(line) for line in proc.stdout.splitlines()]
        assert [(x["leaf_index"], x["match"], x["mismatched"]) for x in lines] == [
            (i, True, []) for i in range(n)
        ]


def test_a_replay_process_reports_a_mismatch_with_exit_status_1(spec_factory, store, tmp_path):
    spec = spec_factory()
    workers, results = _train(spec, store, rounds=1, fault=Fault.SKIP_STEPS)
    bundle = workers[1].make_audit_bundle([3])
    _, record_cid = _record(store, results[1], spec)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "agents.training.replay",
            "--store",
            str(tmp_path / "store"),
            bundle,
            record_cid,
            "3",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    assert json.loads(proc.stdout)["mismatched"] == ["params_after"]
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "agents.training.replay",
            "--store",
            str(tmp_path / "store"),
            bundle,
            record_cid,
            "99",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=120,
    )
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "leaf 99" in bad.stderr


@pytest.mark.parametrize(
    ("fault", "stage", "leaf", "expected"),
    [
        (Fault.SKIP_STEPS, 1, 2, ("params_after",)),
        (Fault.FAKE_GRADIENT, 1, 1, ("grad_out", "params_after")),
        (Fault.FAKE_GRADIENT, 0, 0, ("params_after",)),
        (Fault.WRONG_DATA, 0, 3, ("input", "output", "params_after", "data_ref")),
        (Fault.WRONG_DATA, 2, 0, ("output", "grad_out", "params_after", "data_ref")),
    ],
)
def test_each_fault_is_caught_by_replay_and_the_field_named(
    spec_factory, store, fault, stage, leaf, expected
):
    spec = spec_factory(compression="int8")
    workers, results = _train(spec, store, fault=fault, fault_stage=stage)
    record, _ = _record(store, results[stage], spec)
    bundle = workers[stage].make_audit_bundle([leaf])
    verdict = replay(store, bundle, leaf, record=record)
    assert not verdict.match
    assert verdict.mismatched == expected, verdict.detail
    assert all(f in verdict.detail for f in expected)
    # The cheater's neighbours are honest and replay clean.
    other = (stage + 1) % spec.num_stages
    record_o, _ = _record(store, results[other], spec)
    assert replay(store, workers[other].make_audit_bundle([leaf]), leaf, record=record_o).match


def test_faults_outside_their_rounds_are_honest(spec_factory, store):
    spec = spec_factory()
    workers = [
        StageWorker(spec, s, store=store, fault=Fault.SKIP_STEPS, fault_rounds=frozenset({3}))
        for s in range(3)
    ]
    results = InProcessPipeline(workers).train_round(5, 0)
    record, _ = _record(store, results[1], spec)
    verdicts = replay_leaves(store, workers[1].make_audit_bundle([0, 3]), [0, 3], record=record)
    assert all(v.match for v in verdicts.values())


def test_wrong_data_on_stage_0_also_breaks_the_cross_stage_check(spec_factory, store):
    spec = spec_factory()
    _, results = _train(spec, store, rounds=1, fault=Fault.WRONG_DATA, fault_stage=0)
    records = [_record(store, r, spec)[0] for r in results]
    problems = check_boundaries(records)
    assert any("data_ref differ" in p for p in problems)


def _tamper(store, bundle_cid: str, field: str, step_index: int = 0) -> str:
    """A copy of the bundle whose `field` payload file has one value changed."""
    from safetensors.torch import load

    doc = store.get_json(bundle_cid)
    entry = doc["steps"][step_index]
    tensors = dict(load(store.cat(entry[field])))
    key = sorted(tensors)[0]
    t = tensors[key].clone()
    t.view(-1)[0] += 1 if t.dtype != torch.float32 else 0.25
    tensors[key] = t
    entry[field] = store.add_bytes(canonical_safetensors(tensors, {"format": "tessera/payloads@1"}))
    return store.put_json(doc)


def test_a_tampered_input_or_gradient_in_the_bundle_is_named(spec_factory, store):
    spec = spec_factory()
    workers, results = _train(spec, store, rounds=1)
    record, _ = _record(store, results[1], spec)
    bundle = workers[1].make_audit_bundle([2, 3])
    assert all(v.match for v in replay_leaves(store, bundle, [2, 3], record=record).values())

    verdicts = replay_leaves(store, _tamper(store, bundle, "inputs"), [2, 3], record=record)
    assert "input" in verdicts[2].mismatched and "output" in verdicts[2].mismatched
    assert verdicts[3].mismatched == ("params_after",)  # mb 1 saw true input, shared update

    verdicts = replay_leaves(store, _tamper(store, bundle, "grads"), [2, 3], record=record)
    assert verdicts[2].mismatched == ("grad_in", "grad_out", "params_after")


def test_a_bad_snapshot_or_record_is_reported(spec_factory, store):
    spec = spec_factory()
    workers, results = _train(spec, store, rounds=1)
    record, _ = _record(store, results[2], spec)
    bundle = workers[2].make_audit_bundle([1])
    # A snapshot from another step: params_before no longer matches.
    doc = store.get_json(bundle)
    other = workers[2].make_audit_bundle([3])
    doc["steps"][0]["snapshot"] = store.get_json(other)["steps"][0]["snapshot"]
    swapped = store.put_json(doc)
    assert "params_before" in replay(store, swapped, 1, record=record).mismatched
    # Garbage instead of safetensors: a named mismatch, not a crash.
    doc["steps"][0]["snapshot"] = store.add_bytes(b"not a checkpoint")
    verdict = replay(store, store.put_json(doc), 1, record=record)
    assert verdict.mismatched == ("params_before",) and "safetensors" in verdict.detail
    # A record whose leaves do not hash to its root.
    broken = record.model_copy(update={"trace_root": "0x" + "00" * 32})
    assert replay(store, bundle, 1, record=broken).mismatched == ("trace_root",)
    # A leaf the bundle does not cover, and a bundle for another stage.
    with pytest.raises(AuditError, match="no snapshot for step 1"):
        replay(store, bundle, 2, record=record)
    with pytest.raises(AuditError, match="stage"):
        replay(store, workers[1].make_audit_bundle([1]), 1, record=record)
    assert AuditBundle.model_validate(store.get_json(bundle)).leaf_indices == [1]
