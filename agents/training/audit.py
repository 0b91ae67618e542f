"""Audit bundles and their replay.

A provider publishes, for the leaves validators sampled, an `AuditBundle`:
for each sampled step, the stage state at the start and end of that step
(safetensors, from the snapshots the worker kept), every payload the stage
received and sent in that step. The validator takes spec, job, round, stage
and provider from the chain (`ChainBinding`), checks the record against the
commitment and the bundle's payloads against the record's leaf hashes, then
replays the whole step in a fresh process with the spec's determinism
settings, reading stage-0 / last-stage data from the chain round's seeded
windows itself, and compares every micro-batch's leaf.

Same platform: hashes, bitwise. A validator that cannot reproduce the
platform (torch build, kernel set, device) abstains — unless the spec sets
`cross_platform_rtol` and the bundle carries the step's tensors, in which
case it checks those tensors hash to the committed leaves and compares its
recomputation with them by relative L2 error per tensor. The smallest cheat
that tolerance lets go unpunished: any change to a step whose effect on
every state tensor and every sent payload stays within CONVICT_FACTOR * rtol
of its norm (between rtol and that the validator abstains), e.g. with rtol
1e-3 scaling one step's update by (1 - 1e-2 * |w| / |dw|) — with AdamW at lr
3e-3 on weights of scale 0.02 (|dw|/|w| ~ 0.15) that is a 7% change of one
step's update; it compounds over steps no validator sampled, so
same-platform validators (bitwise) remain the check that binds.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import Field

from agents.errors import TesseraError
from agents.lineage.documents import CID, Document, Hash32, RoundRecord
from agents.spec import JobSpec
from agents.training.errors import AuditError, CheckpointError, CompressionError, TrainingError
from agents.training.traces import REPLAY_FIELDS

if TYPE_CHECKING:
    from agents.training.worker import StageWorker


class AuditStep(Document):
    """Everything needed to replay one step of one stage.

    `snapshot` / `after`: the state at the start / end of the step. `inputs` /
    `grads`: every payload received in the step. `sent` / `sent_grads`: every
    payload sent (the last stage's "sent" holds its losses), so a validator on
    another platform can compare its recomputation with a tolerance after
    checking these hash to the committed leaves. `after`, `sent` and
    `sent_grads` are published only when the spec sets `cross_platform_rtol`:
    a same-platform replay recomputes them and compares hashes.
    """

    step: int = Field(ge=0)
    params_before: Hash32
    snapshot: CID
    inputs: CID
    grads: CID | None = None
    sent: CID | None = None
    sent_grads: CID | None = None
    after: CID | None = None
    # 0x-hex payload signatures of the senders, by micro-batch ("" where none).
    input_signatures: list[str] = Field(default_factory=list)
    grad_in_signatures: list[str] = Field(default_factory=list)


class AuditBundle(Document):
    """What a provider publishes so validators can replay sampled leaves."""

    kind: str = "tessera/audit-bundle@2"
    spec: CID
    job_id: int = Field(ge=0)
    round: int = Field(ge=0)
    stage: int = Field(ge=0)
    leaf_indices: list[int] = Field(min_length=1)
    steps: list[AuditStep] = Field(min_length=1)


@dataclass(frozen=True)
class ChainBinding:
    """What the chain says was committed: a replay takes these, never the record's or bundle's."""

    job_id: int
    round: int
    stage: int
    spec_cid: str
    provider: str
    trace_root: str

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict (what the validator sends its replay child)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ChainBinding:
        """The inverse of `to_json`."""
        return cls(**data)


@dataclass(frozen=True)
class ReplayResult:
    """The verdict on one leaf.

    match True: every recomputed hash equals the committed one. False: the
    provider's commitment, record or bundle is contradicted (`mismatched`
    names what). None: this validator cannot reproduce the platform — abstain,
    which is never grounds for a challenge or a guilty vote.
    """

    leaf_index: int
    match: bool | None
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
    """Publish the per-step snapshots and payloads of the sampled leaves' steps; the CID.

    Nothing is recomputed: the worker kept a snapshot at the start of every step.
    """
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
    # What a cross-platform replay compares its recomputation with; a same-platform
    # replay recomputes and hashes them, so without a tolerance they are not sent.
    tensors = bool(worker.spec.audit.cross_platform_rtol)

    def payloads(by_mb):
        return store.add_bytes(_payloads_to_bytes(by_mb)) if by_mb and tensors else None

    def end_state(s):
        after = logs[s + 1].snapshot if s + 1 in logs else last_round["end"]
        return store.add_bytes(state_to_bytes(after, content_hash=leaves[s * m].params_after))

    entries = []
    for s in steps:
        log = logs[s]
        if log.snapshot is None:
            raise AuditError(f"stage {worker.stage} kept no snapshot of step {s} (a replay worker)")
        entries.append(
            AuditStep(
                step=s,
                params_before=log.params_before,
                snapshot=store.add_bytes(
                    state_to_bytes(log.snapshot, content_hash=log.params_before)
                ),
                inputs=store.add_bytes(_payloads_to_bytes(log.inputs)),
                grads=None if worker.is_last else store.add_bytes(_payloads_to_bytes(log.grads)),
                sent=payloads(log.sent),
                sent_grads=payloads(log.sent_grads),
                after=end_state(s) if tensors else None,
                input_signatures=_signatures(log.input_signatures, m),
                grad_in_signatures=_signatures(log.grad_signatures, m),
            )
        )
    bundle = AuditBundle(
        spec=spec_cid(store, worker.spec),
        job_id=last_round["job_id"],
        round=last_round["round"],
        stage=worker.stage,
        leaf_indices=sorted(set(leaf_indices)),
        steps=entries,
    )
    return store.put_json(bundle.model_dump(mode="json"))


def _signatures(by_mb: dict[int, bytes], m: int) -> list[str]:
    if not by_mb:
        return []
    return ["0x" + by_mb[mb].hex() if mb in by_mb else "" for mb in range(m)]


def _short(h: str) -> str:
    return h[:10] + ".."


def record_problems(record: RoundRecord, binding: ChainBinding) -> list[str]:
    """Where a round record contradicts what the chain committed (empty: it agrees)."""
    from agents.training.traces import trace_tree

    out = []
    for name, mine, chain in (
        ("job", record.job_id, binding.job_id),
        ("round", record.round, binding.round),
        ("stage", record.stage, binding.stage),
        ("spec", record.spec, binding.spec_cid),
        ("provider", record.provider.lower(), binding.provider.lower()),
    ):
        if mine != chain:
            out.append(f"record names {name} {mine}, the chain {chain}")
    try:
        root = trace_tree(record.leaves).root_hex
    except Exception as exc:
        out.append(f"record leaves do not form a trace tree: {exc}")
    else:
        if root.lower() != binding.trace_root.lower():
            out.append("record leaves do not hash to the committed trace root")
    return out


class _BundleFault(Exception):
    """The provider's bundle contradicts its own commitment (its fault)."""


