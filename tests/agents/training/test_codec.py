"""The boundary codec: exact on its subspace, small on the wire, the same in inference."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from agents.spec import CompressionConfig, ModelConfig
from agents.training.compression import BoundaryCodec, dense_nbytes, subspace_basis
from agents.training.errors import CompressionError
from agents.training.hashing import payload_nbytes, tensors_hash
from agents.training.model import lm_loss
from agents.training.worker import StageWorker

MODEL = ModelConfig(n_layer=4, n_head=4, d_model=128, seq_len=64)


def _codec(**kw) -> BoundaryCodec:
    return BoundaryCodec(CompressionConfig(method="subspace", **kw), MODEL, seed=3)


def test_int8_is_four_times_smaller_and_within_half_a_step():
    codec = BoundaryCodec(CompressionConfig(method="int8"), MODEL, seed=0)
    x = torch.randn(2, 8, 128)
    x[0, 0] = 0.0  # an all-zero row must not divide by zero
    payload = codec.encode_forward(x, None)
    y, tokens = codec.decode_forward(payload, (2, 8))
    assert tokens is None
    step = x.abs().amax(-1, keepdim=True) / 127
    assert torch.all((x - y).abs() <= step / 2 + 1e-7)
    assert torch.equal(y[0, 0], torch.zeros(128))
    assert payload_nbytes(payload) * 3.5 < dense_nbytes((2, 8, 128))


def test_int8_is_the_default_and_topk_is_gone():
    assert CompressionConfig().method == "int8"
    with pytest.raises(ValidationError):
        CompressionConfig(method="topk")
    with pytest.raises(ValidationError, match="whole bytes"):
        CompressionConfig(method="subspace", rank=3, bits=4)
    with pytest.raises(ValidationError, match="whole bytes"):
        CompressionConfig(method="subspace", rank=4, bits=4, grad_bits=5)
    for bits in (0, 1, 9, 16):
        with pytest.raises(ValidationError):
            CompressionConfig(method="subspace", rank=8, bits=bits)


def test_basis_is_orthonormal_and_fixed_by_the_seed():
    u = subspace_basis(128, 8, seed=3)
    assert torch.allclose(u.T @ u, torch.eye(8), atol=1e-6)
    assert torch.equal(u, subspace_basis(128, 8, seed=3))
    assert not torch.equal(u, subspace_basis(128, 8, seed=4))


@pytest.mark.parametrize("scale", ["channel", "position"])
@pytest.mark.parametrize("bits", [2, 3, 4, 5, 6, 7, 8])
def test_encode_decode_is_exact_on_the_subspace(scale, bits):
    codec = _codec(rank=8, bits=bits, scale=scale)
    tokens = torch.randint(0, 256, (4, 64))
    # A hidden state on the subspace around the anchor: its coordinates come back.
    coords = torch.randn(4, 64, 8)
    hidden = codec.hidden_of(coords, tokens)
    assert torch.allclose(codec.features_of(hidden, tokens), coords, atol=1e-5)
    # What the receiver rebuilds re-encodes to the very same codes: the codec
    # loses nothing of a state that is already on its grid.
    sent = codec.encode_forward(codec.features_of(hidden, tokens), tokens)
    features, got_tokens = codec.decode_forward(sent, (4, 64))
    assert torch.equal(got_tokens, tokens)
    rebuilt = codec.hidden_of(features, got_tokens)
    again = codec.encode_forward(codec.features_of(rebuilt, got_tokens), got_tokens)
    assert torch.equal(again["q"], sent["q"])
    assert torch.equal(again["tokens"], sent["tokens"])
    assert torch.allclose(again["scale"].float(), sent["scale"].float(), rtol=1e-5)
    twice, _ = codec.decode_forward(again, (4, 64))
    assert torch.allclose(twice, features, rtol=1e-5, atol=1e-6)
    # Quantisation error is within half a step of the scale.
    step = sent["scale"].float()
    assert torch.all((features - coords).abs() <= step / 2 * (1 + 1e-5) + 1e-7)


def test_backward_sends_the_projected_gradient():
    codec = _codec(rank=8, grad_bits=8, stochastic_grad=False)
    tokens = torch.randint(0, 256, (2, 64))
    leaf = torch.randn(2, 64, 8, requires_grad=True)
    g = torch.randn(2, 64, 128)
    codec.hidden_of(leaf, tokens).backward(g)
    assert torch.allclose(leaf.grad, g @ codec.basis, atol=1e-5)  # U^T g, exactly
    sent = codec.encode_backward(leaf.grad)
    assert set(sent) == {"q", "scale"}
    back = codec.decode_backward(sent, (2, 64))
    assert torch.allclose(back, leaf.grad, atol=float(sent["scale"].max()))


def test_stochastic_rounding_is_seeded_and_unbiased():
    codec = _codec(rank=8, grad_bits=2)
    # A fixed gradient: the rounding keys are fixed too, so the check is deterministic
    # (an unseeded draw put one of 1,024 means past 4 sigma in ~10% of runs).
    g = torch.randn(2, 64, 8, generator=torch.Generator().manual_seed(0))
    a = codec.encode_backward(g, "step-1")
    assert torch.equal(a["q"], codec.encode_backward(g, "step-1")["q"])
    assert not torch.equal(a["q"], codec.encode_backward(g, "step-2")["q"])
    mean = torch.stack(
        [codec.decode_backward(codec.encode_backward(g, f"k{i}"), (2, 64)) for i in range(400)]
    ).mean(0)
    scale = a["scale"]
    # Each draw is off by up to one step; the mean of 400 is unbiased (+-4 sigma).
    assert torch.all((mean - g).abs() <= 4 * scale / (2 * 400**0.5) + 1e-6)
    with pytest.raises(CompressionError, match="key"):
        codec.encode_backward(g)


def test_rank_8_int4_is_over_100x_both_ways():
    codec = _codec(rank=8, bits=4, grad_bits=4)
    tokens = torch.randint(0, 256, (4, 64))
    fwd = codec.encode_forward(torch.randn(4, 64, 8), tokens)
    bwd = codec.encode_backward(torch.randn(4, 64, 8), "k")
    dense = 2 * dense_nbytes((4, 64, 128))
    assert dense / (payload_nbytes(fwd) + payload_nbytes(bwd)) > 100


def test_malformed_payloads_are_compression_errors():
    codec = _codec(rank=8)
    tokens = torch.randint(0, 256, (2, 16))
    good = codec.encode_forward(torch.randn(2, 16, 8), tokens)
    one_nan = good["scale"].clone()
    one_nan[5] = float("nan")
    # Each malformed payload is refused for its own reason (the message says which).
    cases = [
        ("payload keys", {k: v for k, v in good.items() if k != "tokens"}),
        ("subspace codes are", dict(good, q=good["q"].to(torch.int8))),
        ("subspace scale is", dict(good, scale=good["scale"][:4])),
        ("expected torch.bfloat16", dict(good, scale=good["scale"].float())),
        ("finite and non-negative", dict(good, scale=torch.full_like(good["scale"], float("nan")))),
        ("payload tokens are", dict(good, tokens=tokens[:, :8].to(torch.uint8))),
    ]
    for reason, bad in cases:
        with pytest.raises(CompressionError, match=reason):
            codec.decode_forward(bad, (2, 16))
    for scale in (one_nan, -good["scale"], good["scale"] * float("inf")):
        with pytest.raises(CompressionError, match="finite and non-negative"):
            codec.decode_forward(dict(good, scale=scale), (2, 16))
    with pytest.raises(CompressionError, match="expected"):
        codec.decode_forward(good, (2, 17))
    with pytest.raises(CompressionError, match="keys"):
        BoundaryCodec(CompressionConfig(method="none"), MODEL, 3).decode_forward(good, (2, 16))
    # A byte past a smaller vocabulary is refused, not used as an index.
    model = MODEL.model_copy(update={"vocab_size": 100})
    small = BoundaryCodec(CompressionConfig(method="subspace", rank=8), model, 3)
    past = small.encode_forward(torch.randn(2, 16, 8), torch.full((2, 16), 99))
    small.decode_forward(past, (2, 16))
    past["tokens"][0, 3] = 100
    with pytest.raises(CompressionError, match="outside the vocabulary"):
        small.decode_forward(past, (2, 16))


def test_inference_runs_the_codec_training_ran(spec_factory, store):
    """Training's forward and inference agree bitwise: same payloads, same loss."""
    spec = spec_factory(compression="subspace", codec={"rank": 8})
    workers = [StageWorker(spec, s, store=store) for s in range(spec.num_stages)]
    for w in workers:
        w.begin_round(job_id=1, round=0)
    batch = workers[0]._data_source().micro_batch(1, 0, 0, 0)
    x, sent = None, []
    for w in workers:
        x = w.forward(0, 0, x, batch=batch if (w.is_first or w.is_last) else None)
        if isinstance(x, dict):
            sent.append(tensors_hash(x))
    train_loss = x
    y, inferred = batch.tokens, []
    for w in workers:
        y = w.infer(y, all_positions=True)
        if isinstance(y, dict):
            inferred.append(tensors_hash(y))
    assert inferred == sent
    assert float(lm_loss(y, batch.targets)) == train_loss
    # A model trained through the bottleneck is served through it: dense
    # hidden states are refused by a downstream stage.
    with pytest.raises(Exception, match="payload"):
        workers[1].infer(torch.randn(1, 4, spec.model.d_model))


