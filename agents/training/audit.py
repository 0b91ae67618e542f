"""Audit bundles and their replay.

A provider publishes, for the leaves a validator sampled, an `AuditBundle`:
for each sampled step, the stage state at the start of that step
(safetensors), every payload the stage received in that step (the update
depends on all micro-batches) and every gradient payload it received. The
validator replays the step from those, in a fresh process with the spec's
determinism settings, reading stage-0 / last-stage data from the seeded
windows itself, and compares every hash of the committed leaf.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import Field

from agents.lineage.documents import CID, Document, Hash32, JobSpec, RoundRecord
from agents.training.errors import AuditError, CheckpointError, CompressionError, TrainingError
from agents.training.traces import REPLAY_FIELDS

if TYPE_CHECKING:
    from agents.training.worker import StageWorker


class AuditStep(Document):
    """Everything needed to replay one step of one stage."""

    step: int = Field(ge=0)
    params_before: Hash32
    snapshot: CID
    inputs: CID
    grads: CID | None = None


class AuditBundle(Document):
    """What a provider publishes so validators can replay sampled leaves."""

    kind: str = "tessera/audit-bundle@1"
    spec: CID
    job_id: int = Field(ge=0)
    round: int = Field(ge=0)
    stage: int = Field(ge=0)
    leaf_indices: list[int] = Field(min_length=1)
    steps: list[AuditStep] = Field(min_length=1)


@dataclass(frozen=True)
class ReplayResult:
    """The verdict on one leaf: match, or which committed hashes the replay contradicts."""

    leaf_index: int
    match: bool
    mismatched: tuple[str, ...]
    detail: str

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict (what the replay entry point prints)."""
        return {
            "leaf_index": self.leaf_index,
            "match": self.match,
            "mismatched": list(self.mismatched),
            "detail": self.detail,
        }


def _payloads_to_bytes(payloads: dict[int, dict[str, Any]]) -> bytes:
    from agents.training.checkpoint import canonical_safetensors

    flat = {f"{mb}/{name}": t for mb, p in payloads.items() for name, t in p.items()}
    return canonical_safetensors(flat, {"format": "tessera/payloads@1"})


def _payloads_from_bytes(data: bytes, micro_batches: int) -> dict[int, dict[str, Any]]:
    from safetensors import SafetensorError
    from safetensors.torch import load

    try:
        flat = load(data)
    except (SafetensorError, ValueError) as exc:
        raise AuditError(f"audit payload file is not valid safetensors: {exc}") from None
    out: dict[int, dict[str, Any]] = {mb: {} for mb in range(micro_batches)}
    for key, tensor in flat.items():
        mb, _, name = key.partition("/")
        if not mb.isdigit() or int(mb) not in out or not name:
            raise AuditError(f"audit payload file has unexpected tensor {key!r}")
        out[int(mb)][name] = tensor
    return out


def spec_cid(store: Any, spec: JobSpec) -> str:
    """The CID of a job spec's canonical JSON in `store`."""
    return store.put_json(spec.model_dump(mode="json"))