def replay_leaves(
    store: Any,
    bundle_cid: str,
    leaf_indices: list[int],
    *,
    record: RoundRecord,
    binding: ChainBinding,
) -> dict[int, ReplayResult]:
    """Replay the steps of these leaves and compare EVERY micro-batch's leaf of each step.

    Spec, job, round, stage and provider come from `binding` (the chain); the
    record must agree with it, and the bundle's payloads with the record's
    leaf hashes, before anything is replayed. The result covers every leaf of
    every replayed step (so more than `leaf_indices` when M > 1).
    """
    from agents.training.worker import StageWorker

    def every(match, fields, detail):
        return {i: ReplayResult(i, match, fields, detail) for i in leaf_indices}

    problems = record_problems(record, binding)
    if problems:
        return every(False, ("record",), problems[0])
    try:
        spec = JobSpec.model_validate(store.get_json(binding.spec_cid))
    except ValueError as exc:  # the chain's own spec: nothing the provider did
        raise AuditError(f"job spec {binding.spec_cid} is invalid: {exc}") from None
    try:
        bundle = AuditBundle.model_validate(store.get_json(bundle_cid))
    except (TesseraError, ValueError) as exc:
        return every(False, ("bundle",), f"audit bundle {bundle_cid} is unusable: {exc}")
    where = (bundle.job_id, bundle.round, bundle.stage, bundle.spec)
    if where != (binding.job_id, binding.round, binding.stage, binding.spec_cid):
        return every(False, ("bundle",), f"bundle is for {where}, the chain says otherwise")
    m = spec.training.micro_batches
    by_step = {e.step: e for e in bundle.steps}
    results: dict[int, ReplayResult] = {}
    workers: dict[bool, Any] = {}  # built once per call, moved to each step's snapshot
    for index in leaf_indices:
        if not 0 <= index < len(record.leaves):
            raise AuditError(f"leaf {index} is not in the round record")
        step = index // m
        if index in results:
            continue
        entry = by_step.get(step)
        committed = record.leaves[step * m : (step + 1) * m]
        if entry is None:
            verdicts = [(False, ("bundle",), f"bundle has no snapshot for step {step}")] * m
        else:
            verdicts = _replay_step(store, spec, binding, entry, committed, StageWorker, workers)
        for leaf, (match, fields, detail) in zip(committed, verdicts, strict=True):
            results[leaf.index] = ReplayResult(leaf.index, match, fields, detail)
    return results


