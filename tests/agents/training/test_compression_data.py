"""Boundary compression and the seeded data sampler."""

from __future__ import annotations

import pytest
import torch

from agents.lineage.documents import DatasetManifest
from agents.spec import CompressionConfig
from agents.training import compression
from agents.training.data import DataSource, batch_window, permute, spec_window
from agents.training.errors import CompressionError, DataError
from agents.training.hashing import payload_nbytes, tensors_hash


def test_int8_is_four_times_smaller_and_within_half_a_step():
    x = torch.randn(2, 8, 32)
    x[0, 0] = 0.0  # an all-zero row must not divide by zero
    cfg = CompressionConfig(method="int8")
    payload, residual = compression.encode(cfg, x)
    assert residual is None
    y = compression.decode(cfg, payload, (2, 8, 32))
    step = x.abs().amax(-1, keepdim=True) / 127
    assert torch.all((x - y).abs() <= step / 2 + 1e-7)
    assert torch.equal(y[0, 0], torch.zeros(32))
    assert payload_nbytes(payload) * 3.5 < compression.dense_nbytes((2, 8, 32))


def test_topk_sends_the_largest_entries_and_feeds_back_the_rest():
    cfg = CompressionConfig(method="topk", ratio=0.01)
    x = torch.randn(4, 16, 64)
    payload, residual = compression.encode(cfg, x, torch.zeros_like(x))
    k = payload["values"].numel()
    assert k == 41  # ceil(0.01 * 4096)
    sent = compression.decode(cfg, payload, (4, 16, 64))
    assert torch.equal(sent + residual, x)  # nothing is lost, only delayed
    assert sent.abs().max() == x.abs().max()
    ratio = compression.dense_nbytes((4, 16, 64)) / payload_nbytes(payload)
    assert ratio > 45
    # The residual is added to the next message.
    payload2, _ = compression.encode(cfg, torch.zeros_like(x), residual)
    assert payload2["values"].abs().min() > 0


def test_malformed_payloads_are_compression_errors():
    cfg = CompressionConfig(method="topk", ratio=0.1)
    payload, _ = compression.encode(cfg, torch.randn(2, 4, 8))
    bad = dict(payload, indices=payload["indices"] + 1000)
    with pytest.raises(CompressionError, match="out of range"):
        compression.decode(cfg, bad, (2, 4, 8))
    with pytest.raises(CompressionError, match="shape"):
        compression.decode(cfg, payload, (2, 4, 9))
    with pytest.raises(CompressionError, match="keys"):
        compression.decode(CompressionConfig(method="none"), payload)


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
