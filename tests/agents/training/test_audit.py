"""Audit bundles and replay bound to the chain: honest leaves match in a fresh process;
every lie is named, whatever the provider writes in its record or bundle; a validator on
another platform never accuses an honest provider."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from agents.faults import Fault, FaultyStageWorker, reversed_dataset, swapped_spec
from agents.training.audit import AuditBundle, ChainBinding, replay, replay_leaves
from agents.training.checkpoint import canonical_safetensors
from agents.training.errors import AuditError
from agents.training.pipeline import InProcessPipeline
from agents.training.worker import StageWorker

REPO = Path(__file__).resolve().parents[3]
JOB = 5


def _record(store, result, spec_cid, *, provider=None):
    provider = provider or "0x" + f"{result.stage + 1:040x}"
    record = result.to_record(
        provider=provider, spec=spec_cid, new_checkpoint=store.add_bytes(result.state_bytes)
    )
    return record, store.put_json(record.model_dump(mode="json"))


def _bind(result, spec_cid, *, round_=None) -> ChainBinding:
    """What the chain would hold for this result's commitment."""
    return ChainBinding(
        job_id=JOB,
        round=result.round if round_ is None else round_,
        stage=result.stage,
        spec_cid=spec_cid,
        provider="0x" + f"{result.stage + 1:040x}",
        trace_root=result.trace_root,
    )


def _train(spec, store, *, rounds=1, fault=None, fault_stage=1, specs=None):
    workers = []
    for s in range(spec.num_stages):
        stage_spec = (specs or {}).get(s, spec)
        if fault is not None and s == fault_stage:
            workers.append(
                FaultyStageWorker(
                    stage_spec, s, store=store, fault=fault, fault_rounds=frozenset({rounds - 1})
                )
            )
        else:
            workers.append(StageWorker(stage_spec, s, store=store))
    pipe = InProcessPipeline(workers)
    for r in range(rounds):
        results = pipe.train_round(job_id=JOB, round=r)
    return workers, results


def _replay_cli(store_dir, binding, bundle, record_cid, leaves, *, prelude=""):
    """The replay entry point in a fresh interpreter; `prelude` emulates another platform."""
    args = ["--store", str(store_dir), "--binding", json.dumps(binding.to_json())]
    args += [bundle, record_cid, *map(str, leaves)]
    code = (
        f"{prelude}\nimport sys\nfrom agents.training.replay import main\nsys.exit(main({args!r}))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "ATEN_CPU_CAPABILITY"},
        timeout=180,
    )
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return proc, rows


@pytest.fixture
def pinned(spec_factory):
    """A spec pinned to this machine (as `tessera job post` pins it)."""
    from agents.spec import DeterminismConfig

    det = DeterminismConfig(
        seed=7,
        num_threads=1,
        torch_version=torch.__version__,
        cpu_capability=torch.backends.cpu.get_cpu_capability(),
    )
    return spec_factory(compression="int8", determinism=det)


def test_every_leaf_replays_in_a_fresh_process_and_a_lie_exits_1(pinned, store, tmp_path):
    spec_cid = store.put_json(pinned.model_dump(mode="json"))
    workers, results = _train(pinned, store, fault=Fault.SKIP_STEPS, fault_stage=2)
    n = len(results[0].leaves)
    for w, res in zip(workers[:2], results[:2], strict=True):
        _, record_cid = _record(store, res, spec_cid)
        bundle = w.make_audit_bundle(list(range(n)))
        proc, rows = _replay_cli(
            tmp_path / "store", _bind(res, spec_cid), bundle, record_cid, [0, 2]
        )
        assert proc.returncode == 0, proc.stderr
        # Asking for leaves 0 and 2 replays their whole steps: every micro-batch is compared.
        assert [(r["leaf_index"], r["match"]) for r in rows] == [(i, True) for i in range(n)]
    _, record_cid = _record(store, results[2], spec_cid)
    bundle = workers[2].make_audit_bundle([3])
    proc, rows = _replay_cli(
        tmp_path / "store", _bind(results[2], spec_cid), bundle, record_cid, [3]
    )
    assert proc.returncode == 1, proc.stderr
    assert [r["mismatched"] for r in rows] == [["params_after"], ["params_after"]]


