"""Documents on a real store: canonical bytes, validation errors that name the field."""

from __future__ import annotations

import json

import pytest

from agents.lineage import LineageError, load_document, save_document
from agents.lineage.documents import DatasetManifest, JobSpec, RoundRecord, ShardRef
from agents.storage import StoreError, compute_cid


def _manifest() -> DatasetManifest:
    cid = compute_cid(b"shard")
    return DatasetManifest(
        name="d", source="s", license="MIT", shards=[ShardRef(cid=cid, size=5, tokens=5)],
        total_tokens=5,
    )  # fmt: skip


def test_save_is_canonical_json_and_load_round_trips(store):
    doc = _manifest()
    cid = save_document(store, doc)
    assert store.cat(cid) == doc.canonical_json()
    assert cid == compute_cid(doc.canonical_json())
    assert load_document(store, cid) == doc  # dispatched on "kind"
    assert load_document(store, cid, DatasetManifest) == doc


def _stored_with(store, mutate) -> str:
    data = json.loads(_manifest().canonical_json())
    mutate(data)
    return store.put_json(data)


def test_missing_field_is_named(store):
    cid = _stored_with(store, lambda d: d.pop("license"))
    with pytest.raises(LineageError, match=r"DatasetManifest at .*: field 'license' is missing"):
        load_document(store, cid)


def test_unknown_field_is_named(store):
    cid = _stored_with(store, lambda d: d.update(sneaky=1))
    with pytest.raises(LineageError, match=r"field 'sneaky' is not a known field"):
        load_document(store, cid)


def test_nested_bad_value_is_named_with_its_path(store):
    cid = _stored_with(store, lambda d: d["shards"][0].update(cid="not-a-cid"))
    with pytest.raises(LineageError, match=r"field 'shards\.0\.cid'"):
        load_document(store, cid)


def test_wrong_or_missing_kind(store):
    cid = save_document(store, _manifest())
    with pytest.raises(LineageError, match=r"JobSpec at .*field 'kind'"):
        load_document(store, cid, JobSpec)
    no_kind = _stored_with(store, lambda d: d.pop("kind"))
    with pytest.raises(LineageError, match="field 'kind' is missing"):
        load_document(store, no_kind)
    odd = _stored_with(store, lambda d: d.update(kind="tessera/unknown@9"))
    with pytest.raises(LineageError, match="unknown value 'tessera/unknown@9'"):
        load_document(store, odd)


def test_non_document_content_is_a_store_error(store):
    cid = store.add_bytes(b"\x89PNG not json")
    with pytest.raises(StoreError, match="not a JSON document"):
        load_document(store, cid, RoundRecord)