def _check_payloads(store, entry, committed, field, cid, m) -> dict[int, Any]:
    from agents.training.hashing import tensors_hash

    payloads = _payloads_from_bytes(store.cat(cid), m)
    for leaf in committed:
        if tensors_hash(payloads[leaf.micro_batch]) != getattr(leaf, field):
            raise _BundleFault(
                f"bundle {field} of micro-batch {leaf.micro_batch} is not the committed one"
            )
    return payloads


def _worker_at(workers, tolerant, worker_cls, spec, stage, store, state, known_hash):
    """A replay worker holding `state`: one per replay call (and platform mode)."""
    worker = workers.get(tolerant)
    if worker is None:
        worker = workers[tolerant] = worker_cls(spec, stage, store=store, snapshots=False)
    worker.restart_at(state, known_hash=known_hash)
    return worker


def _replay_step(store, spec, binding, entry, committed, worker_cls, workers=None):
    """Recompute every leaf of one step: a (match, mismatched, detail) per micro-batch."""
    from agents.training.checkpoint import state_from_bytes, state_hash
    from agents.training.determinism import DeterminismError

    m = spec.training.micro_batches
    stage = binding.stage
    is_first, is_last = stage == 0, stage == spec.num_stages - 1
    workers = {} if workers is None else workers
    try:
        snapshot = state_from_bytes(store.cat(entry.snapshot), stage=stage)
        before = snapshot.content_hash or state_hash(snapshot)
        if before != committed[0].params_before:
            raise _BundleFault("bundle snapshot is not the committed params_before")
        inputs = (
            None if is_first else _check_payloads(store, entry, committed, "input", entry.inputs, m)
        )
        grads = None
        if not is_last:
            if entry.grads is None:
                raise _BundleFault(f"bundle step {entry.step} lacks the incoming gradients")
            grads = _check_payloads(store, entry, committed, "grad_in", entry.grads, m)
    except (_BundleFault, CheckpointError, AuditError, TesseraError) as exc:
        return [(False, ("bundle",), str(exc).splitlines()[0])] * m
    tolerant = False
    try:
        worker = _worker_at(workers, False, worker_cls, spec, stage, store, snapshot, before)
    except DeterminismError as exc:
        local = _local_spec(spec)
        if local is None or entry.after is None:
            return [(None, (), f"abstain: cannot reproduce the platform ({exc})")] * m
        tolerant = True
        worker = _worker_at(workers, True, worker_cls, local, stage, store, snapshot, before)
    except CheckpointError as exc:
        return [(False, ("params_before",), f"snapshot unusable ({exc})")] * m
    # Data windows follow the chain's job and round, never the provider's record.
    worker.begin_round(binding.job_id, binding.round, start_step=entry.step)
    phase = "input"
    try:
        for mb in range(m):
            worker.forward(entry.step, mb, None if is_first else inputs[mb])
        phase = "grad_in"
        for mb in range(m):
            worker.backward(entry.step, mb, None if is_last else grads[mb])
        worker.step(entry.step)
    except (CompressionError, KeyError) as exc:
        return [(False, (phase,), f"recorded payload unusable ({exc})")] * m
    except TrainingError as exc:
        return [(False, (phase,), f"replay failed ({exc})")] * m
    if tolerant:
        return _compare_tolerant(store, spec, worker, entry, committed)
    out = []
    for mine, leaf in zip(worker.leaves, committed, strict=True):
        bad = tuple(f for f in REPLAY_FIELDS if getattr(mine, f) != getattr(leaf, f))
        detail = "; ".join(
            f"{f}: committed {_short(getattr(leaf, f))} recomputed {_short(getattr(mine, f))}"
            for f in bad
        )
        out.append((not bad, bad, detail or "all hashes match"))
    return out


