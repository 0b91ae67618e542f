"""The compute provider: stakes, joins one stage, trains it, commits, answers audits.

`tick()` reads the chain, compares it with what the stage host holds, and
takes the next step; it keeps no state the chain and the store cannot
rebuild, so a provider that crashes and restarts picks up where it was:

1. prepare the host with the stage's last finalized checkpoint for the
   current round;
2. stage 0's provider drives the pipeline once every stage's host is
   prepared, and again if any host has lost its result before finalization;
3. publish the checkpoint and RoundRecord, then `commitRound` (once);
4. after the seal, publish one audit bundle covering every validator's sampled leaves
   (from the per-step snapshots the stage worker kept: nothing is recomputed);
5. answer every challenge against this stage with a bundle for that leaf.

The agent does not know how to cheat: `agents.faults.FaultyProviderAgent`
overrides the hooks marked below for the audits' tests and the demo.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from agents.chain.client import EventCursor
from agents.chain.errors import RevertError
from agents.chain.protocol import DisputeStatus, JobStatus, Protocol
from agents.errors import TesseraError
from agents.lineage import load_document, save_document
from agents.lineage.documents import JobSpec, RoundRecord
from agents.protocol.rounds import Phase
from agents.roles.keeper import Keeper
from agents.roles.stage_host import StageHost, host_actor_name
from agents.roles.stage_loop import RoundOver, TransportOptions
from agents.training.traces import leaf_hash, sample_leaves, trace_tree, union_sample

log = logging.getLogger(__name__)
NAMESPACE = "tessera"


@dataclass
class ProviderStats:
    """What a provider has done, for progress displays and the summary."""

    commits: list[tuple[int, str]] = field(default_factory=list)  # (round, record CID)
    bundles: list[tuple[int, str]] = field(default_factory=list)
    responses: list[int] = field(default_factory=list)
    losses: dict[int, float] = field(default_factory=dict)
    rounds_driven: int = 0
    notes: list[str] = field(default_factory=list)


class ProviderAgent:
    """Serves one stage of one job."""

    def __init__(
        self,
        protocol: Protocol,
        store,
        *,
        store_spec: str,
        job_id: int,
        stage: int | None = None,
        from_block: int = 0,
        resources: dict[str, float] | None = None,
        transport: TransportOptions | None = None,
        snapshot_dir: str | None = None,
    ):
        self.p = protocol
        # Where the stage worker maps its per-step snapshots from (None: RAM); a
        # path on the host that runs the stage (this one in transport mode).
        self.snapshot_dir = snapshot_dir
        # Set: this provider runs its stage in-process and talks to its neighbours over the
        # transport (one operator per process, no shared Ray); None: Ray actors, one cluster.
        self.transport = transport
        self._link = None
        self._pending = None  # first message of a round this stage has not started yet
        self.stopping = threading.Event()  # set by the process that runs this agent
        self.store = store
        self.store_spec = store_spec
        self.job_id = job_id
        self.stage = stage
        self.resources = resources or {}
        self.keeper = Keeper(protocol, job_id, from_block)
        self.stats = ProviderStats()
        self._spec: JobSpec | None = None
        self._host = None
        self._challenges = EventCursor(
            protocol.client, [("AuditCourt", "ChallengeOpened")], from_block
        )
        self._bundle_events = EventCursor(
            protocol.client, [("JobMarket", "AuditBundlePosted")], from_block
        )
        self._posted: set[int] = set()
        self._pending_challenges: set[int] = set()
        self.vacated = False
        self._senders_checked: set[int] = set()  # rounds whose senders' signatures were checked

    @property
    def me(self) -> str:
        return self.p.client.address

    @property
    def spec(self) -> JobSpec:
        if self._spec is None:
            self._spec = load_document(self.store, self.p.job_terms(self.job_id).spec_cid, JobSpec)
        return self._spec

    # -- joining ---------------------------------------------------------------------
    def join(self) -> int:
        """Stake if needed and take a stage (the given one, or the next free); idempotent.

        Without a given stage, a provider that loses a race for a stage (another
        joined it first: `StageTaken`) takes the next free one instead.
        """
        terms = self.p.job_terms(self.job_id)
        if self.stage is not None and not 0 <= self.stage < terms.num_stages:
            raise TesseraError(
                f"job {self.job_id} has {terms.num_stages} stages (0-{terms.num_stages - 1}): "
                f"stage {self.stage} does not exist"
            )
        # Refuse a job outside the protocol's bounds before staking (one line naming the field).
        self.p.check_terms(terms)
        wanted = self.stage
        for _ in range(terms.num_stages + 1):
            providers = self.p.providers(self.job_id, terms.num_stages)
            for s, who in enumerate(providers):
                if who.lower() == self.me.lower():
                    self.stage = s
                    return s
            vacant = [s for s, who in enumerate(providers) if int(who, 16) == 0]
            if wanted is None:
                if not vacant:
                    raise TesseraError(f"job {self.job_id} has no vacant stage")
                stage = vacant[0]
            elif wanted not in vacant:
                raise TesseraError(
                    f"stage {wanted} of job {self.job_id} is taken by {providers[wanted]}"
                )
            else:
                stage = wanted
            self.p.ensure_stake(terms.min_stake)
            try:
                self.p.join_stage(self.job_id, stage)
            except RevertError:
                # Lost a race? The revert of a mined transaction may come without its
                # reason (the client replays it before the block), so ask the chain.
                holder = self.p.stage_provider(self.job_id, stage)
                if wanted is not None or int(holder, 16) == 0 or holder.lower() == self.me.lower():
                    raise
                self.stats.notes.append(f"stage {stage} was taken first by {holder}; next")
                continue
            self.stage = stage
            return stage
        raise TesseraError(f"job {self.job_id}: every stage was taken while joining")

    # -- the stage host ------------------------------------------------------------------
    def host(self):
        """This provider's stage actor (created on first use, found by name after).

        In transport mode the host is a plain object in this process.
        """
        if self._host is None and self.transport is not None:
            self._host = StageHost(
                self._host_spec().model_dump(mode="json"),
                self.stage,
                store=self.store,
                worker_factory=self._host_worker_factory(),
            )
        if self._host is None:
            import ray

            name = host_actor_name(self.job_id, self.stage, self.me)
            opts = {"name": name, "namespace": NAMESPACE, "get_if_exists": True, "num_cpus": 0}
            if self.resources:
                opts["resources"] = self.resources
            actor_cls = ray.remote(StageHost)
            self._host = actor_cls.options(**opts).remote(
                self._host_spec().model_dump(mode="json"),
                self.stage,
                store=self.store_spec,
                worker_factory=self._host_worker_factory(),
            )
        return self._host

    def ensure_serving_host(self) -> str | None:
        """Keep the stage host of a completed job alive for inference.

        If the host is gone (its process died or was killed), re-create it from
        the stage's last finalized checkpoint. Returns a line saying what was
        done, or None when the host is fine.
        """
        import ray

        if self.stage is None:
            return None
        try:
            if self._host is not None:
                ray.get(self._host.status.remote(), timeout=30)
                return None
        except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
            pass
        self._host = None
        last = self.p.last_finalized_round(self.job_id, self.stage)
        if last < 0:
            return f"stage host lost and stage {self.stage} has no finalized checkpoint to serve"
        try:
            record_cid = self.p.commitment(self.job_id, last, self.stage).record_cid
            ckpt = load_document(self.store, record_cid, RoundRecord).new_checkpoint
            ray.get(self.host().prepare.remote(self.job_id, last + 1, ckpt))
        except Exception as exc:  # say why serving stopped; the loop retries
            self._host = None
            return f"stage host lost and cannot be re-created: {type(exc).__name__}: {exc}"
        return (
            f"stage host was lost: re-created it from the round {last} checkpoint {ckpt}; "
            "serving again"
        )

    def _host_call(self, method: str, *args):
        """Call the stage host, in this process or through Ray."""
        fn = getattr(self.host(), method)
        if self.transport is not None:
            return fn(*args)
        import ray

        return ray.get(fn.remote(*args))

    def _round_start_checkpoint(self, round_: int) -> tuple[str | None, str | None]:
        """(checkpoint CID, record CID) this stage starts `round_` from."""
        last = self.p.last_finalized_round(self.job_id, self.stage)
        if last < 0:
            return self.spec.init_checkpoint, None
        if last >= round_:
            raise TesseraError(f"round {round_} of stage {self.stage} is already final")
        record_cid = self.p.commitment(self.job_id, last, self.stage).record_cid
        return load_document(self.store, record_cid, RoundRecord).new_checkpoint, record_cid

    # -- the loop ------------------------------------------------------------------------
    def tick(self) -> None:
        """One pass over the chain state; see the module docstring."""
        try:  # keeper duties first: they must run even when this stage has nothing to do
            self.keeper.tick()
        except TesseraError as exc:
            self.stats.notes.append(f"keeper: {exc}")
        self._scan_events()
        # Rewards and shares are credited at finalization and pulled by their owner.
        try:
            self.p.claim_all(self.job_id)
        except RevertError as exc:
            log.debug("provider: claim: %s", exc)
        state = self.p.job_state(self.job_id)
        self._prove_double_signs()  # even after losing the stage to the stall it caused
        if self.stage is None or self.vacated:
            return
        if self.p.stage_provider(self.job_id, self.stage).lower() != self.me.lower():
            self.vacated = True
            self.stats.notes.append(f"lost stage {self.stage} (slashed or vacated)")
            return
        self._answer_challenges()
        if self.transport is not None and state.status == JobStatus.COMPLETED:
            self._serve(None, seconds=10.0)  # a finished model keeps serving paid inference
            return
        if state.status != JobStatus.RUNNING:
            return
        r = state.current_round
        phase = self.keeper.phase(r)
        if phase in (Phase.NOT_STARTED, Phase.FINALIZED):
            return
        status = self._host_call("status")
        if status["prepared"] != (self.job_id, r):
            ckpt, _ = self._round_start_checkpoint(r)
            self._host_call("prepare", self.job_id, r, ckpt)
            if self.transport is None:
                return
        if self.transport is not None:
            self._train_over_transport(r, phase)
        elif self.stage == 0:
            self._drive(r)
        mine = self.p.commitment(self.job_id, r, self.stage)
        if not mine.exists and phase is Phase.TRAINING:
            self._commit(r)
        elif mine.exists and not mine.slashed and phase in (Phase.CHALLENGE, Phase.AWAITING_SEED):
            self._publish_bundle(r)
            if phase is Phase.CHALLENGE:
                self._prove_senders(r)

    # -- transport mode: this stage's own loop -------------------------------------------
    def link(self):
        """This provider's transport session (made, and published on-chain, on first use)."""
        if self._link is None:
            from agents.roles.stage_loop import ChainPeerView, StageLink
            from agents.transport.keys import load_or_create_key

            o = self.transport
            self._link = StageLink(
                ChainPeerView(self.p, self.job_id),
                self.job_id,
                self.stage,
                self.p.job_terms(self.job_id).num_stages,
                key=load_or_create_key(Path(o.key_path)),
                bind=o.bind,
                advertise=o.advertise,
                timeout=o.timeout,
                sign_log=Path(o.key_path).with_name(
                    f"signed-payloads-{self.job_id}-{self.stage}.log"
                ),
            )
            self._link.engine_spec = self.spec
            self._link.engine_loader = self._finalized_state
            self._link.publish()
        return self._link

    def _finalized_state(self) -> tuple[int | None, bytes | None]:
        """(round, checkpoint bytes) of this stage's last finalized round, for inference."""
        last = self.p.last_finalized_round(self.job_id, self.stage)
        if last < 0:
            return None, None
        record_cid = self.p.commitment(self.job_id, last, self.stage).record_cid
        rec = load_document(self.store, record_cid, RoundRecord)
        return last, self.store.cat(rec.new_checkpoint)

    def _train_over_transport(self, round_: int, phase: Phase) -> None:
        """Train `round_` with the neighbours (or answer them and clients until next tick)."""
        from agents.roles.stage_loop import new_attempt

        link = self.link()
        if not link.refresh():
            self._serve(round_)  # a neighbour has not published its endpoint yet
            return
        trained = self._host_call("take_result", self.job_id, round_) is not None
        if phase is Phase.TRAINING and not trained:
            first, self._pending = self._pending, None
            if first is not None and first.header.round != round_:
                first = None
            self._attempts(round_, first.header.attempt if first else new_attempt(), first)
        else:
            self._serve(round_)

    def _attempts(self, round_: int, attempt: int, first) -> None:
        from agents.roles.stage_loop import Restart
        from agents.transport.endpoint import PeerTimeout
        from agents.transport.signed import PayloadConflict

        link = self.link()
        for _ in range(8):  # bounded, so one tick never hangs on a flapping peer
            try:
                t0 = time.monotonic()
                link.train_round(self.host(), self.p.client.account.key, round_, attempt, first)
                self.stats.rounds_driven += 1
                log.info(
                    "job %s round %s stage %s trained in %.1fs",
                    self.job_id,
                    round_,
                    self.stage,
                    time.monotonic() - t0,
                )
                return
            except Restart as exc:
                attempt, first = exc.attempt, exc.message
                link.stats["restarts"] += 1
            except RoundOver as exc:
                self._pending = exc.message
                return
            except PeerTimeout as exc:  # retry next tick under a newer attempt
                self.stats.notes.append(f"round {round_} attempt failed: {exc}")
                return
            except PayloadConflict as exc:  # never sign two payloads for one slot
                self.stats.notes.append(f"round {round_} attempt stopped: {exc}")
                log.warning("transport: %s", exc)
                return

    def _serve(self, round_: int | None, seconds: float | None = None) -> None:
        """Answer resets and paid inference for `serve_seconds`; rerun a round a peer retries."""
        from agents.roles.stage_loop import Restart

        link = self.link()
        if link.engine is not None:
            last = self.p.last_finalized_round(self.job_id, self.stage)
            if link.engine[0] != last:
                link.engine = None  # a newer round finalized: serve that checkpoint
        deadline = time.monotonic() + (seconds or self.transport.serve_seconds)
        while (left := deadline - time.monotonic()) > 0 and not self.stopping.is_set():
            try:
                link.pump(min(left, 0.5), training=False)
            except Restart as exc:
                if round_ is not None and link.refresh():
                    link.stats["restarts"] += 1
                    self._attempts(round_, exc.attempt, exc.message)
                return
            except RoundOver as exc:
                self._pending = exc.message
                return

    def close(self) -> None:
        """Close the transport (transport mode)."""
        if self._link is not None:
            self._link.close()
            self._link = None

    # -- hooks a faulty subclass overrides (agents.faults) ---------------------------------
    def _host_spec(self) -> JobSpec:
        """The spec the stage host trains under: the job's own."""
        return self.spec

    def _worker_factory(self):
        """The stage worker class (None: the honest StageWorker)."""
        return None

    def _host_worker_factory(self):
        """`_worker_factory` with this provider's snapshot directory bound (None: as is)."""
        factory = self._worker_factory()
        if self.snapshot_dir is None:
            return factory
        from functools import partial

        from agents.training.worker import StageWorker

        return partial(factory or StageWorker, snapshot_dir=self.snapshot_dir)

    def _record_spec_cid(self) -> str:
        """The spec CID the RoundRecord names: the job's, from the chain."""
        return self.p.job_terms(self.job_id).spec_cid

    def _published(self, round_: int, record: RoundRecord, result) -> tuple[RoundRecord, str]:
        """The (record, trace root) to store and commit for a trained round."""
        return record, result.trace_root

    def _withholds(self, round_: int) -> bool:
        """Whether to keep this round's bundles and answers back: never."""
        return False

    def _hosts(self) -> list | None:
        import ray

        terms = self.p.job_terms(self.job_id)
        handles = []
        for s, who in enumerate(self.p.providers(self.job_id, terms.num_stages)):
            if int(who, 16) == 0:
                return None
            try:
                handles.append(ray.get_actor(host_actor_name(self.job_id, s, who), NAMESPACE))
            except ValueError:
                return None  # that provider's host is not up yet
        return handles

    def _drive(self, round_: int) -> None:
        """Stage 0 drives the round when every host is prepared and one lacks its result."""
        import ray

        from agents.training.pipeline import RayPipeline

        hosts = self._hosts()
        if hosts is None:
            return
        statuses = ray.get([h.status.remote() for h in hosts])
        want = (self.job_id, round_)
        if any(s["prepared"] != want for s in statuses):
            return
        if all(s["result"] == want for s in statuses):
            return
        t0 = time.monotonic()
        try:
            RayPipeline(hosts).train_round(self.job_id, round_)
        except Exception as exc:  # a host died mid-round: retry next tick from checkpoints
            lines = [ln for ln in str(exc).splitlines() if ln.strip()]
            self.stats.notes.append(f"round {round_} attempt failed: {lines[-1] if lines else exc}")
            return
        self.stats.rounds_driven += 1
        log.info("job %s round %s trained in %.1fs", self.job_id, round_, time.monotonic() - t0)

    def _commit(self, round_: int) -> None:
        result = self._host_call("take_result", self.job_id, round_)
        if result is None:
            return
        checkpoint_cid = self.store.add_bytes(result.state_bytes)
        parent_ckpt, parent_record = self._round_start_checkpoint(round_)
        record = result.to_record(
            provider=self.me,
            spec=self._record_spec_cid(),
            new_checkpoint=checkpoint_cid,
            parent_checkpoint=parent_ckpt,
            parent_record=parent_record,
        )
        record, root = self._published(round_, record, result)
        record_cid = save_document(self.store, record)
        try:
            # The committed final state hash is the state the published checkpoint holds, which
            # an honest trace also ends in (the last leaf's params_after).
            self.p.commit_round(
                self.job_id, round_, self.stage, root, result.state_hash, record_cid
            )
        except RevertError as exc:
            if self.p.commitment(self.job_id, round_, self.stage).exists:
                return  # committed before a restart: nothing lost, nothing doubled
            raise exc
        self.stats.commits.append((round_, record_cid))
        if "loss" in result.metrics:
            self.stats.losses[round_] = result.metrics["loss"]

    def _prove_senders(self, round_: int) -> None:
        """Transport mode, once per sealed round: if a neighbour signed a payload to this
        stage that its own leaf does not record (a substitution in transit), prove it
        (AuditCourt.provePayloadEquivocation). This stage holds every signature, so it
        checks every leaf, not only those the validators sample."""
        from agents.protocol.attestation import BACKWARD, FORWARD, PayloadContext
        from agents.protocol.audit import sender_equivocations
        from agents.roles.proofs import prove_equivocation

        if self.transport is None or round_ in self._senders_checked:
            return
        sigs = self._host_call("received_signatures", self.job_id, round_)
        if not sigs:
            self._senders_checked.add(round_)
            return
        mine = self.p.commitment(self.job_id, round_, self.stage)
        own = load_document(self.store, mine.record_cid, RoundRecord)
        market = self.p.client.contract("JobMarket").address
        num_stages = self.p.job_terms(self.job_id).num_stages
        for sender, direction in ((self.stage - 1, FORWARD), (self.stage + 1, BACKWARD)):
            if not 0 <= sender < num_stages:
                continue
            c = self.p.commitment(self.job_id, round_, sender)
            if not c.exists or c.slashed or not c.record_cid:
                continue
            theirs = load_document(self.store, c.record_cid, RoundRecord)

            def ctx_of(leaf, sender=sender, direction=direction):
                return PayloadContext(
                    self.p.client.chain_id,
                    market,
                    self.job_id,
                    round_,
                    sender,
                    leaf.step,
                    leaf.micro_batch,
                    direction,
                )

            by_leaf = {i: pair[direction] for i, pair in sigs.items()}
            found = sender_equivocations(theirs, own, by_leaf, ctx_of, c.provider)
            if not found:
                continue
            try:
                prove_equivocation(self.p, self.job_id, round_, theirs, found[0])
            except RevertError as exc:
                self.stats.notes.append(f"equivocation proof of stage {sender} refused: {exc}")
                continue
            self.stats.notes.append(
                f"round {round_}: proved stage {sender} signed a payload its leaf "
                f"{found[0].leaf} does not record"
            )
        # Only now: a record the store could not serve yet is read again on the next tick.
        self._senders_checked.add(round_)

    def _prove_double_signs(self) -> None:
        """A neighbour that sent this stage two different signed payloads for one slot of a
        round (refused: see agents.transport.signed) committed at most one of them: once the
        round's challenge window opens, prove the other (provePayloadEquivocation)."""
        from agents.protocol.audit import double_sign_finding
        from agents.roles.proofs import prove_equivocation

        link = self._link
        if link is None or not link.conflicts:
            return
        for conflict in list(link.conflicts):
            round_, sender, step, mb, direction, pair = conflict
            phase = self.keeper.phase(round_)
            if phase is not Phase.CHALLENGE:
                if phase in (Phase.DISPUTED, Phase.FINALIZABLE, Phase.FINALIZED):
                    link.conflicts.remove(conflict)  # too late
                continue
            link.conflicts.remove(conflict)
            c = self.p.commitment(self.job_id, round_, sender)
            if not c.exists or c.slashed or not c.record_cid:
                continue
            theirs = load_document(self.store, c.record_cid, RoundRecord)
            index = step * self.spec.training.micro_batches + mb
            signed = [("0x" + ph.hex(), sig) for ph, sig in pair]
            f = double_sign_finding(theirs.leaves[index], direction, signed, sender)
            if f is None:
                continue
            try:
                prove_equivocation(self.p, self.job_id, round_, theirs, f)
            except RevertError as exc:
                self.stats.notes.append(f"double-sign proof of stage {sender} refused: {exc}")
                continue
            self.stats.notes.append(f"round {round_}: proved stage {sender} signed two payloads")

    def _publish_bundle(self, round_: int) -> None:
        if round_ in self._posted or self._withholds(round_):
            return
        seed = self.p.audit_seed(self.job_id, round_)
        if seed is None:
            return
        if self._host_call("take_result", self.job_id, round_) is None:
            return  # lost in a restart: the driver retrains the round first
        terms = self.p.job_terms(self.job_id)
        n = self.spec.training.steps_per_round * self.spec.training.micro_batches
        # One bundle for every registered validator's own sample (each draws from its address).
        leaves = union_sample(seed, self.stage, self.p.validators(), terms.audit_leaves, n)
        leaves = leaves or sample_leaves(seed, self.stage, terms.audit_leaves, n)
        bundle = self._host_call("make_audit_bundle", leaves)
        self.p.post_audit_bundle(self.job_id, round_, self.stage, bundle)
        self._posted.add(round_)
        self.stats.bundles.append((round_, bundle))

    def _scan_events(self) -> None:
        for ev in self._bundle_events.poll():
            a = ev.args
            if (
                int(a["jobId"]) == self.job_id
                and int(a["stage"]) == (self.stage or 0)
                and (str(a.get("provider", self.me)).lower() == self.me.lower())
            ):
                self._posted.add(int(a["round"]))
        for ev in self._challenges.poll():
            a = ev.args
            if int(a["jobId"]) == self.job_id and int(a["stage"]) == self.stage:
                self._pending_challenges.add(int(a["disputeId"]))

    def _answer_challenges(self) -> None:
        for dispute_id in sorted(self._pending_challenges):
            d = self.p.dispute(dispute_id)
            if d.provider.lower() != self.me.lower() or d.status != DisputeStatus.AWAITING_RESPONSE:
                self._pending_challenges.discard(dispute_id)
                continue
            if self._withholds(d.round):
                continue
            if self._host_call("take_result", self.job_id, d.round) is None:
                continue  # wait for the driver to retrain the round after a restart
            bundle = self._host_call("make_audit_bundle", [d.leaf_index])
            try:
                if int(d.leaf_hash, 16) == 0:  # challenged by index: reveal the committed leaf
                    result = self._host_call("take_result", self.job_id, d.round)
                    tree = trace_tree(result.leaves)
                    self.p.reveal_leaf(
                        dispute_id,
                        leaf_hash(result.leaves[d.leaf_index]),
                        tree.proof(d.leaf_index),
                        bundle,
                    )
                else:
                    self.p.respond(dispute_id, bundle)
            except RevertError as exc:
                self.stats.notes.append(f"respond to dispute {dispute_id}: {exc}")
            self._pending_challenges.discard(dispute_id)
            self.stats.responses.append(dispute_id)
