"""The validator: audits sealed rounds, challenges cheaters, serves on committees.

For every sealed round of a job it (1) checks each stage's record against its
commitment and the boundaries between stages, (2) replays the sampled leaves
from the providers' audit bundles in a separate process, and (3) challenges
a mismatching leaf, or a sampled leaf whose bundle never appeared. As a
committee member it replays the disputed leaf from the provider's answer and
votes by commit–reveal, with a salt it can rebuild from its key alone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from agents.chain.client import EventCursor
from agents.chain.errors import RevertError
from agents.chain.protocol import DisputeStatus, JobStatus, Protocol
from agents.lineage import load_document
from agents.lineage.documents import RoundRecord
from agents.protocol.audit import Finding, check_boundaries, check_record
from agents.protocol.rounds import Phase
from agents.protocol.votes import vote_commitment, vote_salt
from agents.roles.keeper import Keeper
from agents.roles.replay import ReplayWorker
from agents.training.traces import leaf_hash, sample_leaves, trace_tree

log = logging.getLogger(__name__)
ZERO_ROOT = "0x" + "00" * 32


@dataclass
class ValidatorStats:
    """What a validator has done, for progress displays and the demo summary."""

    rounds_audited: int = 0
    leaves_replayed: int = 0
    replay_seconds: float = 0.0
    train_seconds_audited: float = 0.0
    challenges: list[tuple[int, int, int, int, str]] = field(default_factory=list)
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
        self._worker: ReplayWorker | None = None

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
        need = max(self.min_stake, int(self.p.client.call("AuditCourt", "minValidatorStake")))
        self.p.ensure_stake(need)
        self.p.register_validator()

    # -- main loop ---------------------------------------------------------------
    def tick(self) -> None:
        """One pass of audits and keeper duties (committee duties run in `_committee_work`)."""
        for ev in self._bundle_cursor.poll():
            a = ev.args
            if int(a["jobId"]) == self.job_id:
                self._bundles[(int(a["round"]), int(a["stage"]))] = a["bundleCID"]
        state = self.p.job_state(self.job_id)
        if state.status == JobStatus.RUNNING:
            r = state.current_round
            if r not in self._audited and self.keeper.phase(r) is Phase.CHALLENGE:
                self.audit_round(r)
        self.keeper.tick()

    # -- auditing ------------------------------------------------------------------
    def _records(self, round_: int) -> list[tuple[int, str, RoundRecord | None, str]]:
        terms = self.p.job_terms(self.job_id)
        out = []
        for stage in range(terms.num_stages):
            c = self.p.commitment(self.job_id, round_, stage)
            if not c.exists or c.slashed or not c.record_cid:
                out.append((stage, c.record_cid, None, c.trace_root))
                continue
            try:
                rec = load_document(self.store, c.record_cid, RoundRecord)
            except Exception as exc:
                self.stats.notes.append(f"round {round_} stage {stage}: record unreadable: {exc}")
                rec = None
            out.append((stage, c.record_cid, rec, c.trace_root))
        return out

    def _expected_parent(self, stage: int, round_: int) -> str | None:
        """params_before the stage's first step must have: its last finalized state."""
        last = self.p.last_finalized_round(self.job_id, stage)
        if last < 0 or last >= round_:
            return None  # initial state: the replay of leaf 0 checks it from the bundle
        cid = self.p.commitment(self.job_id, last, stage).record_cid
        return load_document(self.store, cid, RoundRecord).leaves[-1].params_after

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
        if not done:  # structural checks once per round
            complete = [rec for _, _, rec, _ in records if rec is not None]
            for stage, _, rec, root in records:
                if rec is None:
                    continue
                for f in check_record(rec, root, self._expected_parent(stage, round_)):
                    if f.leaf is None:  # nothing provable: make the provider reveal a leaf
                        n = (
                            self._spec().training.steps_per_round
                            * self._spec().training.micro_batches
                        )
                        leaf = sample_leaves(seed, stage, terms.audit_leaves, n)[0]
                        f = Finding(stage, leaf, f.reason, provable=False)
                    findings.append(f)
            if len(complete) == len(records):
                findings += check_boundaries(complete)
        give_up_on_bundles = self.p.client.now() > view.sealed_at + terms.challenge_window // 2
        items: list[tuple[str, str, list[int]]] = []
        stage_of: dict[str, int] = {}
        for stage, record_cid, rec, _ in records:
            if stage in done:
                continue
            if rec is None:
                done.add(stage)
                continue
            leaves = sample_leaves(seed, stage, terms.audit_leaves, len(rec.leaves))
            bundle = self._bundles.get((round_, stage))
            if bundle is None:
                if give_up_on_bundles:
                    findings.append(Finding(stage, leaves[0], "no audit bundle was published"))
                    done.add(stage)
                continue
            self.stats.train_seconds_audited += float(rec.metrics.get("seconds", 0.0))
            items.append((bundle, record_cid, leaves))
            stage_of[record_cid] = stage
        if items:
            verdicts, seconds = self._replayer().replay(items)
            self.stats.replay_seconds += seconds
            for _, record_cid, leaves in items:
                self.stats.leaves_replayed += len(leaves)
                stage = stage_of[record_cid]
                done.add(stage)
                for leaf in leaves:
                    verdict = verdicts[(record_cid, leaf)]
                    if verdict.match is False:
                        why = f"replay mismatch in {', '.join(verdict.mismatched)}"
                        findings.append(Finding(stage, leaf, why))
                        break
                    if verdict.match is None:
                        self.stats.notes.append(f"stage {stage} leaf {leaf}: {verdict.detail}")
        if len(done) == len(records):
            self._audited.add(round_)
            self.stats.rounds_audited += 1
        self._challenge(round_, records, findings)
        return findings

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

    def _already_disputed(self, round_: int, stage: int) -> bool:
        events = self.p.client.events(
            "AuditCourt", "ChallengeOpened", self.keeper.from_block, filters={"jobId": self.job_id}
        )
        return any(int(e.args["round"]) == round_ and int(e.args["stage"]) == stage for e in events)

    # -- committee -----------------------------------------------------------------
    def _committee_work(self) -> None:
        for ev in self._committee_cursor.poll():
            members = [m.lower() for m in ev.args["members"]]
            if self.me.lower() in members:
                self._duties.setdefault(int(ev.args["disputeId"]), {})
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
        """Replay each disputed leaf from the provider's answer (one process for all of them).

        Guilty on any mismatch, or when the record does not contain the committed leaf.
        """
        verdicts: dict = {}
        items = []
        for d in disputes:
            c = self.p.commitment(d.job_id, d.round, d.stage)
            rec = load_document(self.store, c.record_cid, RoundRecord)
            committed = bytes.fromhex(d.leaf_hash.removeprefix("0x"))
            if (
                d.leaf_index >= len(rec.leaves)
                or leaf_hash(rec.leaves[d.leaf_index]) != committed
                or trace_tree(rec.leaves).root_hex.lower() != c.trace_root.lower()
            ):
                verdicts[d] = True
            else:
                items.append((d, (d.bundle_cid, c.record_cid, [d.leaf_index])))
        if items:
            results, seconds = self._replayer().replay([item for _, item in items])
            self.stats.leaves_replayed += len(items)
            self.stats.replay_seconds += seconds
            ids = [d.dispute_id for d, _ in items]
            self.stats.notes.append(f"judged disputes {ids} by replay in {seconds:.1f}s")
            for d, (_, record_cid, leaves) in items:
                verdicts[d] = results[(record_cid, leaves[0])].match is False
        return verdicts

    def loops(self) -> list:
        """Independent duties, each ticked by its own thread: votes never wait for audits."""
        return [self.tick, self._committee_work]
