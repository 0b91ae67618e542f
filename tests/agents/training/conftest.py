"""Fixtures for the training engine: a real content store, a small dataset and job spec."""

from __future__ import annotations

import hashlib

import pytest

from agents.lineage.documents import DatasetManifest, JobSpec, ShardRef
from agents.spec import (
    CompressionConfig,
    DeterminismConfig,
    ModelConfig,
    TrainingConfig,
)


def _open_store(path):
    try:
        from agents.storage import open_store
    except ImportError:
        open_store = None
    if open_store is not None:
        return open_store(path)
    return _DictStore()


class _DictStore:
    """Stand-in until agents.storage lands (only used if open_store is missing)."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}

    def add_bytes(self, data: bytes) -> str:
        import base64

        cid = "b" + base64.b32encode(hashlib.sha256(data).digest()).decode().lower().rstrip("=")
        self.blobs[cid] = bytes(data)
        return cid

    def cat(self, cid: str) -> bytes:
        return self.blobs[cid]

    def put_json(self, doc) -> str:
        import json

        if hasattr(doc, "model_dump"):
            doc = doc.model_dump(mode="json")
        return self.add_bytes(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode())

    def get_json(self, cid: str):
        import json

        return json.loads(self.cat(cid))


TEXT = (
    b"Tessera trains models that no single party owns. Providers stake, train one stage, "
    b"commit traces, and validators replay sampled steps. "
)


def make_dataset(store, n_shards: int = 2, shard_bytes: int = 3000) -> str:
    """Put a small byte dataset in the store; return its manifest CID."""
    shards = []
    for i in range(n_shards):
        # Varied text so different windows really hold different bytes.
        data = b"".join(
            TEXT[(j * 7 + i) % len(TEXT) :] + f" [{i}:{j}] ".encode() for j in range(400)
        )[:shard_bytes]
        cid = store.add_bytes(data)
        shards.append(ShardRef(cid=cid, size=len(data), tokens=len(data), name=f"shard{i}"))
    manifest = DatasetManifest(
        name="tiny",
        source="tests",
        license="CC0-1.0",
        shards=shards,
        total_tokens=sum(s.tokens for s in shards),
    )
    return store.put_json(manifest.model_dump(mode="json"))


def make_spec(dataset: str, *, num_stages: int = 3, compression: str = "none", **kw) -> JobSpec:
    """A tiny job: 3 layers of width 32, 2 steps of 2 micro-batches per round."""
    return JobSpec(
        name="tiny-job",
        model=kw.pop("model", ModelConfig(n_layer=3, n_head=2, d_model=32, seq_len=16)),
        num_stages=num_stages,
        dataset=dataset,
        compression=CompressionConfig(method=compression, **kw.pop("codec", {})),
        training=kw.pop(
            "training", TrainingConfig(batch_size=4, micro_batches=2, steps_per_round=2)
        ),
        determinism=kw.pop("determinism", DeterminismConfig(seed=7, num_threads=1)),
        **kw,
    )


@pytest.fixture
def store(tmp_path):
    """A real embedded content store in a temporary directory."""
    return _open_store(tmp_path / "store")


@pytest.fixture
def dataset(store) -> str:
    """CID of a two-shard byte dataset in `store`."""
    return make_dataset(store)


@pytest.fixture
def spec(dataset) -> JobSpec:
    """A tiny 3-stage job spec on `dataset`."""
    return make_spec(dataset)


@pytest.fixture
def spec_factory(dataset):
    """`make_spec` bound to the `dataset` fixture: spec_factory(compression=..., ...)."""
    return lambda **kw: make_spec(dataset, **kw)