@pytest.mark.parametrize(
    ("fault", "stage", "leaf", "expected"),
    [
        (Fault.SKIP_STEPS, 1, 2, ("params_after",)),
        (Fault.FAKE_GRADIENT, 1, 1, ("grad_out", "params_after")),
        (Fault.WRONG_DATA, 0, 3, ("input", "output", "params_after", "data_ref")),
        (Fault.WRONG_DATA, 2, 0, ("output", "grad_out", "params_after", "data_ref")),
    ],
)
def test_each_computation_fault_is_caught_and_the_field_named(
    pinned, store, fault, stage, leaf, expected
):
    spec_cid = store.put_json(pinned.model_dump(mode="json"))
    workers, results = _train(pinned, store, fault=fault, fault_stage=stage)
    record, _ = _record(store, results[stage], spec_cid)
    bundle = workers[stage].make_audit_bundle([leaf])
    verdict = replay(store, bundle, leaf, record=record, binding=_bind(results[stage], spec_cid))
    assert verdict.match is False
    assert verdict.mismatched == expected, verdict.detail
    other = (stage + 1) % pinned.num_stages  # the cheater's neighbour is honest
    record_o, _ = _record(store, results[other], spec_cid)
    bundle_o = workers[other].make_audit_bundle([leaf])
    assert replay(
        store, bundle_o, leaf, record=record_o, binding=_bind(results[other], spec_cid)
    ).match


def test_poisoning_the_micro_batch_nobody_sampled_is_caught(pinned, store):
    spec_cid = store.put_json(pinned.model_dump(mode="json"))
    workers, results = _train(pinned, store, fault=Fault.POISON_MICRO_BATCH, fault_stage=1)
    record, _ = _record(store, results[1], spec_cid)
    bundle = workers[1].make_audit_bundle([2])  # micro-batch 0 of step 1 was drawn
    verdicts = replay_leaves(store, bundle, [2], record=record, binding=_bind(results[1], spec_cid))
    # The drawn leaf alone is clean (comparing only it found nothing); its step is not.
    assert verdicts[2].match is True
    assert verdicts[3].match is False and verdicts[3].mismatched == ("grad_out",)


def test_the_spec_comes_from_the_chain_not_from_the_record(pinned, store):
    chain_cid = store.put_json(pinned.model_dump(mode="json"))
    cheat = swapped_spec(pinned, Fault.SPEC_SWAP)  # lr 1e-12: it learns nothing
    cheat_cid = store.put_json(cheat.model_dump(mode="json"))
    workers, results = _train(pinned, store, specs={1: cheat})
    bundle = workers[1].make_audit_bundle([0])
    # Record and bundle name the provider's own spec: refused before any replay.
    record, _ = _record(store, results[1], cheat_cid)
    v = replay(store, bundle, 0, record=record, binding=_bind(results[1], chain_cid))
    assert v.match is False and v.mismatched == ("record",) and "spec" in v.detail
    # Record names the chain's spec, bundle the provider's: the bundle is refused.
    record, _ = _record(store, results[1], chain_cid)
    v = replay(store, bundle, 0, record=record, binding=_bind(results[1], chain_cid))
    assert v.match is False and v.mismatched == ("bundle",)
    # Both name the chain's spec: the replay under the real lr contradicts params_after.
    doc = store.get_json(bundle)
    doc["spec"] = chain_cid
    v = replay(store, store.put_json(doc), 0, record=record, binding=_bind(results[1], chain_cid))
    assert v.match is False and v.mismatched == ("params_after",)


def test_a_dataset_swap_by_stage_0_is_caught(pinned, store):
    chain_cid = store.put_json(pinned.model_dump(mode="json"))
    other = reversed_dataset(store, pinned.dataset)
    cheat = swapped_spec(pinned, Fault.DATASET_SWAP, other)
    workers, results = _train(pinned, store, specs={0: cheat, 2: cheat})
    record, _ = _record(store, results[0], chain_cid)
    doc = store.get_json(workers[0].make_audit_bundle([1]))
    doc["spec"] = chain_cid
    v = replay(store, store.put_json(doc), 1, record=record, binding=_bind(results[0], chain_cid))
    assert v.match is False and {"input", "data_ref"} <= set(v.mismatched)


def test_a_previous_rounds_record_recommitted_is_refused(pinned, store):
    spec_cid = store.put_json(pinned.model_dump(mode="json"))
    workers, results = _train(pinned, store)
    record, _ = _record(store, results[1], spec_cid)  # round 0's record ...
    bundle = workers[1].make_audit_bundle([0])
    binding = _bind(results[1], spec_cid, round_=1)  # ... committed for round 1
    v = replay(store, bundle, 0, record=record, binding=binding)
    assert v.match is False and v.mismatched == ("record",) and "round" in v.detail


