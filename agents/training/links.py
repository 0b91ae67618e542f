"""Direct links between neighbouring stage actors of one trusted Ray cluster.

`RayPipeline` used to make every forward and backward an actor call: 36 calls
a step on 4 stages of 4 micro-batches, and on the 2-core bench each call cost
about a millisecond of Ray's CPU (raylet, serialisation, the Python-side
dispatch), a fifth of the actors' time. With links each actor runs its whole
round in one call and hands its payloads straight to its neighbours over one
TCP connection each way, blocking (no spinning) while it waits.

Setup: every actor `listen`s on its node's address; the driver hands each one
its downstream neighbour's address and a fresh random token; each actor
connects downstream and accepts exactly one upstream connection that presents
the token (anything else that connects is dropped). Frames are a fixed header
(kind, step, micro-batch, length) and a safetensors payload: nothing on a link
is ever unpickled.

Failure: a stage whose call fails closes its links, so its neighbours' next
receive fails at once with `LinkClosed` and they close theirs: one failure
ends the round everywhere within a hop per stage, and the driver reports the
stage that failed first. A peer that stops answering fails the receive after
`timeout` seconds.
"""

from __future__ import annotations

import contextlib
import hmac
import secrets
import selectors
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

import torch

from agents.training.errors import PipelineError

FORWARD, BACKWARD = 1, 2
_KIND_NAMES = {FORWARD: "activations", BACKWARD: "gradients"}
_HEADER = struct.Struct("<BBIIQ")  # kind, is_tensor, step, micro-batch, body length
_HELLO = struct.Struct("<I16s")  # sender's stage, token
TOKEN_BYTES = 16
MAX_FRAME = 1 << 31


class LinkClosed(PipelineError):
    """A neighbour's link ended or timed out: another stage failed, or a peer is lost."""


def new_token() -> bytes:
    """A random token for one set of links (the driver hands it to every stage)."""
    return secrets.token_bytes(TOKEN_BYTES)


def _encode(payload: Any) -> tuple[int, bytes]:
    from agents.transport.payloads import payload_to_bytes

    if isinstance(payload, torch.Tensor):
        return 1, payload_to_bytes({"tensor": payload})
    if isinstance(payload, dict):
        return 0, payload_to_bytes(payload)
    raise PipelineError(f"cannot send a {type(payload).__name__} over a stage link")


def _decode(is_tensor: int, body: bytes) -> Any:
    from agents.transport.payloads import payload_from_bytes

    if is_tensor:
        return payload_from_bytes(body, allowed_keys={"tensor"})["tensor"]
    return payload_from_bytes(body)


class Link:
    """One end of the TCP connection between stages `upper` (the sender of activations) and
    `upper + 1`."""

    def __init__(self, sock: socket.socket, peer: int, timeout: float) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(timeout)
        self._sock = sock
        self.peer = peer
        self.timeout = timeout

    def send(self, kind: int, step: int, micro_batch: int, payload: Any) -> None:
        """Send one payload (blocks only while the kernel's buffer is full)."""
        is_tensor, body = _encode(payload)
        try:
            self._sock.sendall(_HEADER.pack(kind, is_tensor, step, micro_batch, len(body)) + body)
        except TimeoutError:
            raise LinkClosed(
                f"stage {self.peer} took no {_KIND_NAMES[kind]} of step {step} micro-batch "
                f"{micro_batch} in {self.timeout:.0f}s"
            ) from None
        except OSError as exc:
            raise LinkClosed(f"the link to stage {self.peer} is down ({exc})") from None

    def receive(self, kind: int, step: int, micro_batch: int) -> Any:
        """The next payload, which must be `kind` of (step, micro_batch)."""
        head = self._read(_HEADER.size, kind, step, micro_batch)
        got_kind, is_tensor, got_step, got_mb, length = _HEADER.unpack(head)
        if (got_kind, got_step, got_mb) != (kind, step, micro_batch):
            raise PipelineError(
                f"stage {self.peer} sent {_KIND_NAMES.get(got_kind, got_kind)} of step "
                f"{got_step} micro-batch {got_mb}; expected {_KIND_NAMES[kind]} of step {step} "
                f"micro-batch {micro_batch}"
            )
        if length > MAX_FRAME:
            raise PipelineError(f"stage {self.peer} announced a {length}-byte payload")
        return _decode(is_tensor, self._read(length, kind, step, micro_batch))

    def _read(self, n: int, kind: int, step: int, micro_batch: int) -> bytes:
        buf = bytearray(n)
        view = memoryview(buf)
        got = 0
        while got < n:
            try:
                k = self._sock.recv_into(view[got:])
            except TimeoutError:
                raise LinkClosed(
                    f"no {_KIND_NAMES[kind]} of step {step} micro-batch {micro_batch} from "
                    f"stage {self.peer} in {self.timeout:.0f}s"
                ) from None
            except OSError as exc:
                raise LinkClosed(f"the link to stage {self.peer} is down ({exc})") from None
            if k == 0:
                raise LinkClosed(
                    f"stage {self.peer} closed its link before sending {_KIND_NAMES[kind]} of "
                    f"step {step} micro-batch {micro_batch}"
                )
            got += k
        return bytes(buf)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()


