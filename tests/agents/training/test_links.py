"""Stage links (agents.training.links): real sockets between threads, no Ray."""

from __future__ import annotations

import socket
import struct
import threading

import pytest
import torch

from agents.training.errors import PipelineError
from agents.training.links import (
    BACKWARD,
    FORWARD,
    LinkClosed,
    StageLinks,
    new_token,
    stage_order,
)
from agents.transport.frames import FrameError


def _pair(timeout: float = 5.0, token: bytes | None = None):
    """Stages 0 and 1 joined over loopback: (stage 0's links, stage 1's links)."""
    token = token or new_token()
    a, b = StageLinks(0, "127.0.0.1"), StageLinks(1, "127.0.0.1")
    t = threading.Thread(
        target=b.join, args=(None, token), kwargs={"has_upstream": True, "timeout": timeout}
    )
    t.start()
    a.join(b.address, token, has_upstream=False, timeout=timeout)
    t.join(10)
    return a, b


def test_payloads_cross_a_link_bitwise_both_ways():
    a, b = _pair()
    try:
        acts = {"codes": torch.randint(0, 255, (4, 7), dtype=torch.uint8), "scale": torch.rand(4)}
        a.down.send(FORWARD, 3, 1, acts)
        got = b.up.receive(FORWARD, 3, 1)
        assert set(got) == set(acts) and all(torch.equal(got[k], acts[k]) for k in acts)
        grad = torch.randn(2, 5, 8)
        b.up.send(BACKWARD, 3, 1, grad)
        back = a.down.receive(BACKWARD, 3, 1)
        assert back.dtype == grad.dtype and torch.equal(back, grad)
    finally:
        a.close()
        b.close()


def test_a_payload_out_of_order_is_refused():
    a, b = _pair()
    try:
        a.down.send(FORWARD, 0, 1, torch.zeros(2))
        with pytest.raises(
            PipelineError,
            match="sent activations of step 0 micro-batch 1; "
            "expected activations of step 0 micro-batch 0",
        ):
            b.up.receive(FORWARD, 0, 0)
    finally:
        a.close()
        b.close()


def test_a_closed_neighbour_ends_the_wait_at_once():
    a, b = _pair(timeout=60.0)
    a.close()
    with pytest.raises(LinkClosed, match="stage 0 closed its link before sending activations"):
        b.up.receive(FORWARD, 0, 0)
    b.close()


def test_a_silent_neighbour_times_out():
    a, b = _pair(timeout=0.5)
    try:
        with pytest.raises(LinkClosed, match="no gradients of step 2 micro-batch 0 from stage 1"):
            a.down.receive(BACKWARD, 2, 0)
    finally:
        a.close()
        b.close()


def test_a_stranger_cannot_take_the_upstream_place():
    """Whoever connects first without the token (or as the wrong stage) is dropped."""
    token = new_token()
    b = StageLinks(1, "127.0.0.1")
    strangers = []
    for hello in (struct.pack("<I16s", 0, b"x" * 16), struct.pack("<I16s", 5, token), b"GET /"):
        s = socket.create_connection(b.address)
        s.sendall(hello)
        strangers.append(s)
    a = StageLinks(0, "127.0.0.1")
    t = threading.Thread(
        target=b.join, args=(None, token), kwargs={"has_upstream": True, "timeout": 5.0}
    )
    t.start()
    a.join(b.address, token, has_upstream=False, timeout=5.0)
    t.join(10)
    try:
        for s in strangers[:2]:  # dropped: the connection reads end-of-file
            s.settimeout(5)
            assert s.recv(1) == b""
        a.down.send(FORWARD, 0, 0, torch.ones(3))
        assert torch.equal(b.up.receive(FORWARD, 0, 0), torch.ones(3))
    finally:
        for s in strangers:
            s.close()
        a.close()
        b.close()


def test_nobody_connecting_is_a_clear_error():
    b = StageLinks(1, "127.0.0.1")
    with pytest.raises(LinkClosed, match="stage 0 did not connect to stage 1"):
        b.join(None, new_token(), has_upstream=True, timeout=1.0, setup_timeout=0.5)
    b.close()


def test_an_unreachable_neighbour_is_a_clear_error():
    a = StageLinks(0, "127.0.0.1")
    free = socket.create_server(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()
    with pytest.raises(LinkClosed, match=f"stage 0 cannot reach stage 1 at 127.0.0.1:{port}"):
        a.join(("127.0.0.1", port), new_token(), has_upstream=False, timeout=1.0)
    a.close()


def test_garbage_and_huge_frames_are_refused_without_unpickling():
    a, b = _pair()
    try:
        raw = a.down._sock
        raw.sendall(struct.pack("<BBIIQ", FORWARD, 0, 0, 0, 5) + b"\x80\x04N.x")  # a pickle
        with pytest.raises(FrameError, match="not a safetensors blob"):
            b.up.receive(FORWARD, 0, 0)
        raw.sendall(struct.pack("<BBIIQ", FORWARD, 0, 0, 1, 1 << 40))
        with pytest.raises(PipelineError, match="announced a 1099511627776-byte payload"):
            b.up.receive(FORWARD, 0, 1)
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("stages,micro_batches", [(4, 4), (3, 2), (2, 6), (4, 1)])
def test_each_stage_order_keeps_the_worker_rules(stages, micro_batches):
    """Each kind in micro-batch order, every backward after its forward."""
    for s in range(stages):
        order = stage_order(s, stages, micro_batches)
        assert [m for k, m in order if k == FORWARD] == list(range(micro_batches))
        assert [m for k, m in order if k == BACKWARD] == list(range(micro_batches))
        for m in range(micro_batches):
            assert order.index((FORWARD, m)) < order.index((BACKWARD, m))


def test_payloads_larger_than_the_socket_buffers_never_deadlock_the_schedule():
    """Four stages on threads run the real step loop with 24 MB payloads both ways
    (uncompressed activations of a large model): every send blocks until its
    receiver reads, so a schedule in which two neighbours can both be sending
    to each other would hang here until the timeout."""
    stages, micro_batches, steps, n = 4, 4, 2, 6 * 2**20
    token = new_token()
    links = [StageLinks(s, "127.0.0.1") for s in range(stages)]
    seen: dict[int, list] = {s: [] for s in range(stages)}
    errors: list[BaseException] = []

    def stage(s: int) -> None:
        try:
            down = links[s + 1].address if s + 1 < stages else None
            links[s].join(down, token, has_upstream=s > 0, timeout=20.0)
            links[s].run_steps(
                stage_order(s, stages, micro_batches),
                range(steps),
                lambda step, mb, x: (
                    seen[s].append(("F", step, mb, None if x is None else float(x[0])))
                    or torch.full((n,), s + mb)
                ),
                lambda step, mb, g: (
                    seen[s].append(("B", step, mb, None if g is None else float(g[0])))
                    or torch.full((n,), -s - mb)
                ),
                lambda step: seen[s].append(("S", step)),
            )
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            links[s].close()

    threads = [threading.Thread(target=stage, args=(s,)) for s in range(stages)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert not any(t.is_alive() for t in threads)
    for s in range(stages):
        got = [e for e in seen[s] if e[0] == "F" and e[1] == 1]
        assert [e[3] for e in got] == [None if s == 0 else float(s - 1 + m) for m in range(4)]
        back = [e for e in seen[s] if e[0] == "B" and e[1] == 1]
        want = [None if s == stages - 1 else float(-(s + 1) - m) for m in range(4)]
        assert [e[3] for e in back] == want
        assert [e for e in seen[s] if e[0] == "S"] == [("S", 0), ("S", 1)]