def _tamper(store, bundle_cid: str, field: str) -> str:
    """A copy of the bundle whose `field` payload file has one value changed."""
    from safetensors.torch import load

    doc = store.get_json(bundle_cid)
    entry = doc["steps"][0]
    tensors = dict(load(store.cat(entry[field])))
    key = sorted(tensors)[0]
    t = tensors[key].clone()
    t.view(-1)[0] += 1 if t.dtype != torch.float32 else 0.25
    tensors[key] = t
    entry[field] = store.add_bytes(canonical_safetensors(tensors, {"format": "tessera/payloads@1"}))
    return store.put_json(doc)


def test_bundle_payloads_are_checked_against_the_record_before_replaying(pinned, store):
    spec_cid = store.put_json(pinned.model_dump(mode="json"))
    workers, results = _train(pinned, store)
    record, _ = _record(store, results[1], spec_cid)
    binding = _bind(results[1], spec_cid)
    bundle = workers[1].make_audit_bundle([2, 3])
    assert all(
        v.match for v in replay_leaves(store, bundle, [2], record=record, binding=binding).values()
    )
    for field in ("inputs", "grads"):
        verdicts = replay_leaves(
            store, _tamper(store, bundle, field), [2], record=record, binding=binding
        )
        assert {v.mismatched for v in verdicts.values()} == {("bundle",)}, field
    doc = store.get_json(bundle)
    doc["steps"][0]["snapshot"] = store.get_json(workers[1].make_audit_bundle([0]))["steps"][0][
        "snapshot"
    ]
    v = replay(store, store.put_json(doc), 2, record=record, binding=binding)
    assert v.mismatched == ("bundle",) and "params_before" in v.detail
    doc["steps"][0]["snapshot"] = store.add_bytes(b"not a checkpoint")
    assert replay(store, store.put_json(doc), 2, record=record, binding=binding).mismatched == (
        "bundle",
    )
    # A leaf the bundle does not cover is the provider's failure, a leaf outside the record ours.
    assert replay(store, bundle, 0, record=record, binding=binding).mismatched == ("bundle",)
    with pytest.raises(AuditError, match="leaf 99"):
        replay(store, bundle, 99, record=record, binding=binding)
    assert AuditBundle.model_validate(store.get_json(bundle)).leaf_indices == [2, 3]


def test_bundles_come_from_kept_snapshots_without_recomputing(pinned, store, monkeypatch):
    spec_cid = store.put_json(pinned.model_dump(mode="json"))
    workers, results = _train(pinned, store)

    def no_compute(*a, **k):
        raise AssertionError("bundle building recomputed a step")

    for name in ("forward", "backward", "step"):
        monkeypatch.setattr(type(workers[1]), name, no_compute)
    bundle = workers[1].make_audit_bundle([3])
    monkeypatch.undo()
    record, _ = _record(store, results[1], spec_cid)
    assert replay(store, bundle, 3, record=record, binding=_bind(results[1], spec_cid)).match


# Another platform, emulated in the validator's own interpreter before the replay runs:
# ATen reads its kernel set once, at the first op; the torch build is what it reports.
OTHER_KERNELS = (
    "import os\nos.environ['ATEN_CPU_CAPABILITY'] = 'default'\nimport torch\ntorch.ones(2) + 1"
)
OTHER_TORCH = "import torch\ntorch.__version__ = '2.12.0+cpu'"