def test_cached_decoding_crosses_the_same_codec(spec_factory, store):
    """KV-cached decoding through the workers equals the full-window inference.

    With per-position scales each position's codes depend on that position
    alone, so one position at a time crosses the bottleneck exactly as in a
    full window (per-channel scales are shared by the positions sent together).
    """
    from agents.training.kvcache import KVCache

    spec = spec_factory(compression="subspace", codec={"rank": 8, "scale": "position"})
    workers = [StageWorker(spec, s, store=store) for s in range(spec.num_stages)]
    ids = torch.randint(0, 256, (1, 12), generator=torch.Generator().manual_seed(1))
    caches = [KVCache() for _ in workers]

    def cached(chunk):
        y = chunk
        for w, c in zip(workers, caches, strict=True):
            y = w.infer_cached(y, c)
        return y

    out = cached(ids[:, :8])
    for i in range(8, 12):
        full = ids[:, :i]
        for w in workers:
            full = w.infer(full)
        assert torch.allclose(out, full, atol=1e-4), i
        out = cached(ids[:, i : i + 1])


def test_receiving_stages_learn_their_own_token_embedding(spec_factory, store):
    """Behind a subspace boundary every stage but the first holds a re-embedding of the
    tokens the payload carries (no bytes on the wire): it is part of the state, it
    trains, and it changes what the stage computes. Without the codec the stages stay
    exact slices of GPT (no such parameter)."""
    from agents.training.pipeline import InProcessPipeline

    spec = spec_factory(compression="subspace", codec={"rank": 8})
    workers = [StageWorker(spec, s, store=store) for s in range(spec.num_stages)]
    names = [{k for k in w.state_tensors() if "reembed" in k} for w in workers]
    assert names[0] == set()
    for s in range(1, spec.num_stages):
        assert names[s] == {
            "param/reembed.tok.weight",
            "param/reembed.pos.weight",
            "optim/reembed.tok.weight/exp_avg",
            "optim/reembed.tok.weight/exp_avg_sq",
            "optim/reembed.tok.weight/step",
            "optim/reembed.pos.weight/exp_avg",
            "optim/reembed.pos.weight/exp_avg_sq",
            "optim/reembed.pos.weight/step",
        }
    before = workers[1].module.reembed.tok.weight.detach().clone()
    InProcessPipeline(workers).train_round(job_id=1, round=0)
    assert not torch.equal(workers[1].module.reembed.tok.weight, before)
    # The re-embedding is really added: zeroing it changes the stage's output.
    batch = workers[0]._data_source().micro_batch(1, 0, 0, 0)
    payload = workers[0].infer(batch.tokens)
    out = workers[1].infer(payload)
    with torch.no_grad():
        workers[1].module.reembed.tok.weight.zero_()
    assert not torch.equal(workers[1].infer(payload)["q"], out["q"])
    dense = spec_factory(compression="none")
    assert not any("reembed" in k for k in StageWorker(dense, 1, store=store).state_tensors())


