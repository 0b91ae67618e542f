"""The model owner: posts a job, keeps it moving, publishes the final checkpoint."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from agents.chain.errors import RevertError
from agents.chain.protocol import JobStatus, Protocol
from agents.errors import TesseraError
from agents.lineage import load_document, save_document
from agents.lineage.documents import (
    CheckpointManifest,
    JobSpec,
    RoundRecord,
    StageCheckpoint,
)
from agents.roles.jobfile import TermsInput, format_tsr
from agents.roles.keeper import Keeper
from agents.spec.pinning import require_pinned

log = logging.getLogger(__name__)


@dataclass
class PostedJob:
    """What `OwnerAgent.post` created."""

    job_id: int
    spec_cid: str
    escrow: int


class OwnerAgent:
    """Posts jobs from a validated spec and terms; finalizes; publishes results."""

    def __init__(self, protocol: Protocol, store):
        self.protocol = protocol
        self.store = store
        self._keepers: dict[int, Keeper] = {}

    def post(self, spec: JobSpec, terms: TermsInput) -> PostedJob:
        """Store the spec on IPFS and post the job with its escrow."""
        require_pinned(spec)  # every determinism setting a replay needs, or refuse
        if not self.store.has(spec.dataset):
            raise TesseraError(f"dataset {spec.dataset} is not in the content store")
        escrow = terms.to_terms(spec, "").escrow
        balance = self.protocol.balance()
        if balance < escrow:  # before anything is stored: a refused post leaves nothing behind
            raise TesseraError(
                f"escrow needs {format_tsr(escrow)} but the owner holds {format_tsr(balance)}"
            )
        spec_cid = save_document(self.store, spec)
        on_chain = terms.to_terms(spec, spec_cid)
        job_id = self.protocol.post_job(on_chain, initial_state_hashes(spec, self.store))
        return PostedJob(job_id=job_id, spec_cid=spec_cid, escrow=on_chain.escrow)

    def tick(self, job_id: int, from_block: int = 0) -> list[str]:
        """Seal, finalize and resolve whatever is due for `job_id`; claim the owner's shares."""
        keeper = self._keepers.setdefault(
            job_id, Keeper(self.protocol, job_id, from_block, record_seeds=True)
        )
        done = keeper.tick()
        try:
            if self.protocol.claim_shares(job_id):
                done.append(f"claimed owner shares of job {job_id}")
        except RevertError as exc:
            done.append(f"claim of owner shares failed: {exc}")
        return done

    def cancel(self, job_id: int) -> int:
        """Cancel a job this account owns (open, or between rounds); returns the refund."""
        before = self.protocol.balance()
        self.protocol.cancel_job(job_id)
        return self.protocol.balance() - before

    def final_checkpoint(self, job_id: int) -> str:
        """Publish the CheckpointManifest of every stage's last finalized checkpoint."""
        return publish_checkpoint_manifest(self.protocol, self.store, job_id)


def initial_state_hashes(spec: JobSpec, store) -> list[str]:
    """Each stage's state hash at initialization (model built from the spec's seed, zero
    optimizer state): what round 0 must start from, committed on-chain with the job."""
    from agents.training.worker import StageWorker

    return [StageWorker(spec, s, store=store).state_hash() for s in range(spec.num_stages)]


def finalized_records(protocol: Protocol, store, job_id: int) -> list[tuple[str, RoundRecord]]:
    """Each stage's last finalized (record CID, RoundRecord), in stage order."""
    terms = protocol.job_terms(job_id)
    out: list[tuple[str, RoundRecord]] = []
    for stage in range(terms.num_stages):
        r = protocol.last_finalized_round(job_id, stage)
        if r < 0:
            raise TesseraError(f"job {job_id} stage {stage} has no finalized round yet")
        cid = protocol.commitment(job_id, r, stage).record_cid
        out.append((cid, load_document(store, cid, RoundRecord)))
    return out


def publish_checkpoint_manifest(protocol: Protocol, store, job_id: int) -> str:
    """Store the job's newest finalized whole-model checkpoint manifest; return its CID."""
    state = protocol.job_state(job_id)
    if state.status not in (JobStatus.RUNNING, JobStatus.COMPLETED):
        raise TesseraError(f"job {job_id} has not trained anything (status {state.status.name})")
    records = finalized_records(protocol, store, job_id)
    manifest = CheckpointManifest(
        job_id=job_id,
        round=max(rec.round for _, rec in records),
        spec=records[0][1].spec,
        stages=[
            StageCheckpoint(
                stage=rec.stage, cid=rec.new_checkpoint, params_hash=rec.leaves[-1].params_after
            )
            for _, rec in records
        ],
        round_records=[cid for cid, _ in records],
    )
    return save_document(store, manifest)
