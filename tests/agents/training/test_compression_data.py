"""Payload hashes and the seeded data sampler (the codec is tested in test_codec.py)."""

from __future__ import annotations

import pytest
import torch

from agents.lineage.documents import DatasetManifest
from agents.training.data import DataSource, batch_window, permute, spec_window
from agents.training.errors import DataError
from agents.training.hashing import tensors_hash


def test_payload_hash_changes_with_any_byte_and_with_dtype():
    p = {"x": torch.arange(6, dtype=torch.float32).view(2, 3)}
    h = tensors_hash(p)
    assert tensors_hash({"x": p["x"].clone()}) == h
    q = p["x"].clone()
    q[1, 2] = 5.0000005
    assert tensors_hash({"x": q}) != h
    assert tensors_hash({"x": p["x"].double()}) != h
    assert tensors_hash({"x": p["x"].view(3, 2)}) != h
    assert tensors_hash({"y": p["x"]}) != h


def test_permutation_is_a_bijection_for_many_sizes():
    for n in (1, 2, 3, 7, 64, 1000):
        key = n.to_bytes(4, "little")
        assert sorted(permute(i, n, key) for i in range(n)) == list(range(n))
    assert [permute(i, 1000, b"a") for i in range(20)] != [
        permute(i, 1000, b"b") for i in range(20)
    ]


def test_sampler_covers_every_chunk_once_per_epoch_and_never_crosses_a_shard(spec, store):
    manifest = DatasetManifest.model_validate(store.get_json(spec.dataset))
    chunk = spec.model.seq_len + 1
    total = sum(s.tokens // chunk for s in manifest.shards)
    kw = dict(job_id=1, steps_per_round=1, micro_batches=1, micro_batch_size=1, seq_len=16)
    seen = [batch_window(manifest, 5, r, 0, 0, **kw)[0] for r in range(total)]
    assert len(set(seen)) == total
    sizes = {s.cid: s.tokens for s in manifest.shards}
    assert all(off % chunk == 0 and off + n <= sizes[cid] for cid, off, n in seen)
    # Epoch 2 is another order over the same chunks; another job is another order.
    epoch2 = [batch_window(manifest, 5, total + r, 0, 0, **kw)[0] for r in range(total)]
    assert set(epoch2) == set(seen) and epoch2 != seen
    other = [batch_window(manifest, 5, r, 0, 0, **dict(kw, job_id=2))[0] for r in range(total)]
    assert other != seen
    with pytest.raises(DataError):
        batch_window(manifest, 5, 0, 1, 0, **kw)


def test_data_source_reads_exactly_the_seeded_bytes(spec, store):
    source = DataSource(spec, store)
    mb = source.micro_batch(3, 1, 1, 0)
    assert list(mb.windows) == spec_window(source.manifest, spec, 3, 1, 1, 0)
    cid, off, n = mb.windows[0]
    raw = store.cat(cid)[off : off + n]
    assert mb.tokens[0].tolist() == list(raw[:-1])
    assert mb.targets[0].tolist() == list(raw[1:])
    assert mb.tokens.shape == (spec.training.micro_batch_size, spec.model.seq_len)
    assert source.micro_batch(3, 1, 1, 0).data_ref == mb.data_ref
    assert source.micro_batch(3, 1, 1, 1).data_ref != mb.data_ref
    with pytest.raises(DataError, match="outside shard"):
        source.read([(cid, len(store.cat(cid)) - 3, 17)])