@pytest.mark.parametrize("bits", [2, 3, 4, 5, 6, 7, 8])
def test_wire_codes_are_one_little_end_first_bit_stream(bits):
    """The packed layout the module documents, checked against shifts and masks
    written out here: bit i of code j is bit bits*j + i of the position's
    stream, byte m holds the stream's bits [8m, 8m + 8) lowest first, every
    byte string decodes to its codes minus the centre, and packing those codes
    gives the bytes back."""
    from agents.training.compression import _centre, _dequantise, _pack

    k = 8  # codes per position: k * bits is a whole number of bytes for every width
    low = 0 if bits == 2 else 1  # code 0 is unused from 3 bits up (symmetric levels)
    gen = torch.Generator().manual_seed(bits)
    codes = torch.randint(low, 1 << bits, (64, k), generator=gen).to(torch.float32)
    codes[0] = low
    codes[1] = (1 << bits) - 1
    stream = [[(int(c) >> i) & 1 for c in row for i in range(bits)] for row in codes]
    want = torch.tensor(
        [[sum(row[8 * m + i] << i for i in range(8)) for m in range(bits)] for row in stream],
        dtype=torch.uint8,
    )
    assert torch.equal(_pack(codes, bits), want)
    levels = _dequantise(want, torch.ones(k), bits, k)
    assert torch.equal(levels, codes - _centre(bits))
    # A scale multiplies each channel's levels, and only its own.
    scale = torch.arange(1, k + 1, dtype=torch.float32)
    assert torch.equal(_dequantise(want, scale, bits, k), (codes - _centre(bits)) * scale)
    if 8 % bits == 0:
        # Where codes do not straddle bytes, every byte value decodes to its own codes.
        per_byte, mask = 8 // bits, (1 << bits) - 1
        every = torch.arange(256, dtype=torch.uint8).reshape(256, 1)
        mine = torch.tensor(
            [[(b >> (bits * j)) & mask for j in range(per_byte)] for b in range(256)],
            dtype=torch.float32,
        )
        assert torch.equal(
            _dequantise(every, torch.ones(per_byte), bits, per_byte), mine - _centre(bits)
        )
        assert torch.equal(_pack(mine, bits), every)


