"""The wire format and the acceptance rules, without sockets."""

from __future__ import annotations

import pytest
import torch

from agents.transport.frames import (
    HEADER_BYTES,
    FrameError,
    Header,
    Kind,
    Reassembler,
    decode_header,
    encode_header,
    split_chunks,
)
from agents.transport.guard import BACKWARD, FORWARD, RoundGuard, Verdict
from agents.transport.payloads import payload_from_bytes, payload_to_bytes


def data(stage, step, mb, direction=FORWARD, *, job=1, round_=0, attempt=5):
    return Header(Kind.DATA, job, round_, attempt, stage, step, mb, direction)


def test_header_round_trips_and_refuses_malformed_bytes():
    h = Header(Kind.DATA, 7, 3, 99, 1, 4, 1, 1, b"\x01" * 32, b"\x02" * 32, b"\x03" * 65, 12)
    raw = encode_header(h)
    assert len(raw) == HEADER_BYTES and decode_header(raw) == h
    with pytest.raises(FrameError, match="bytes, expected"):
        decode_header(raw + b"\x00")
    with pytest.raises(FrameError, match="magic"):
        decode_header(b"XXXX" + raw[4:])
    bad_kind = raw[:4] + bytes([200]) + raw[5:]
    with pytest.raises(FrameError, match="unknown message kind 200"):
        decode_header(bad_kind)


def test_reassembly_is_bounded_and_in_sequence():
    payload = bytes(range(256)) * 40  # 10240 bytes
    h = Header(Kind.DATA, 1, 0, 1, 0, length=len(payload))
    chunks = split_chunks(payload, 1000)
    asm = Reassembler(h, max_bytes=20_000)
    assert not any(asm.add(c) for c in chunks[:-1]) and asm.add(chunks[-1])
    assert asm.payload() == payload
    with pytest.raises(FrameError, match="more than the 5000"):
        Reassembler(h, max_bytes=5000)  # refused before any allocation
    asm = Reassembler(h, max_bytes=20_000)
    with pytest.raises(FrameError, match="out of sequence"):
        asm.add(chunks[1])
    asm = Reassembler(Header(Kind.DATA, 1, 0, 1, 0, length=10), max_bytes=100)
    with pytest.raises(FrameError, match="fit"):
        asm.add(split_chunks(b"x" * 11, 1000)[0])  # overflow of the declared size


def test_payloads_are_safetensors_never_pickle():
    p = {"q": torch.ones(2, 3, dtype=torch.int8), "scale": torch.tensor([0.5])}
    back = payload_from_bytes(payload_to_bytes(p))
    assert torch.equal(back["q"], p["q"]) and torch.equal(back["scale"], p["scale"])
    import pickle

    with pytest.raises(FrameError, match="safetensors"):
        payload_from_bytes(pickle.dumps(p))


@pytest.fixture()
def guard():
    g = RoundGuard(job_id=1, stage=1, num_stages=3, steps=2, micro_batches=2)
    g.begin(0, 5)
    return g


def test_guard_accepts_each_stream_in_order(guard):
    order = [(0, 0), (0, 1), (1, 0), (1, 1)]
    for step, mb in order:
        h = data(0, step, mb)
        assert guard.check(h, 0).verdict is Verdict.ACCEPT
        guard.accepted(h)
        g = data(2, step, mb, BACKWARD)
        assert guard.check(g, 2).verdict is Verdict.ACCEPT
        guard.accepted(g)


def test_guard_refuses_replays_reorders_and_strangers(guard):
    first = data(0, 0, 0)
    guard.accepted(first)
    d = guard.check(first, 0)
    assert d.verdict is Verdict.REFUSE and "replayed" in d.reason
    d = guard.check(data(0, 1, 0), 0)
    assert d.verdict is Verdict.REFUSE and "out of order" in d.reason
    d = guard.check(data(0, 0, 1, job=2), 0)
    assert d.verdict is Verdict.REFUSE and "job 2" in d.reason
    d = guard.check(data(0, 0, 1, round_=0, attempt=4), 0)
    assert d.verdict is Verdict.REFUSE and "stale attempt" in d.reason
    d = guard.check(data(0, 0, 1), 2)  # stage 2's connection claiming stage 0
    assert d.verdict is Verdict.REFUSE and "came from stage 2" in d.reason
    d = guard.check(data(2, 0, 0, FORWARD), 2)  # activations from downstream
    assert d.verdict is Verdict.REFUSE and "must come from stage 0" in d.reason
    # A later round is only taken if the chain has opened it (the caller checks).
    assert guard.check(data(0, 0, 0, round_=1), 0).verdict is Verdict.FUTURE
    d = guard.check(data(0, 0, 0, round_=0, job=1), 0)
    assert d.verdict is Verdict.REFUSE


def test_guard_adopts_a_newer_attempt_only_from_its_start(guard):
    assert guard.check(data(0, 0, 0, attempt=6), 0).verdict is Verdict.ADOPT
    d = guard.check(data(0, 1, 0, attempt=6), 0)
    assert d.verdict is Verdict.REFUSE and "must start at step 0" in d.reason
    reset = Header(Kind.RESET, 1, 0, 9, 2)
    assert guard.check(reset, 2).verdict is Verdict.ADOPT
    echo = Header(Kind.RESET, 1, 0, 5, 0)
    assert guard.check(echo, 0).verdict is Verdict.IGNORE