class StageLinks:
    """A stage's listening socket and, once joined, its links up and down the pipeline."""

    def __init__(self, stage: int, host: str) -> None:
        self.stage = stage
        self._listener = socket.create_server((host, 0))
        self.address = (host, self._listener.getsockname()[1])
        self.up: Link | None = None
        self.down: Link | None = None

    def join(
        self,
        downstream: tuple[str, int] | None,
        token: bytes,
        *,
        has_upstream: bool,
        timeout: float,
        setup_timeout: float = 60.0,
    ) -> None:
        """Connect to the next stage (if any), then accept the previous one's connection."""
        if len(token) != TOKEN_BYTES:
            raise PipelineError("a stage link token is 16 bytes")
        if downstream is not None:
            try:
                sock = socket.create_connection(tuple(downstream), timeout=setup_timeout)
            except OSError as exc:
                raise LinkClosed(
                    f"stage {self.stage} cannot reach stage {self.stage + 1} at "
                    f"{downstream[0]}:{downstream[1]} ({exc})"
                ) from None
            sock.sendall(_HELLO.pack(self.stage, token))
            self.down = Link(sock, self.stage + 1, timeout)
        if has_upstream:
            self.up = self._accept(token, timeout, setup_timeout)
        self._listener.close()

    def _accept(self, token: bytes, timeout: float, setup_timeout: float) -> Link:
        """The first connection that says it is stage - 1 and shows the token.

        Handshakes are read side by side, so a stranger that connects and says
        nothing (or something else) holds nobody up; it is dropped."""
        deadline = time.monotonic() + setup_timeout
        pending: dict[socket.socket, bytes] = {}
        with selectors.DefaultSelector() as sel:
            self._listener.setblocking(False)
            sel.register(self._listener, selectors.EVENT_READ)
            try:
                while (left := deadline - time.monotonic()) > 0:
                    for key, _ in sel.select(left):
                        sock = key.fileobj
                        if sock is self._listener:
                            with contextlib.suppress(BlockingIOError):
                                conn, _ = self._listener.accept()
                                conn.setblocking(False)
                                pending[conn] = b""
                                sel.register(conn, selectors.EVENT_READ)
                            continue
                        try:
                            chunk = sock.recv(_HELLO.size - len(pending[sock]))
                        except OSError:
                            chunk = b""
                        pending[sock] += chunk
                        hello = pending[sock]
                        if chunk and len(hello) < _HELLO.size:
                            continue
                        sel.unregister(sock)
                        del pending[sock]
                        if chunk:
                            sender, got = _HELLO.unpack(hello)
                            if sender == self.stage - 1 and hmac.compare_digest(got, token):
                                sock.setblocking(True)
                                return Link(sock, sender, timeout)
                        sock.close()  # not our neighbour: drop it, keep waiting
            finally:
                for sock in pending:
                    sock.close()
        raise LinkClosed(f"stage {self.stage - 1} did not connect to stage {self.stage}")

    def run_steps(
        self,
        order: list[tuple[int, int]],
        steps: range,
        forward: Callable[[int, int, Any], Any],
        backward: Callable[[int, int, Any], Any],
        step: Callable[[int], None],
    ) -> None:
        """Run `steps` in `order`: receive each input from the neighbour that sends
        it, compute, send the output on; then `step(step)`."""
        up, down = self.up, self.down
        for s in steps:
            for kind, mb in order:
                if kind == FORWARD:
                    x = up.receive(FORWARD, s, mb) if up else None
                    y = forward(s, mb, x)
                    if down:
                        down.send(FORWARD, s, mb, y)
                else:
                    g = down.receive(BACKWARD, s, mb) if down else None
                    gx = backward(s, mb, g)
                    if up:
                        up.send(BACKWARD, s, mb, gx)
            step(s)

    def close(self) -> None:
        for link in (self.up, self.down):
            if link is not None:
                link.close()
        self.up = self.down = None
        self._listener.close()


def stage_order(stage: int, num_stages: int, micro_batches: int) -> list[tuple[int, int]]:
    """The (kind, micro-batch) order a stage runs a step in: GPipe's, all forwards
    then all backwards.

    Sends block until the neighbour reads (a payload can outgrow the sockets'
    buffers: uncompressed activations of a large model are tens of MB). In
    GPipe's order each link carries one direction at a time (stage s sends all
    its activations before it reads a gradient, and s + 1 reads all of them
    before it sends one), so two neighbours are never both sending. The
    one-forward-one-backward order holds fewer activations but has s sending
    activations while s + 1 sends it a gradient: with blocking sends and big
    payloads it deadlocks (tests/agents/training/test_links.py), and on the
    bench's 2 cores it measured no faster."""
    return [(FORWARD, m) for m in range(micro_batches)] + [
        (BACKWARD, m) for m in range(micro_batches)
    ]