@pytest.mark.parametrize("prelude", [OTHER_KERNELS, OTHER_TORCH], ids=["kernels", "torch"])
def test_a_validator_on_another_platform_never_accuses_an_honest_provider(
    pinned, store, tmp_path, prelude
):
    if pinned.determinism.cpu_capability == "DEFAULT" and prelude is OTHER_KERNELS:
        pytest.skip("this machine has only the default kernel set")
    spec_cid = store.put_json(pinned.model_dump(mode="json"))
    workers, results = _train(pinned, store, fault=Fault.SKIP_STEPS, fault_stage=2)
    honest, _ = _record(store, results[1], spec_cid)
    honest_cid = store.put_json(honest.model_dump(mode="json"))
    bundle = workers[1].make_audit_bundle([0, 3])
    binding = _bind(results[1], spec_cid)
    # With the step's tensors in the bundle: compared within cross_platform_rtol.
    proc, rows = _replay_cli(
        tmp_path / "store", binding, bundle, honest_cid, [0, 3], prelude=prelude
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert all(r["match"] is True and "cross-platform" in r["detail"] for r in rows), rows
    # Without them (an old bundle): abstain, never a mismatch.
    doc = store.get_json(bundle)
    for e in doc["steps"]:
        e["after"] = None
    stripped = store.put_json(doc)
    proc, rows = _replay_cli(
        tmp_path / "store", binding, stripped, honest_cid, [0], prelude=prelude
    )
    assert proc.returncode == 3, proc.stderr + proc.stdout
    assert {r["match"] for r in rows} == {None} and "abstain" in rows[0]["detail"]
    # A real cheat is still caught across platforms.
    cheat, _ = _record(store, results[2], spec_cid)
    cheat_cid = store.put_json(cheat.model_dump(mode="json"))
    bundle = workers[2].make_audit_bundle([1])
    proc, rows = _replay_cli(
        tmp_path / "store", _bind(results[2], spec_cid), bundle, cheat_cid, [1], prelude=prelude
    )
    assert proc.returncode == 1 and rows[0]["mismatched"] == ["params_after"], rows


def test_the_receiver_records_the_senders_signature_and_the_bundle_carries_it(spec_factory, store):
    from eth_account import Account

    from agents.protocol.attestation import (
        BACKWARD,
        FORWARD,
        PayloadContext,
        attestation_hash,
        is_signed_by,
        sign_payload,
    )
    from agents.training.hashing import tensors_hash

    spec = spec_factory(num_stages=2)
    up, down = StageWorker(spec, 0, store=store), StageWorker(spec, 1, store=store)
    keys = [Account.from_key(bytes([i + 1]) * 32) for i in range(2)]
    market = "0x" + "ab" * 20

    def ctx(stage, step, mb, direction):
        return PayloadContext(31337, market, JOB, 0, stage, step, mb, direction)

    for w in (up, down):
        w.begin_round(JOB, 0)
    m = spec.training.micro_batches
    for step in range(spec.training.steps_per_round):
        sigs = {}
        for mb in range(m):
            payload = up.forward(step, mb)
            sigs[mb] = sign_payload(keys[0].key, ctx(0, step, mb, FORWARD), tensors_hash(payload))
            down.forward(step, mb, payload, attestation=sigs[mb])
        for mb in range(m):
            grad = down.backward(step, mb)
            sig = sign_payload(keys[1].key, ctx(1, step, mb, BACKWARD), tensors_hash(grad))
            up.backward(step, mb, grad, attestation=sig)
        up.step(step)
        down.step(step)
    r_up, r_down = up.end_round(), down.end_round()
    for a, b in zip(r_up.leaves, r_down.leaves, strict=True):
        assert b.input == a.output and b.input_attestation != attestation_hash(None)
        assert a.grad_in_attestation != attestation_hash(None)
        assert a.input_attestation == attestation_hash(None)  # stage 0 has no sender
    bundle = AuditBundle.model_validate(store.get_json(down.make_audit_bundle([1])))
    sig = bundle.steps[0].input_signatures[1]
    leaf = r_down.leaves[1]
    assert attestation_hash(sig) == leaf.input_attestation
    assert is_signed_by(ctx(0, 0, 1, FORWARD), leaf.input, sig, keys[0].address)


class _IgnoresTheSchedule(StageWorker):
    """Steps at the spec's peak rate whatever the schedule says (a faster-looking cheat)."""

    def _apply_update(self) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = self.spec.optimizer.lr
        super()._apply_update()


def test_a_scheduled_rate_replays_and_a_stage_ignoring_it_is_caught(pinned, store):
    from agents.spec import OptimizerConfig

    opt = OptimizerConfig(schedule="cosine", warmup_steps=1, decay_steps=4, min_lr_ratio=0.0)
    spec = pinned.model_copy(update={"optimizer": opt})
    spec_cid = store.put_json(spec.model_dump(mode="json"))
    workers = [
        (_IgnoresTheSchedule if s == 1 else StageWorker)(spec, s, store=store)
        for s in range(spec.num_stages)
    ]
    pipe = InProcessPipeline(workers)
    for r in range(2):
        results = pipe.train_round(job_id=JOB, round=r)
    # Round 1 is global steps 2 and 3: rates far from the peak, so the cheat shows.
    assert workers[0].optimizer.param_groups[0]["lr"] == opt.lr_at(3) < opt.lr / 2
    n = len(results[0].leaves)
    for stage, honest in ((0, True), (2, True), (1, False)):
        record, _ = _record(store, results[stage], spec_cid)
        bundle = workers[stage].make_audit_bundle(list(range(n)))
        verdicts = replay_leaves(
            store, bundle, list(range(n)), record=record, binding=_bind(results[stage], spec_cid)
        )
        assert all(v.match for v in verdicts.values()) is honest
        if not honest:
            assert {v.mismatched for v in verdicts.values()} == {("params_after",)}
