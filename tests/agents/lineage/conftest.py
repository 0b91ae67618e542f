"""Fixtures for lineage tests: a real embedded store and a small lineage chain."""

from __future__ import annotations

import pytest

from agents.lineage import build_dataset, save_document
from agents.lineage.documents import (
    CheckpointManifest,
    JobSpec,
    RoundRecord,
    StageCheckpoint,
    TraceLeaf,
)
from agents.spec import DeterminismConfig, ModelConfig
from agents.storage import EmbeddedStore

PROVIDER = "0x" + "ab" * 20


def h(n: int) -> str:
    """A distinct 0x-prefixed 32-byte hex hash."""
    return "0x" + f"{n:064x}"


@pytest.fixture
def store(tmp_path):
    return EmbeddedStore(tmp_path / "blocks", fsync=False)


@pytest.fixture
def chain(store, tmp_path):
    """dataset → spec → 2 rounds × 2 stages → checkpoints (round 1's has a parent)."""
    text = tmp_path / "corpus.txt"
    text.write_text("the quick brown fox\n" * 500)
    dataset_cid, manifest = build_dataset(
        store, text, name="fox", source="test", license="CC0-1.0", shard_size=1000
    )
    spec = JobSpec(name="tiny", model=ModelConfig(), num_stages=2, dataset=dataset_cid)
    spec_cid = save_document(store, spec)
    checkpoint = None
    checkpoints = []
    records_by_round = []
    for rnd in range(2):
        records = []
        for stage in range(2):
            weights = store.add_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}" + bytes([rnd, stage]))
            leaf = TraceLeaf(
                index=0,
                step=0,
                micro_batch=0,
                params_before=h(1),
                input=h(2),
                output=h(3),
                grad_in=h(4),
                grad_out=h(5),
                params_after=h(6 + rnd),
                data_ref=h(9),
            )
            record = RoundRecord(
                job_id=1,
                round=rnd,
                stage=stage,
                provider=PROVIDER,
                spec=spec_cid,
                parent_checkpoint=checkpoint,
                new_checkpoint=weights,
                data_shards=[manifest.shards[0].cid],
                trace_root=h(100 + rnd),
                leaves=[leaf],
                determinism=DeterminismConfig(),
            )
            records.append((save_document(store, record), weights))
        manifest_doc = CheckpointManifest(
            job_id=1,
            round=rnd,
            spec=spec_cid,
            stages=[
                StageCheckpoint(stage=i, cid=w, params_hash=h(6 + rnd))
                for i, (_, w) in enumerate(records)
            ],
            parent=checkpoint,
            round_records=[cid for cid, _ in records],
        )
        checkpoint = save_document(store, manifest_doc)
        checkpoints.append(checkpoint)
        records_by_round.append([cid for cid, _ in records])
    return {
        "dataset": dataset_cid,
        "manifest": manifest,
        "spec": spec_cid,
        "checkpoints": checkpoints,
        "records": records_by_round,
    }
