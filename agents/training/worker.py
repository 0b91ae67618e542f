"""The stage worker: forward, backward and optimizer step of ONE stage, with traces.

`StageWorker` is a plain class with no transport: the in-process runner calls
it directly and the Ray actor is a thin shell around it. Per step it takes
`forward` for micro-batches 0..M-1 and `backward` for 0..M-1, each in
micro-batch order, a backward only after its forward, then `step`; it
refuses anything else, because the gradient accumulation order changes float
bits and a replay must match. Within that, forwards and backwards may
interleave: the parameters do not change inside a step, so GPipe's order
(all forwards, then all backwards: what a pipeline over several machines
runs) and one micro-batch at a time (forward then backward: what one process
runs, holding a single micro-batch's activations) give the same bits.

Every micro-batch of every step becomes a `TraceLeaf` (see traces.py for what
each hash covers). The worker keeps a snapshot of its state at the start of
every step of the round and every payload it received and sent, so it can
publish an audit bundle for any step without recomputing anything. The
snapshots are one state per step of the round, so a long round's outgrow
RAM: with `snapshot_dir` (`tessera provider run --snapshot-dir`) their
buffers are file-backed pages in that directory, which the kernel writes
back and evicts as needed (`checkpoint.SpillDir`).

This class does not know how to cheat: the audits' tests and the demo inject
faults through small subclasses (`agents.faults`) that override the hooks
`_consume`, `_gradient_to_send` and `_apply_update`.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import torch

from agents.lineage.documents import RoundRecord, TraceLeaf
from agents.protocol.attestation import attestation_hash
from agents.spec import DeterminismConfig, JobSpec
from agents.training.checkpoint import (
    FlatTensors,
    SpillDir,
    StageState,
    flat_copy,
    state_from_bytes,
    state_hash,
    state_to_bytes,
)
from agents.training.compression import BoundaryCodec
from agents.training.data import DataSource, MicroBatch
from agents.training.determinism import apply_determinism
from agents.training.errors import CheckpointError, PipelineError, StageError
from agents.training.hashing import ZERO_HASH, payload_nbytes, tensor_hash, tensors_hash
from agents.training.model import lm_loss
from agents.training.optim import build_optimizer, set_step_rate
from agents.training.stages import build_stage
from agents.training.traces import trace_tree

Payload = dict[str, torch.Tensor]

_HASHER: ThreadPoolExecutor | None = None


def _hasher() -> ThreadPoolExecutor:
    """One background thread per process that hashes stage states (hashlib drops the GIL)."""
    global _HASHER
    if _HASHER is None:
        _HASHER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tessera-state-hash")
    return _HASHER


@dataclass(frozen=True)
class StageRoundResult:
    """What one stage produced in one round (the provider turns it into a RoundRecord)."""

    job_id: int
    round: int
    stage: int
    state_bytes: bytes
    state_hash: str
    leaves: list[TraceLeaf]
    trace_root: str
    metrics: dict[str, float]
    bytes_sent: int
    bytes_received: int
    data_shards: list[str]
    determinism: DeterminismConfig
    # The last stage's mean loss of every step of the round (empty elsewhere).
    step_losses: tuple[float, ...] = ()

    def to_record(
        self,
        *,
        provider: str,
        spec: str,
        new_checkpoint: str,
        parent_checkpoint: str | None = None,
        parent_record: str | None = None,
    ) -> RoundRecord:
        """The RoundRecord of this result, once its checkpoint is stored as `new_checkpoint`."""
        return RoundRecord(
            job_id=self.job_id,
            round=self.round,
            stage=self.stage,
            provider=provider,
            spec=spec,
            parent_checkpoint=parent_checkpoint,
            parent_record=parent_record,
            new_checkpoint=new_checkpoint,
            data_shards=self.data_shards,
            trace_root=self.trace_root,
            leaves=self.leaves,
            metrics=self.metrics,
            determinism=self.determinism,
            bytes_sent=self.bytes_sent,
            bytes_received=self.bytes_received,
        )


@dataclass
class _MicroState:
    """Live tensors of one micro-batch between its forward and backward."""

    input_hash: str
    output_hash: str
    data_ref: str
    x_in: torch.Tensor | None = None
    out: torch.Tensor | None = None
    loss: torch.Tensor | None = None
    grad_in: str = ""
    grad_out: str = ""
    input_attestation: str = ZERO_HASH
    grad_in_attestation: str = ZERO_HASH


@dataclass
class _StepLog:
    """What a step started from, received and sent, kept for audit bundles."""

    params_before: str = ""  # filled in by `step` (the hash runs in the background)
    snapshot: StageState | None = None  # the state at the start of the step
    inputs: dict[int, Payload] = field(default_factory=dict)
    grads: dict[int, Payload] = field(default_factory=dict)
    sent: dict[int, Payload] = field(default_factory=dict)
    sent_grads: dict[int, Payload] = field(default_factory=dict)
    # Senders' payload signatures (agents.protocol.attestation), for boundary attribution.
    input_signatures: dict[int, bytes] = field(default_factory=dict)
    grad_signatures: dict[int, bytes] = field(default_factory=dict)
    batches: dict[int, MicroBatch] = field(default_factory=dict)


class StageWorker:
    """Trains one pipeline stage of a job; see the module docstring for the call order."""

    def __init__(
        self,
        spec: JobSpec,
        stage: int,
        *,
        store: Any,
        state: bytes | None = None,
        snapshots: bool = True,
        snapshot_dir: str | os.PathLike | None = None,
    ) -> None:
        if not 0 <= stage < spec.num_stages:
            raise StageError(f"stage {stage} is not in 0..{spec.num_stages - 1}")
        self.spec = spec
        self.stage = stage
        self.store = store
        # A replay worker keeps no per-step snapshots: nobody audits a replay.
        self._keep_snapshots = snapshots
        # Where new snapshot buffers are mapped from (None: anonymous memory).
        self._spill = SpillDir(snapshot_dir) if snapshots and snapshot_dir else None
        self.determinism = apply_determinism(spec.determinism)
        self.device = torch.device(spec.determinism.device)
        self.is_first = stage == 0
        self.is_last = stage == spec.num_stages - 1
        cfg = spec.model
        self.micro_batches = spec.training.micro_batches
        # (rows, positions) of a micro-batch; the codec knows the feature width.
        self.boundary_shape = (spec.training.micro_batch_size, cfg.seq_len)
        self.codec = BoundaryCodec(spec.compression, cfg, spec.determinism.seed).to(self.device)
        self.module = build_stage(
            cfg, stage, spec.num_stages, spec.determinism.seed, reembed=self.codec.subspace
        ).to(self.device)
        self.names = [n for n, _ in self.module.named_parameters()]
        self.optimizer = build_optimizer(self.module.parameters(), spec.optimizer)
        for p in self.module.parameters():
            # Explicit zero state (what AdamW creates lazily) so step 0 hashes it too.
            self.optimizer.state[p] = {
                "step": torch.tensor(0.0, dtype=torch.float32),
                "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format),
            }
        self._state_view: dict[str, torch.Tensor] | None = None
        # Buffers of snapshots nobody can read any more, refilled by the next ones.
        self._snapshot_pool: list[FlatTensors] = []
        self._hash_cache: str | None = None
        # The hash of the state after the last optimizer step, computed in the
        # background while the next step's passes run (they only read the state).
        self._hash_pending: Future | None = None
        self._leaves: list[TraceLeaf] = []
        self._unsealed: list[tuple[int, str, list[_MicroState]]] = []
        if state is not None:
            self.load_state(state_from_bytes(state, stage=stage))
        self._data: DataSource | None = None
        self._round: int | None = None
        self._job_id: int | None = None
        self._last_round: dict[str, Any] | None = None

    # ----------------------------------------------------------------- state

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """The stage's full state as a flat name -> tensor mapping (see checkpoint.py).

        The tensors are the live ones (every update and load is in place), so the
        mapping is built once: it is read several times a step (hash, snapshot)."""
        if self._state_view is None:
            out: dict[str, torch.Tensor] = {}
            for name, p in zip(self.names, self.module.parameters(), strict=True):
                out[f"param/{name}"] = p.detach()
                st = self.optimizer.state[p]
                out[f"optim/{name}/exp_avg"] = st["exp_avg"]
                out[f"optim/{name}/exp_avg_sq"] = st["exp_avg_sq"]
                out[f"optim/{name}/step"] = st["step"]
            self._state_view = out
        return dict(self._state_view)

    def stage_state(self) -> StageState:
        """A detached copy of the state, on CPU."""
        tensors = {k: v.detach().to("cpu", copy=True) for k, v in self.state_tensors().items()}
        return StageState(tensors=tensors, stage=self.stage, num_stages=self.spec.num_stages)

    def state_bytes(self) -> bytes:
        """The state as safetensors bytes."""
        return state_to_bytes(self.stage_state())

    def state_hash(self) -> str:
        """The 0x hash of the full stage state (params_before/params_after of a leaf)."""
        # Hashing the whole state is a large share of a step on small models;
        # the hash after a step is the hash before the next one, so it is kept
        # until the next optimizer step, and computed off the critical path.
        if self._hash_pending is not None:
            self._hash_cache = self._hash_pending.result()
            self._hash_pending = None
        if self._hash_cache is None:
            self._hash_cache = state_hash(self.state_tensors())
        return self._hash_cache

    def _rehash_in_background(self) -> None:
        """Start hashing the live state (no copy) off the critical path: nothing may
        mutate it until `state_hash` (the next optimizer step waits for it)."""
        self._hash_cache = None
        self._hash_pending = _hasher().submit(state_hash, self.state_tensors())

    @property
    def leaves(self) -> list[TraceLeaf]:
        """The round's trace leaves so far (waits for the last step's state hash)."""
        self._seal_leaves()
        return self._leaves

    def _seal_leaves(self) -> None:
        if not self._unsealed:
            return
        after = self.state_hash()
        for step, before, micro in self._unsealed:
            for mb, ms in enumerate(micro):
                self._leaves.append(
                    TraceLeaf(
                        index=step * self.micro_batches + mb,
                        step=step,
                        micro_batch=mb,
                        params_before=before,
                        input=ms.input_hash,
                        output=ms.output_hash,
                        grad_in=ms.grad_in,
                        grad_out=ms.grad_out,
                        params_after=after,
                        data_ref=ms.data_ref,
                        input_attestation=ms.input_attestation,
                        grad_in_attestation=ms.grad_in_attestation,
                    )
                )
        self._unsealed = []

    def load_state(self, state: StageState) -> None:
        """Replace the state with `state`, which must hold exactly this stage's tensors."""
        if state.stage != self.stage or state.num_stages != self.spec.num_stages:
            raise CheckpointError(
                f"checkpoint is for stage {state.stage}/{state.num_stages}, "
                f"not {self.stage}/{self.spec.num_stages}"
            )
        self.state_hash()  # let a background hash finish before the tensors change
        self._next_snapshot = None  # a copy of the state being replaced
        mine = self.state_tensors()
        missing = sorted(set(mine) - set(state.tensors))
        unexpected = sorted(set(state.tensors) - set(mine))
        if missing or unexpected:
            raise CheckpointError(
                f"stage {self.stage} checkpoint lacks {missing[:3]} / has unknown {unexpected[:3]}"
            )
        for key, target in mine.items():
            src = state.tensors[key]
            if src.shape != target.shape or src.dtype != target.dtype:
                raise CheckpointError(
                    f"checkpoint tensor {key} is {src.dtype}{tuple(src.shape)}, "
                    f"expected {target.dtype}{tuple(target.shape)}"
                )
            with torch.no_grad():
                target.copy_(src)
        self._hash_cache = None

    def restart_at(self, state: StageState, *, known_hash: str | None = None) -> None:
        """Drop any open round and load `state`: a replay moving on to another step.

        Building the module and optimizer again cost more than a replayed step
        itself. `known_hash`: the state hash of `state`, when the caller has just
        computed it (so it is not hashed twice).
        """
        self._round = None
        self._unsealed, self._micro = [], {}
        self.load_state(state)
        self._hash_cache = known_hash

    # ----------------------------------------------------------------- rounds

    def begin_round(self, job_id: int, round: int, *, start_step: int = 0) -> None:
        """Start training round `round` of job `job_id` (a replay may start at a later step)."""
        if self._round is not None:
            raise PipelineError(f"stage {self.stage}: round {self._round} is still open")
        if not 0 <= start_step < self.spec.training.steps_per_round:
            raise PipelineError(f"start step {start_step} is outside the round")
        self._job_id, self._round = job_id, round
        self._snapshot_seconds = 0.0
        # One flat copy (a pooled buffer) when snapshots are kept; it is step 0's.
        self._round_start = self._fresh_snapshot() if self._keep_snapshots else self.stage_state()
        self._next_snapshot: StageState | None = self._round_start
        self._step, self._next_fwd, self._next_bwd = start_step, 0, 0
        self._leaves, self._unsealed = [], []
        self._logs: dict[int, _StepLog] = {}
        self._micro: dict[int, _MicroState] = {}
        self._bytes_sent = self._bytes_received = 0
        self._shards: list[str] = []
        self._step_losses: list[float] = []
        self._loss_sum = 0.0
        self._t0 = time.perf_counter()
        self._compute = 0.0

    def _expect(self, phase: str, step: int, micro_batch: int | None) -> None:
        if self._round is None:
            raise PipelineError(f"stage {self.stage}: {phase} called outside a round")
        m, fwd, bwd = self.micro_batches, self._next_fwd, self._next_bwd
        allowed = []  # the calls that keep the step's accumulation order
        if fwd < m:
            allowed.append(("forward", self._step, fwd))
        if bwd < fwd:
            allowed.append(("backward", self._step, bwd))
        if bwd == m:
            allowed.append(("step", self._step, None))
        if (phase, step, micro_batch) not in allowed:
            expected = " or ".join(
                f"{p}(step {s})" if mb is None else f"{p}(step {s}, micro_batch {mb})"
                for p, s, mb in allowed
            )
            raise PipelineError(
                f"stage {self.stage}: got {phase}(step {step}, micro_batch {micro_batch}), "
                f"expected {expected}"
            )

    def _data_source(self) -> DataSource:
        if self._data is None:
            self._data = DataSource(self.spec, self.store)
        return self._data

    def _batch(self, step: int, micro_batch: int, given: MicroBatch | None) -> MicroBatch:
        if given is None:
            given = self._data_source().micro_batch(self._job_id, self._round, step, micro_batch)
            given = self._consume(step, micro_batch, given)
        for cid, _, _ in given.windows:
            if cid not in self._shards:
                self._shards.append(cid)
        return given

    # Hooks a faulty subclass overrides (agents.faults); the honest ones are identities.
    def _consume(self, step: int, micro_batch: int, batch: MicroBatch) -> MicroBatch:
        """The micro-batch really trained on, given the seeded one."""
        return batch

    def _gradient_to_send(self, micro_batch: int, grad: torch.Tensor) -> torch.Tensor:
        """The input gradient really sent upstream, given the computed one."""
        return grad

    def _apply_update(self) -> None:
        """The optimizer update of a step, from the accumulated gradients."""
        self.optimizer.step()

    def _seed_dropout(self, step: int, micro_batch: int) -> None:
        if self.spec.model.dropout > 0:
            key = f"tessera/dropout/{self.spec.determinism.seed}/{self._job_id}/{self._round}"
            key += f"/{step}/{micro_batch}/{self.stage}"
            torch.manual_seed(int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little"))

    def forward(
        self,
        step: int,
        micro_batch: int,
        payload: Payload | None = None,
        *,
        batch: MicroBatch | None = None,
        attestation: bytes | None = None,
    ) -> Payload | float:
        """Run the stage forward on one micro-batch.

        Stage 0 takes its tokens from `batch` or, when None, reads the seeded
        window itself; other stages take the previous stage's payload and, when
        it came over a transport, the sender's signature over it (`attestation`,
        recorded in the leaf as its keccak). Returns the payload to send on, or
        the micro-batch's loss on the last stage.
        """
        self._expect("forward", step, micro_batch)
        t0 = time.perf_counter()
        if micro_batch == 0:
            self.module.train()
            self.optimizer.zero_grad(set_to_none=True)
            # The snapshot a bundle for this step needs, kept now instead of rebuilt
            # later (the background hash of the state only reads it meanwhile).
            t_snap = time.perf_counter()
            self._logs[step] = _StepLog(snapshot=self._step_snapshot())
            t0 += time.perf_counter() - t_snap  # an audit cost, not training compute
        log = self._logs[step]
        mb_data = None
        if self.is_first or self.is_last:
            mb_data = self._batch(step, micro_batch, batch)
            log.batches[micro_batch] = mb_data
        if self.is_first:
            x_in = mb_data.tokens.to(self.device)
            input_hash = tensor_hash(mb_data.tokens)
            log.inputs[micro_batch] = {"tokens": mb_data.tokens}
            tokens = mb_data.tokens
            x_leaf = None
        else:
            if payload is None:
                raise PipelineError(f"stage {self.stage} needs an input payload")
            input_hash = tensors_hash(payload)
            self._bytes_received += payload_nbytes(payload)
            log.inputs[micro_batch] = payload
            features, tokens = self.codec.decode_forward(payload, self.boundary_shape)
            # The received features are the leaf whose gradient goes back.
            x_leaf = features.to(self.device).requires_grad_(True)
            x_in = self._received(x_leaf, tokens)
        self._seed_dropout(step, micro_batch)
        out = self.module(x_in)
        data_ref = mb_data.data_ref if mb_data is not None else ZERO_HASH
        if self.is_last:
            loss = lm_loss(out, mb_data.targets.to(self.device))
            value = loss.detach().to("cpu", torch.float32)
            self._micro[micro_batch] = _MicroState(
                input_hash, tensor_hash(value), data_ref, x_in=x_leaf, loss=loss
            )
            self._loss_sum += float(value)
            log.sent[micro_batch] = {"loss": value}
            result: Payload | float = float(value)
        else:
            features = self.codec.features_of(out, tokens)
            sent = self.codec.encode_forward(features, tokens)
            self._bytes_sent += payload_nbytes(sent)
            log.sent[micro_batch] = sent
            self._micro[micro_batch] = _MicroState(
                input_hash, tensors_hash(sent), data_ref, x_in=x_leaf, out=features
            )
            result = sent
        self._micro[micro_batch].input_attestation = attestation_hash(attestation)
        if attestation is not None:
            log.input_signatures[micro_batch] = bytes(attestation)
        self._next_fwd += 1
        self._compute += time.perf_counter() - t0
        return result

    def backward(
        self,
        step: int,
        micro_batch: int,
        grad_payload: Payload | None = None,
        *,
        attestation: bytes | None = None,
    ) -> Payload | None:
        """Backpropagate one micro-batch; returns the gradient payload for the stage before.

        The last stage seeds the backward pass with d(loss)/d(loss) = 1/M (so
        the accumulated gradient is that of the mean loss over the step);
        stage 0 returns None.
        """
        self._expect("backward", step, micro_batch)
        t0 = time.perf_counter()
        ms = self._micro[micro_batch]
        log = self._logs[step]
        if self.is_last:
            seed = torch.tensor(1.0 / self.micro_batches, dtype=torch.float32)
            ms.grad_in = tensor_hash(seed)
            ms.loss.backward(seed.to(self.device))
        else:
            if grad_payload is None:
                raise PipelineError(f"stage {self.stage} needs a gradient payload")
            ms.grad_in = tensors_hash(grad_payload)
            ms.grad_in_attestation = attestation_hash(attestation)
            if attestation is not None:
                log.grad_signatures[micro_batch] = bytes(attestation)
            self._bytes_received += payload_nbytes(grad_payload)
            log.grads[micro_batch] = grad_payload
            grad = self.codec.decode_backward(grad_payload, self.boundary_shape)
            ms.out.backward(grad.to(self.device))
        result = None
        if self.is_first:
            ms.grad_out = ZERO_HASH
        else:
            gx = self._gradient_to_send(micro_batch, ms.x_in.grad.detach().to("cpu"))
            sent = self.codec.encode_backward(gx, self._rounding_key(step, micro_batch))
            self._bytes_sent += payload_nbytes(sent)
            ms.grad_out = tensors_hash(sent)
            log.sent_grads[micro_batch] = sent
            result = sent
        # Free the graph's tensors now; only hashes are needed from here on.
        ms.x_in = ms.out = ms.loss = None
        self._next_bwd += 1
        self._compute += time.perf_counter() - t0
        return result

    def _received(
        self, features: torch.Tensor, tokens: torch.Tensor | None, start: int = 0
    ) -> torch.Tensor:
        """The hidden state a stage runs on, from received features: training, inference
        and cached decoding all go through here, so they cross the same boundary."""
        return self.codec.hidden_of(features, tokens, start, self.module.reembed)

    def _step_snapshot(self) -> StageState | None:
        """The state this step starts from, for its audit bundle: one flat copy (two
        C++ calls; copying tensor by tensor, or from the hashing thread, cost several
        times more CPU). Counted in `snapshot_seconds`, not in training compute."""
        if not self._keep_snapshots:
            return None
        if self._next_snapshot is not None:  # the round-start copy
            snap, self._next_snapshot = self._next_snapshot, None
            return snap
        return self._fresh_snapshot()

    def _fresh_snapshot(self) -> StageState:
        """A flat copy of the live state, into a pooled buffer when one is free."""
        t0 = time.thread_time()
        reuse = self._snapshot_pool.pop() if self._snapshot_pool else None
        snap = StageState(
            tensors=flat_copy(self.state_tensors(), reuse=reuse, spill=self._spill),
            stage=self.stage,
            num_stages=self.spec.num_stages,
        )
        self._snapshot_seconds += time.thread_time() - t0
        return snap

    def _recycle_snapshots(self, logs: dict[int, _StepLog]) -> None:
        """Pool the buffers of these (dropped) logs' snapshots that nothing else holds.

        A snapshot that was ever read (a bundle, a hash) or is referenced from
        anywhere but its log is left alone; a recycled one is unlinked from its
        log, so a holder of the log finds no snapshot rather than another step's.
        """
        for log in logs.values():
            snap = log.snapshot
            if snap is None or not isinstance(snap.tensors, FlatTensors):
                continue
            flat = snap.tensors
            # References: the log, `snap`, getrefcount's argument; snap.tensors, `flat`, argument.
            if sys.getrefcount(snap) == 3 and sys.getrefcount(flat) == 3 and not flat.was_read:
                log.snapshot = None
                self._snapshot_pool.append(flat)

    def _rounding_key(self, step: int, micro_batch: int) -> str:
        # Public coordinates only, so a replay draws the same stochastic rounding.
        return (
            f"tessera/grad-rounding@1/{self.spec.determinism.seed}/{self._job_id}/"
            f"{self._round}/{step}/{micro_batch}/{self.stage}"
        )

    def step(self, step: int) -> None:
        """Apply the optimizer update of `step` and record its micro-batches' leaves.

        The leaves are sealed with params_after once the background hash of
        the new state is done (at the next step, `leaves` or `end_round`).
        """
        self._expect("step", step, None)
        t0 = time.perf_counter()
        log = self._logs[step]
        # The state before this update: the previous step's hash, done by now
        # (it ran during this step's passes); it also seals that step's leaves.
        log.params_before = self.state_hash()
        self._seal_leaves()
        global_step = self._round * self.spec.training.steps_per_round + step
        set_step_rate(self.optimizer, self.spec.optimizer, global_step)
        self._apply_update()
        self.optimizer.zero_grad(set_to_none=True)
        micro = [self._micro.pop(mb) for mb in range(self.micro_batches)]
        self._unsealed.append((step, log.params_before, micro))
        self._rehash_in_background()
        if self.is_last:
            self._step_losses.append(self._loss_sum / self.micro_batches)
            self._loss_sum = 0.0
        self._step += 1
        self._next_fwd = self._next_bwd = 0
        self._compute += time.perf_counter() - t0

    def end_round(self, *, with_state: bool = True) -> StageRoundResult:
        """Close the round: the new state, the leaves, their Merkle root and metrics.

        `with_state=False` leaves `state_bytes` empty: serialising the
        checkpoint is only worth it when it is published (`state_bytes()`
        gives it later; the state hash is always there).
        """
        if self._round is None:
            raise PipelineError(f"stage {self.stage}: no round is open")
        if self._next_fwd != 0:
            raise PipelineError(f"stage {self.stage}: step {self._step} is unfinished")
        seconds = time.perf_counter() - self._t0
        leaves = list(self.leaves)  # waits for the last step's background hash
        state = self._step_snapshot() if self._keep_snapshots else None
        state = state if state is not None else self.stage_state()  # a copy either way
        metrics = {
            "steps": float(len(self._logs)),
            "seconds": seconds,
            "compute_seconds": self._compute,
            # Off the critical path, in the hashing thread: an audit cost, not training.
            "snapshot_seconds": self._snapshot_seconds,
        }
        if self._step_losses:
            metrics["loss"] = sum(self._step_losses) / len(self._step_losses)
            metrics["loss_last"] = self._step_losses[-1]
        state_bytes = b""
        if with_state:
            state_bytes = state_to_bytes(state, content_hash=self.state_hash())
        result = StageRoundResult(
            job_id=self._job_id,
            round=self._round,
            stage=self.stage,
            state_bytes=state_bytes,
            state_hash=self.state_hash(),
            leaves=leaves,
            trace_root=trace_tree(leaves).root_hex if leaves else ZERO_HASH,
            metrics=metrics,
            bytes_sent=self._bytes_sent,
            bytes_received=self._bytes_received,
            data_shards=list(self._shards),
            determinism=self.determinism,
            step_losses=tuple(self._step_losses),
        )
        if self._last_round is not None:
            self._recycle_snapshots(self._last_round["logs"])
        self._last_round = {
            "job_id": self._job_id,
            "round": self._round,
            "start": self._round_start,
            "end": state,
            "logs": self._logs,
            "leaves": leaves,
        }
        self._round = None
        return result

    # ----------------------------------------------------------------- audits

    def make_audit_bundle(self, leaf_indices: list[int]) -> str:
        """Publish what a validator needs to replay these leaves of the last round; its CID."""
        from agents.training.audit import build_audit_bundle

        if self._last_round is None:
            raise PipelineError(f"stage {self.stage}: no finished round to audit")
        return build_audit_bundle(self, self._last_round, leaf_indices)

    def received_signatures(
        self, job_id: int, round_: int
    ) -> dict[int, tuple[bytes | None, bytes | None]]:
        """The senders' payload signatures this stage kept in (job, round), its last finished
        round, by leaf index: (over the input, over the incoming gradient), None where no
        sender signed (Ray mode, stage 0's input, the last stage's gradient). Empty for any
        other round."""
        last = self._last_round
        if last is None or (last["job_id"], last["round"]) != (job_id, round_):
            return {}
        m = self.micro_batches
        return {
            step * m + mb: (log.input_signatures.get(mb), log.grad_signatures.get(mb))
            for step, log in last["logs"].items()
            for mb in range(m)
        }

    # -------------------------------------------------------------- inference

    @torch.no_grad()
    def infer(self, x: torch.Tensor | Payload, *, all_positions: bool = False) -> Any:
        """Forward only, no trace, through exactly the codec the model was trained with.

        Stage 0 takes token ids (B, T); other stages the payload the stage
        before returned. Returns the payload to hand on, or on the last stage
        the logits of the last position (all positions with `all_positions`).
        """
        self.module.eval()
        try:
            if self.is_first:
                tokens = x.to(torch.int64)
                h = tokens.to(self.device)
            else:
                if not isinstance(x, dict):
                    raise PipelineError(f"stage {self.stage} infers from a payload, not a tensor")
                shape = self.codec.payload_shape(x, self.spec.model.seq_len)
                features, tokens = self.codec.decode_forward(x, shape)
                h = self._received(features.to(self.device), tokens)
            out = self.module(h)
        finally:
            self.module.train()
        if self.is_last:
            out = out if all_positions else out[:, -1, :]
            return out.to("cpu", torch.float32)
        return self.codec.encode_forward(self.codec.features_of(out, tokens), tokens)

    @torch.no_grad()
    def infer_cached(self, x: torch.Tensor | Payload, cache: Any) -> Any:
        """`infer` for incremental decoding with a `kvcache.KVCache` (new positions only).

        The same codec at the boundaries as `infer` and training, so cached
        decoding of a subspace-trained model crosses the same bottleneck.
        """
        from agents.training.kvcache import forward_cached

        start = cache.length
        self.module.eval()
        try:
            if self.is_first:
                tokens = x.to(torch.int64)
                h = tokens.to(self.device)
            else:
                if not isinstance(x, dict):
                    raise PipelineError(f"stage {self.stage} infers from a payload, not a tensor")
                shape = self.codec.payload_shape(x, self.spec.model.seq_len)
                features, tokens = self.codec.decode_forward(x, shape)
                h = self._received(features.to(self.device), tokens, start)
            out = forward_cached(self.module, h, cache)
        finally:
            self.module.train()
        if self.is_last:
            return out.to("cpu", torch.float32)
        return self.codec.encode_forward(self.codec.features_of(out, tokens, start), tokens)