def build_audit_bundle(
    worker: StageWorker, last_round: dict[str, Any], leaf_indices: list[int]
) -> str:
    """Rebuild the start-of-step states of the sampled steps and publish the bundle; its CID."""
    from agents.training.checkpoint import state_to_bytes

    leaves = last_round["leaves"]
    if not leaf_indices:
        raise AuditError("an audit bundle needs at least one leaf index")
    bad = [i for i in leaf_indices if not 0 <= i < len(leaves)]
    if bad:
        raise AuditError(f"leaf indices {bad} are outside 0..{len(leaves) - 1}")
    m = worker.micro_batches
    steps = sorted({i // m for i in leaf_indices})
    logs = last_round["logs"]
    store = worker.store
    # Replay from the round start with the same worker class (and the same
    # faults): the snapshot is what this provider really had before the step.
    replica = type(worker)(
        worker.spec,
        worker.stage,
        store=store,
        state=state_to_bytes(last_round["start"]),
        fault=worker.fault,
        fault_rounds=worker.fault_rounds,
    )
    replica._data = worker._data
    replica.begin_round(last_round["job_id"], last_round["round"])
    entries = []
    for s in range(steps[-1] + 1):
        log = logs[s]
        if s in steps:
            if replica.state_hash() != log.params_before:
                raise AuditError(
                    f"stage {worker.stage}: rebuilt state at step {s} does not match the trace "
                    "(this process is not deterministic)"
                )
            entries.append(
                AuditStep(
                    step=s,
                    params_before=log.params_before,
                    snapshot=store.add_bytes(replica.state_bytes()),
                    inputs=store.add_bytes(_payloads_to_bytes(log.inputs)),
                    grads=None
                    if worker.is_last
                    else store.add_bytes(_payloads_to_bytes(log.grads)),
                )
            )
        if s < steps[-1]:
            replica.replay_step(s, log)
    bundle = AuditBundle(
        spec=spec_cid(store, worker.spec),
        job_id=last_round["job_id"],
        round=last_round["round"],
        stage=worker.stage,
        leaf_indices=sorted(set(leaf_indices)),
        steps=entries,
    )
    return store.put_json(bundle.model_dump(mode="json"))


def _short(h: str) -> str:
    return h[:10] + ".."


def replay_leaves(
    store: Any, bundle_cid: str, leaf_indices: list[int], *, record: RoundRecord
) -> dict[int, ReplayResult]:
    """Replay the steps of these leaves from the bundle and compare with `record`."""
    from agents.training.traces import trace_tree
    from agents.training.worker import StageWorker

    try:
        bundle = AuditBundle.model_validate(store.get_json(bundle_cid))
        spec = JobSpec.model_validate(store.get_json(bundle.spec))
    except ValueError as exc:
        raise AuditError(f"audit bundle {bundle_cid} is invalid: {exc}") from None
    if (bundle.job_id, bundle.round, bundle.stage) != (record.job_id, record.round, record.stage):
        raise AuditError(
            f"bundle is for job {bundle.job_id} round {bundle.round} stage {bundle.stage}, record "
            f"for job {record.job_id} round {record.round} stage {record.stage}"
        )
    if bundle.spec != record.spec:
        raise AuditError(f"bundle names spec {bundle.spec}, record names {record.spec}")
    root_ok = trace_tree(record.leaves).root_hex == record.trace_root
    m = spec.training.micro_batches
    by_step = {e.step: e for e in bundle.steps}
    results: dict[int, ReplayResult] = {}
    computed_steps: dict[int, tuple[list[Any], str]] = {}
    for index in leaf_indices:
        if not 0 <= index < len(record.leaves) or record.leaves[index].index != index:
            raise AuditError(f"leaf {index} is not in the round record")
        step = index // m
        entry = by_step.get(step)
        if entry is None:
            raise AuditError(f"bundle {bundle_cid} has no snapshot for step {step}")
        if step not in computed_steps:
            computed_steps[step] = _replay_step(store, spec, bundle, entry, StageWorker)
        leaves, error = computed_steps[step]
        committed = record.leaves[index]
        if not root_ok:
            results[index] = ReplayResult(
                index, False, ("trace_root",), "leaves do not hash to root"
            )
            continue
        if leaves is None:
            field_name, _, why = error.partition(":")
            results[index] = ReplayResult(index, False, (field_name,), why.strip())
            continue
        mine = leaves[index % m]
        bad = tuple(f for f in REPLAY_FIELDS if getattr(mine, f) != getattr(committed, f))
        detail = "; ".join(
            f"{f}: committed {_short(getattr(committed, f))} recomputed {_short(getattr(mine, f))}"
            for f in bad
        )
        results[index] = ReplayResult(index, not bad, bad, detail or "all hashes match")
    return results


def _replay_step(store, spec, bundle, entry, worker_cls) -> tuple[list[Any] | None, str]:
    """Recompute all leaves of one step; (leaves, "") or (None, "field: why")."""
    try:
        snapshot = store.cat(entry.snapshot)
        worker = worker_cls(spec, bundle.stage, store=store, state=snapshot)
    except CheckpointError as exc:
        return None, f"params_before: snapshot unusable ({exc})"
    m = spec.training.micro_batches
    inputs = _payloads_from_bytes(store.cat(entry.inputs), m)
    grads = None
    if not worker.is_last:
        if entry.grads is None:
            raise AuditError(f"bundle step {entry.step} lacks the incoming gradients")
        grads = _payloads_from_bytes(store.cat(entry.grads), m)
    worker.begin_round(bundle.job_id, bundle.round, start_step=entry.step)
    stage_fields = (("input", "forward"), ("grad_in", "backward"))
    phase = stage_fields[0]
    try:
        for mb in range(m):
            worker.forward(entry.step, mb, None if worker.is_first else inputs[mb])
        phase = stage_fields[1]
        for mb in range(m):
            worker.backward(entry.step, mb, None if worker.is_last else grads[mb])
        worker.step(entry.step)
    except (CompressionError, KeyError) as exc:
        return None, f"{phase[0]}: recorded {phase[1]} payload unusable ({exc})"
    except TrainingError as exc:
        return None, f"{phase[0]}: replay failed ({exc})"
    return worker.leaves, ""


def replay(store: Any, bundle_cid: str, leaf_index: int, *, record: RoundRecord) -> ReplayResult:
    """Replay the step of one committed leaf from its audit bundle; say match or what differs."""
    return replay_leaves(store, bundle_cid, [leaf_index], record=record)[leaf_index]


def check_boundaries(records: list[RoundRecord]) -> list[str]:
    """Cross-stage checks of one round's records (ordered by stage): for every leaf,
    stage s's output is stage s+1's input, stage s+1's grad_out is stage s's grad_in,
    and stage 0's data_ref is the last stage's. Returns one line per violation."""
    problems = []
    for a, b in itertools.pairwise(records):
        if len(a.leaves) != len(b.leaves):
            problems.append(
                f"stages {a.stage}/{b.stage}: {len(a.leaves)} vs {len(b.leaves)} leaves"
            )
            continue
        for la, lb in zip(a.leaves, b.leaves, strict=True):
            if la.output != lb.input:
                problems.append(f"leaf {la.index}: stage {a.stage} output != stage {b.stage} input")
            if lb.grad_out != la.grad_in:
                problems.append(
                    f"leaf {la.index}: stage {b.stage} grad_out != stage {a.stage} grad_in"
                )
    if len(records) > 1 and len(records[0].leaves) == len(records[-1].leaves):
        for la, lb in zip(records[0].leaves, records[-1].leaves, strict=True):
            if la.data_ref != lb.data_ref:
                problems.append(f"leaf {la.index}: stage 0 and last stage data_ref differ")
    return problems