def test_the_receivers_reembedding_is_added_to_the_anchor():
    """hidden_of(c, tokens, start, E) = A(tokens) + E(tokens, start) + c @ U^T, and the
    gradient flows into c and E's tables (not into the fixed anchor)."""
    from agents.training.model import Embedding

    codec = _codec(rank=8)
    emb = Embedding(MODEL, seed=5, part="reembed.1")
    tokens = torch.randint(0, 256, (2, 16))
    coords = torch.randn(2, 16, 8, requires_grad=True)
    anchor = (codec._anchor_tok.clone(), codec._anchor_pos.clone())
    for start in (0, 7):
        plain = codec.hidden_of(coords, tokens, start)
        both = codec.hidden_of(coords, tokens, start, emb)
        assert torch.allclose(both, plain + emb.at(tokens, start), atol=1e-6)
    g = torch.randn(2, 16, 128)
    codec.hidden_of(coords, tokens, 7, emb).backward(g)
    assert torch.allclose(coords.grad, g @ codec.basis, atol=1e-5)
    want_pos = torch.zeros_like(emb.pos.weight)
    want_pos[7:23] = g.sum(0)
    assert torch.allclose(emb.pos.weight.grad, want_pos, atol=1e-5)
    want_tok = torch.zeros_like(emb.tok.weight).index_add_(
        0, tokens.reshape(-1), g.reshape(-1, 128)
    )
    assert torch.allclose(emb.tok.weight.grad, want_tok, atol=1e-5)
    # The fixed anchor is neither trained nor changed in place by the sum.
    assert torch.equal(codec._anchor_tok, anchor[0]) and torch.equal(codec._anchor_pos, anchor[1])
    assert codec._anchor_tok.grad is None and not codec.basis.requires_grad