# A cross-platform difference between rtol and CONVICT_FACTOR * rtol abstains: float
# reorderings can flip AdamW's first-step sign(g) on a few near-zero gradients, which
# an honest provider must never be slashed for.
CONVICT_FACTOR = 10.0


def _local_spec(spec: JobSpec) -> JobSpec | None:
    """The spec with this machine's own platform, for a tolerant cross-platform replay."""
    if not spec.audit.cross_platform_rtol:
        return None
    det = spec.determinism.model_copy(
        update={"torch_version": "", "cpu_capability": "", "device": "cpu"}
    )
    return spec.model_copy(update={"determinism": det})


def relative_l2(a: Any, b: Any) -> float:
    """||a - b|| / max(||b||, tiny), in float64."""
    a64, b64 = a.double(), b.double()
    return float((a64 - b64).norm() / max(float(b64.norm()), 1e-30))


def _compare_tolerant(store, spec, worker, entry, committed):
    """Cross-platform: the bundle's tensors must hash to the committed leaves, and the
    recomputed tensors must be within `cross_platform_rtol` (relative L2, per tensor)."""
    from agents.training.checkpoint import state_from_bytes, state_hash
    from agents.training.hashing import tensor_hash, tensors_hash

    rtol = spec.audit.cross_platform_rtol
    m = spec.training.micro_batches
    try:
        after = state_from_bytes(store.cat(entry.after), stage=worker.stage)
        if state_hash(after) != committed[0].params_after:
            raise _BundleFault("bundle end state is not the committed params_after")
        sent = _payloads_from_bytes(store.cat(entry.sent), m) if entry.sent else None
        sent_grads = (
            _payloads_from_bytes(store.cat(entry.sent_grads), m) if entry.sent_grads else None
        )
    except (_BundleFault, CheckpointError, AuditError, TesseraError) as exc:
        return [(False, ("bundle",), str(exc).splitlines()[0])] * m
    worst = {"params_after": 0.0, "output": 0.0, "grad_out": 0.0}
    mine = worker.state_tensors()
    for name, t in after.tensors.items():
        worst["params_after"] = max(worst["params_after"], relative_l2(mine[name], t))
    log = worker._logs[entry.step]
    out = []
    for leaf in committed:
        mb = leaf.micro_batch
        for field, claimed, recomputed in (
            ("output", sent, log.sent),
            ("grad_out", sent_grads, log.sent_grads),
        ):
            if claimed is None:
                continue
            # The last stage's output is the tensor hash of its loss (see traces.py).
            is_loss = set(claimed[mb]) == {"loss"}
            h = tensor_hash(claimed[mb]["loss"]) if is_loss else tensors_hash(claimed[mb])
            if h != getattr(leaf, field):
                return [(False, ("bundle",), f"bundle {field} is not the committed one")] * m
            err = relative_l2(
                _dense(spec, worker, recomputed[mb]), _dense(spec, worker, claimed[mb])
            )
            worst[field] = max(worst[field], err)
        bad = tuple(f for f, v in worst.items() if v > CONVICT_FACTOR * rtol)
        unsure = any(v > rtol for v in worst.values())
        detail = ", ".join(f"{f} rel {v:.2e}" for f, v in worst.items()) + f" (rtol {rtol:g})"
        if bad:
            out.append((False, bad, "cross-platform: " + detail))
        elif unsure:  # past the tolerance but not clearly a cheat: never an accusation
            out.append((None, (), "abstain: cross-platform difference " + detail))
        else:
            out.append((True, (), "cross-platform: " + detail))
    return out


def _dense(spec, worker, payload):
    """A payload as the dense tensor it stands for (the last stage's loss passes through)."""
    if set(payload) == {"loss"}:
        return payload["loss"].float()
    codec = worker.codec
    if codec.subspace and "tokens" not in payload:  # a gradient: coordinates, no tokens
        return codec.decode_backward(payload, worker.boundary_shape).float()
    return codec.decode_forward(payload, worker.boundary_shape)[0].float()


def replay(
    store: Any, bundle_cid: str, leaf_index: int, *, record: RoundRecord, binding: ChainBinding
) -> ReplayResult:
    """Replay the step of one committed leaf from its audit bundle; say match or what differs."""
    return replay_leaves(store, bundle_cid, [leaf_index], record=record, binding=binding)[
        leaf_index
    ]


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
