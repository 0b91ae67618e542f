"""The validator: audits sealed rounds, challenges cheaters, serves on committees.

For every sealed round of a job it (1) checks each stage's record against
its on-chain commitment (spec, job, round, stage, provider, root), each
stage's state chain (within the round, from the last final state or the
initial state, into the published checkpoint) and the boundaries between
stages, (2) replays its OWN sample of leaves (drawn from the seed and its
address) — every micro-batch of each sampled step — from the providers' audit
bundles in a separate process, bound to the chain, and (3) challenges a
mismatching leaf, or a sampled leaf whose bundle never appeared. A replay
that cannot reproduce the platform abstains: no challenge. As a committee
member it replays the disputed leaf's whole step and votes by commit–reveal,
with a salt it can rebuild from its key alone; it does not vote when it
cannot reproduce the platform.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from agents.chain.client import EventCursor
from agents.chain.errors import RevertError
from agents.chain.protocol import DisputeStatus, JobStatus, Protocol
from agents.lineage import load_document
from agents.lineage.documents import RoundRecord
from agents.protocol.audit import (
    Finding,
    Structural,
    attribute_boundary,
    check_boundaries,
    check_record,
)
from agents.protocol.rounds import Phase
from agents.protocol.votes import vote_commitment, vote_salt
from agents.roles.keeper import Keeper
from agents.roles.replay import ReplayWorker
from agents.training.audit import ChainBinding, record_problems
from agents.training.traces import leaf_hash, leaf_struct, trace_tree, validator_sample

log = logging.getLogger(__name__)
ZERO_ROOT = "0x" + "00" * 32
# AuditCourt.FaultKind of each structural finding. ROUND_START and INITIAL_STATE are one
# on-chain kind: the chain knows which start state the round owed.
FAULT_KIND = {
    Structural.SPLIT_STEP: 0,
    Structural.DISCONTINUITY: 1,
    Structural.ROUND_START: 2,
    Structural.INITIAL_STATE: 2,
    Structural.FINAL_STATE: 3,
}


@dataclass
class ValidatorStats:
    """What a validator has done, for progress displays and the demo summary."""

    rounds_audited: int = 0
    leaves_replayed: int = 0
    replay_seconds: float = 0.0
    train_seconds_audited: float = 0.0
    challenges: list[tuple[int, int, int, int, str]] = field(default_factory=list)
    # (round, stage, leaf, reason) of structural faults convicted outright (proveFault).
    faults_proven: list[tuple[int, int, int, str]] = field(default_factory=list)
    votes: list[tuple[int, bool]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def audit_cost(self) -> float:
        """Replay time as a fraction of the training time it audited."""
        return (
            self.replay_seconds / self.train_seconds_audited if self.train_seconds_audited else 0.0
        )


class ValidatorAgent:
    """Audits one job's rounds and votes on its disputes."""

    def __init__(
        self,
        protocol: Protocol,
        store,
        store_spec: str,
        job_id: int,
        *,
        from_block: int = 0,
        min_stake: int = 0,
        replay_worker: ReplayWorker | None = None,
    ):
        self.p = protocol
        self.store = store
        self.store_spec = store_spec
        self.job_id = job_id
        self.min_stake = min_stake
        self.keeper = Keeper(protocol, job_id, from_block)
        self.stats = ValidatorStats()
        self._audited: set[int] = set()
        self._stages_done: dict[int, set[int]] = {}
        self._bundles: dict[tuple[int, int], str] = {}
        self._bundle_cursor = EventCursor(
            protocol.client, [("JobMarket", "AuditBundlePosted")], from_block
        )
        self._committee_cursor = EventCursor(
            protocol.client, [("AuditCourt", "CommitteeDrawn")], from_block
        )
        self._duties: dict[int, dict] = {}
        self._flagged: dict[int, dict[int, set[int]]] = {}  # leaves boundary checks flagged
        self._bindings: dict[tuple[int, int], ChainBinding] = {}
        # Injectable so a test can put the replay on another platform (agents.faults).
        self._worker: ReplayWorker | None = replay_worker

    def _replayer(self) -> ReplayWorker:
        """The replay child process for the job's CPU kernel set, shared by both loops."""
        if self._worker is None:
            cpu = self._spec().determinism.cpu_capability
            self._worker = ReplayWorker(self.store_spec, cpu)
        return self._worker

    def _spec(self):
        from agents.lineage.documents import JobSpec

        if getattr(self, "_job_spec", None) is None:
            self._job_spec = load_document(
                self.store, self.p.job_terms(self.job_id).spec_cid, JobSpec
            )
        return self._job_spec

    def close(self) -> None:
        """Stop the replay child processes."""
        if self._worker is not None:
            self._worker.close()

    @property
    def me(self) -> str:
        return self.p.client.address

    # -- setup -----------------------------------------------------------------
    def register(self) -> None:
        """Stake and register as a validator, if not already; start the replay process."""
        self._replayer().warm_up()
        if self.p.is_validator():
            return
        # Committees are drawn by stake and a member must cover what a vote decides, so the
        # validator allocates at least half of its TSR (never less than the registry minimum).
        floor = int(self.p.client.call("ValidatorRegistry", "minValidatorStake"))
        need = max(self.min_stake, floor, (self.p.balance() + self.p.free_stake()) // 2)
        self.p.ensure_stake(need)
        self.p.register_validator(need)

    # -- main loop ---------------------------------------------------------------
    def tick(self) -> None:
        """One pass of audits and keeper duties (committee duties run in `_committee_work`)."""
        self._poll_bundles()
        state = self.p.job_state(self.job_id)
        if state.status == JobStatus.RUNNING:
            r = state.current_round
            if r not in self._audited and self.keeper.phase(r) is Phase.CHALLENGE:
                self.audit_round(r)
        self.keeper.tick()

    def _poll_bundles(self) -> None:
        """Note every AuditBundlePosted of this job up to the chain head."""
        for ev in self._bundle_cursor.poll():
            a = ev.args
            if int(a["jobId"]) == self.job_id:
                self._bundles[(int(a["round"]), int(a["stage"]))] = a["bundleCID"]

    # -- auditing ------------------------------------------------------------------
    def _records(self, round_: int) -> list[tuple[int, str, RoundRecord | None, str]]:
        terms = self.p.job_terms(self.job_id)
        out = []
        for stage in range(terms.num_stages):
            c = self.p.commitment(self.job_id, round_, stage)
            if not c.exists or c.slashed or not c.record_cid:
                out.append((stage, c.record_cid, None, c.trace_root))
                continue
            # Everything a replay is bound to comes from here, never from the record.
            self._bindings[(round_, stage)] = ChainBinding(
                job_id=self.job_id,
                round=round_,
                stage=stage,
                spec_cid=terms.spec_cid,
                provider=c.provider,
                trace_root=c.trace_root,
            )
            try:
                rec = load_document(self.store, c.record_cid, RoundRecord)
            except Exception as exc:
                self.stats.notes.append(f"round {round_} stage {stage}: record unreadable: {exc}")
                rec = None
            out.append((stage, c.record_cid, rec, c.trace_root))
        return out

    def _expected_parent(self, stage: int, round_: int) -> tuple[str | None, bool]:
        """(params_before the stage's first step must have, whether that is the initial state)."""
        last = self.p.last_finalized_round(self.job_id, stage)
        if last >= round_:
            return None, False
        if last >= 0:
            cid = self.p.commitment(self.job_id, last, stage).record_cid
            return load_document(self.store, cid, RoundRecord).leaves[-1].params_after, False
        if round_ != 0:
            return None, False  # no round finalized yet for a later round: nothing to compare
        committed = self.p.initial_state_hash(self.job_id, stage)
        if committed is not None and int(committed, 16) != 0:
            return committed, True
        # A deployment without on-chain initial hashes: the spec's seeded state, recomputed.
        spec_cid = self.p.job_terms(self.job_id).spec_cid
        return self._replayer().initial_hashes(spec_cid, [stage])[0], True

    def _sample(self, seed: bytes, stage: int, n: int) -> list[int]:
        """This validator's own leaves of a stage (the union over validators grows coverage)."""
        return validator_sample(seed, stage, self.me, self.p.job_terms(self.job_id).audit_leaves, n)

    def _structural(self, round_: int, records, seed: bytes) -> list[Finding]:
        """Record-vs-chain, state-chain and checkpoint checks of every stage, and boundaries."""
        findings: list[Finding] = []
        complete = [rec for _, _, rec, _ in records if rec is not None]
        present = [(stage, rec) for stage, _, rec, _ in records if rec is not None]
        ckpt_hashes = self._replayer().state_hashes(
            [(rec.new_checkpoint, stage) for stage, rec in present]
        )
        for (stage, rec), ckpt_hash in zip(present, ckpt_hashes, strict=True):
            root = self._bindings[(round_, stage)].trace_root
            problems = record_problems(rec, self._bindings[(round_, stage)])
            parent, initial = self._expected_parent(stage, round_)
            found = check_record(
                rec,
                root,
                parent,
                initial=initial,
                checkpoint_hash=ckpt_hash,
            )
            if problems and not any(f.leaf is None for f in found):
                # The record contradicts the chain (spec, round, job, provider): any leaf
                # proves it to a committee, which reads the same record and chain.
                leaf = self._sample(seed, stage, len(rec.leaves))[0]
                found.append(Finding(stage, leaf, problems[0]))
            for f in found:
                if f.leaf is None:  # nothing provable: make the provider reveal a leaf
                    n = self._spec().training.steps_per_round * self._spec().training.micro_batches
                    f = Finding(stage, self._sample(seed, stage, n)[0], f.reason, provable=False)
                findings.append(f)
        if len(complete) == len(records):
            findings += check_boundaries(complete)
        return findings

    def audit_round(self, round_: int) -> list[Finding]:
        """Audit the stages of `round_` whose bundles are in; challenge what fails.

        A stage is audited once: when its bundle appears, or — if none has
        appeared by the middle of the challenge window — as a missing bundle.
        Returns this pass's findings.
        """
        seed = self.p.audit_seed(self.job_id, round_)
        if seed is None:
            return []
        terms = self.p.job_terms(self.job_id)
        view = self.p.round_view(self.job_id, round_)
        records = self._records(round_)
        if any(rec is None and cid == "" and root != ZERO_ROOT for _, cid, rec, root in records):
            return []  # a record CID is not confirmed yet
        done = self._stages_done.setdefault(round_, set())
        findings: list[Finding] = []
        extra: dict[int, set[int]] = {}
        if not done:  # structural checks once per round
            for f in self._structural(round_, records, seed):
                if f.replay_only:
                    extra.setdefault(f.stage, set()).add(f.leaf)
                else:
                    findings.append(f)
            self._flagged[round_] = extra
        extra = self._flagged.get(round_, {})
        # The clock is read BEFORE the bundle events are polled up to the head: a bundle
        # counts as missing only if none was posted by then. (The structural checks above
        # can take longer than half the window on a loaded machine; deciding from the
        # events polled at the start of the tick accused providers whose bundle had arrived
        # meanwhile.)
        now = self.p.client.now()
        self._poll_bundles()
        give_up_on_bundles = now > view.sealed_at + terms.challenge_window // 2
        items: list[tuple] = []
        stage_of: dict[str, int] = {}
        for stage, record_cid, rec, _ in records:
            if stage in done:
                continue
            if rec is None:
                done.add(stage)
                continue
            leaves = self._sample(seed, stage, len(rec.leaves))
            bundle = self._bundles.get((round_, stage))
            if bundle is None:
                if give_up_on_bundles:
                    findings.append(Finding(stage, leaves[0], "no audit bundle was published"))
                    done.add(stage)
                continue
            # Leaves a boundary check flagged are replayed too (if the bundle covers them).
            flagged = sorted(extra.get(stage, set()) - set(leaves))
            self.stats.train_seconds_audited += float(rec.metrics.get("seconds", 0.0))
            binding = self._bindings[(round_, stage)].to_json()
            items.append((bundle, record_cid, leaves, binding))
            if flagged:
                items.append((bundle, record_cid, flagged[:1], binding))
            stage_of[record_cid] = stage
        # Boundary attribution needs no replay: a sender's signature over a payload its leaf
        # does not record is convicted now, before the replays eat the challenge window.
        by_stage = {stage: rec for stage, _, rec, _ in records if rec is not None}
        attributed = self._attribute(
            round_,
            by_stage,
            extra,
            lambda r, s: self._bundles.get((r, s)),
            lambda s: self._bindings[(round_, s)].provider,
        )
        self._challenge(round_, records, attributed)
        if items:
            verdicts, seconds = self._replayer().replay(items)
            self.stats.replay_seconds += seconds
            for record_cid, stage in stage_of.items():
                done.add(stage)
                rows = sorted((leaf, v) for (rc, leaf), v in verdicts.items() if rc == record_cid)
                self.stats.leaves_replayed += len(rows)
                bad = [(leaf, v) for leaf, v in rows if v.match is False]
                if bad:
                    leaf, v = bad[0]
                    why = f"replay mismatch in {', '.join(v.mismatched)}: {v.detail}"
                    findings.append(Finding(stage, leaf, why))
                for leaf, v in rows:
                    if v.match is None:  # abstain: never a challenge
                        self.stats.notes.append(f"stage {stage} leaf {leaf}: {v.detail}")
                        break
        findings += attributed
        if len(done) == len(records):
            self._audited.add(round_)
            self.stats.rounds_audited += 1
        self._challenge(round_, records, findings)
        return findings

    def _attribute(
        self,
        round_: int,
        by_stage: dict[int, RoundRecord],
        flagged: dict[int, set[int]],
        bundle_of,
        provider_of,
    ) -> list[Finding]:
        """Boundary mismatches the receivers' bundles carry sender signatures for: convict
        whoever signed (or recorded) the wrong payload (`attribute_boundary`).

        `flagged` maps a RECEIVING stage to the leaves to check on both of its boundaries;
        `bundle_of(round, stage)` is the stage's audit bundle CID (None: not posted) and
        `provider_of(stage)` the provider of its commitment, from the chain.
        """
        from agents.protocol.attestation import BACKWARD, FORWARD, PayloadContext
        from agents.training.audit import AuditBundle

        market = self.p.client.contract("JobMarket").address
        m = self._spec().training.micro_batches
        out = []
        for stage, leaves in flagged.items():
            for receiver, sender, direction in (
                (stage, stage - 1, FORWARD),
                (stage, stage + 1, BACKWARD),
            ):
                if sender not in by_stage or receiver not in by_stage:
                    continue
                bundle_cid = bundle_of(round_, receiver)
                if bundle_cid is None:
                    continue
                try:
                    bundle = AuditBundle.model_validate(self.store.get_json(bundle_cid))
                except Exception:
                    continue
                for entry in bundle.steps:
                    sigs = (
                        entry.input_signatures if direction == FORWARD else entry.grad_in_signatures
                    )
                    for leaf_index in sorted(leaves):
                        if leaf_index // m != entry.step or not sigs:
                            continue
                        mb = leaf_index % m
                        ctx = PayloadContext(
                            self.p.client.chain_id,
                            market,
                            self.job_id,
                            round_,
                            sender,
                            entry.step,
                            mb,
                            direction,
                        )
                        f = attribute_boundary(
                            by_stage[sender].leaves[leaf_index],
                            by_stage[receiver].leaves[leaf_index],
                            sigs[mb] or None,
                            ctx,
                            provider_of(sender),
                            receiver_stage=receiver,
                        )
                        if f is not None:
                            out.append(f)
        return out

    def _equivocated(self, d, rec: RoundRecord) -> bool:
        """Whether the neighbours' bundles hold the accused sender's signature over a payload
        its disputed leaf does not record (the committee's side of `_attribute`): a replay of
        the sender's own leaf matches, yet the signature convicts it."""
        num_stages = self.p.job_terms(self.job_id).num_stages
        by_stage = {d.stage: rec}
        for s in (d.stage - 1, d.stage + 1):
            if 0 <= s < num_stages:
                c = self.p.commitment(d.job_id, d.round, s)
                if c.exists and c.record_cid:
                    try:
                        by_stage[s] = load_document(self.store, c.record_cid, RoundRecord)
                    except Exception:
                        continue
        flagged = {s: {d.leaf_index} for s in by_stage if s != d.stage}
        found = self._attribute(
            d.round, by_stage, flagged, self._posted_bundle, lambda s: d.provider
        )
        return any(f.stage == d.stage and f.equivocation is not None for f in found)

    def _posted_bundle(self, round_: int, stage: int) -> str | None:
        """The last audit bundle CID posted for (round, stage), read from the chain."""
        events = self.p.client.events(
            "JobMarket",
            "AuditBundlePosted",
            self.keeper.from_block,
            filters={"jobId": self.job_id, "round": round_, "stage": stage},
        )
        return events[-1].args["bundleCID"] if events else None

    def _challenge(self, round_: int, records, findings: list[Finding]) -> None:
        by_stage = {stage: rec for stage, _, rec, _ in records}
        challenged: set[int] = set()
        for f in findings:
            rec = by_stage.get(f.stage)
            if f.leaf is None or rec is None or f.stage in challenged:
                continue
            if self._already_disputed(round_, f.stage):
                challenged.add(f.stage)
                continue
            if f.structural is not None and f.provable and self._prove(round_, rec, f):
                challenged.add(f.stage)
                continue
            if f.equivocation is not None and self._prove_equivocation(round_, rec, f):
                challenged.add(f.stage)
                continue
            try:
                if f.provable:
                    tree = trace_tree(rec.leaves)
                    proof = tree.proof(f.leaf)
                    dispute_id = self.p.challenge(
                        self.job_id, round_, f.stage, f.leaf, leaf_hash(rec.leaves[f.leaf]), proof
                    )
                else:
                    dispute_id = self.p.challenge_index(self.job_id, round_, f.stage, f.leaf)
            except RevertError as exc:
                self.stats.notes.append(f"challenge of stage {f.stage} refused: {exc}")
                continue
            challenged.add(f.stage)
            self.stats.challenges.append((dispute_id, round_, f.stage, f.leaf, f.reason))
            log.info("challenged round %s stage %s leaf %s: %s", round_, f.stage, f.leaf, f.reason)

    def _prove(self, round_: int, rec: RoundRecord, f: Finding) -> bool:
        """Convict a structural fault outright from its leaves and proofs (no committee,
        no bond at risk). False when the chain refuses the proof (e.g. the fault is
        against a checkpoint the chain holds no hash of): then it is challenged."""
        tree = trace_tree(rec.leaves)
        first = f.other_leaf if f.other_leaf is not None else f.leaf
        a, b = ((leaf_struct(rec.leaves[i]), tree.proof(i)) for i in (first, f.leaf))
        kind = FAULT_KIND[f.structural]
        return self._submit_proof(
            round_, f, "fault", lambda: self.p.prove_fault(self.job_id, round_, f.stage, kind, a, b)
        )

    def _prove_equivocation(self, round_: int, rec: RoundRecord, f: Finding) -> bool:
        """Convict a sender that signed a payload its own leaf does not record, from the leaf,
        its proof and the signature (AuditCourt.provePayloadEquivocation; no committee). False
        when the chain refuses: then the leaf is challenged, and the committee convicts on
        the same signature (`_equivocated`)."""
        from agents.roles.proofs import prove_equivocation

        def send():
            return prove_equivocation(self.p, self.job_id, round_, rec, f)

        return self._submit_proof(round_, f, "equivocation", send)

    def _submit_proof(self, round_: int, f: Finding, what: str, send) -> bool:
        """Send one outright proof (`send`); record it, or note the chain's refusal (False)."""
        try:
            send()
        except RevertError as exc:
            self.stats.notes.append(f"{what} proof of stage {f.stage} refused: {exc}")
            return False
        self.stats.faults_proven.append((round_, f.stage, f.leaf, f.reason))
        log.info("proved round %s stage %s leaf %s: %s", round_, f.stage, f.leaf, f.reason)
        return True

    def _already_disputed(self, round_: int, stage: int) -> bool:
        """Someone challenged this commitment already, or it is slashed (e.g. a fault
        another validator proved): nothing more to win, only gas to spend."""
        if self.p.commitment(self.job_id, round_, stage).slashed:
            return True
        events = self.p.client.events(
            "AuditCourt", "ChallengeOpened", self.keeper.from_block, filters={"jobId": self.job_id}
        )
        return any(int(e.args["round"]) == round_ and int(e.args["stage"]) == stage for e in events)

    # -- committee -----------------------------------------------------------------
    def _committee_work(self) -> None:
        for ev in self._committee_cursor.poll():
            members = [m.lower() for m in ev.args["members"]]
            # A committee without quorum is redrawn (CommitteeDrawn again): each draw is a
            # fresh duty, and a member of an earlier draw only is off the hook.
            if self.me.lower() in members:
                self._duties[int(ev.args["disputeId"])] = {}
            else:
                self._duties.pop(int(ev.args["disputeId"]), None)
        now = self.p.client.now()
        to_judge = []
        for dispute_id, duty in list(self._duties.items()):
            d = self.p.dispute(dispute_id)
            if d.job_id != self.job_id or d.status.closed:
                self._duties.pop(dispute_id)
                continue
            if d.status != DisputeStatus.VOTING:
                continue
            if "guilty" not in duty and now <= d.commit_deadline:
                to_judge.append(d)
            elif "guilty" in duty and not duty.get("revealed") and now > d.commit_deadline:
                self._vote(d, duty, reveal=True)
        for d, guilty in self._judge(to_judge).items():
            duty = self._duties[d.dispute_id]
            duty["guilty"] = guilty
            self._vote(d, duty, reveal=False)

    def _vote(self, d, duty: dict, *, reveal: bool) -> None:
        salt = vote_salt(bytes(self.p.client.account.key), d.dispute_id)
        try:
            if reveal:
                self.p.reveal_vote(d.dispute_id, duty["guilty"], salt)
                duty["revealed"] = True
            else:
                commitment = vote_commitment(d.dispute_id, self.me, duty["guilty"], salt)
                self.p.commit_vote(d.dispute_id, commitment)
                self.stats.votes.append((d.dispute_id, duty["guilty"]))
        except RevertError as exc:
            self.stats.notes.append(f"vote on dispute {d.dispute_id}: {exc}")
            duty["revealed"] = True

    def _judge(self, disputes: list) -> dict:
        """Decide each dispute by replaying the disputed leaf's WHOLE step (one process).

        Guilty: the record does not contain the committed leaf or contradicts the
        chain, a structural fault at that leaf, a neighbour holding the provider's
        signature over a payload that leaf does not record, or any mismatch in its step. A
        dispute this validator cannot reproduce is left out: no vote, never guilty.
        """
        verdicts: dict = {}
        items = []
        terms = self.p.job_terms(self.job_id)
        for d in disputes:
            c = self.p.commitment(d.job_id, d.round, d.stage)
            binding = ChainBinding(
                job_id=d.job_id,
                round=d.round,
                stage=d.stage,
                spec_cid=terms.spec_cid,
                provider=d.provider,
                trace_root=c.trace_root,
            )
            rec = load_document(self.store, c.record_cid, RoundRecord)
            committed = bytes.fromhex(d.leaf_hash.removeprefix("0x"))
            if (
                d.leaf_index >= len(rec.leaves)
                or leaf_hash(rec.leaves[d.leaf_index]) != committed
                or record_problems(rec, binding)
            ):
                verdicts[d] = True
                continue
            parent, initial = self._expected_parent(d.stage, d.round)
            ckpt = self._replayer().state_hashes([(rec.new_checkpoint, d.stage)])[0]
            structural = check_record(
                rec,
                c.trace_root,
                parent,
                initial=initial,
                checkpoint_hash=ckpt,
            )
            if any(f.leaf == d.leaf_index for f in structural) or self._equivocated(d, rec):
                verdicts[d] = True
                continue
            items.append((d, (d.bundle_cid, c.record_cid, [d.leaf_index], binding.to_json())))
        if items:
            results, seconds = self._replayer().replay([item for _, item in items])
            self.stats.leaves_replayed += len(items)
            self.stats.replay_seconds += seconds
            ids = [d.dispute_id for d, _ in items]
            self.stats.notes.append(f"judged disputes {ids} by replay in {seconds:.1f}s")
            m = self._spec().training.micro_batches
            for d, (_, record_cid, leaves, _) in items:
                step = leaves[0] // m
                step_rows = [
                    v for (rc, leaf), v in results.items() if rc == record_cid and leaf // m == step
                ]
                if any(v.match is False for v in step_rows):
                    verdicts[d] = True
                elif results[(record_cid, leaves[0])].match is None:
                    self.stats.notes.append(f"dispute {d.dispute_id}: abstain (platform)")
                else:
                    verdicts[d] = False
        return verdicts

    def loops(self) -> list:
        """Independent duties, each ticked by its own thread: votes never wait for audits."""
        return [self.tick, self._committee_work]
