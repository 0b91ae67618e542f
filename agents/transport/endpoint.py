"""The transport's sockets: one ROUTER a stage serves on, DEALERs to its peers.

Every socket is CURVE-encrypted. The serving side runs a ZAP handler (the
ZeroMQ authentication protocol, RFC 27) that asks the caller's `admit`
policy about every connecting public key and refuses the rest in the
handshake: a peer whose key is not the one its on-chain identity published
never gets a message through, and the refusal is logged with the key.

Payloads travel as a header frame and chunk frames (see frames.py); the
receiver reassembles at most one payload per peer, each at most `max_bytes`,
and the socket high-water marks bound what sits in queues.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import zmq
from zmq.utils import z85

from agents.errors import TesseraError
from agents.transport.frames import (
    CHUNK_BYTES,
    MAX_CHUNK_BYTES,
    FrameError,
    Header,
    Reassembler,
    decode_header,
    encode_header,
    split_chunks,
)

log = logging.getLogger("agents.transport")
ZAP_ENDPOINT = "inproc://zeromq.zap.01"
HWM_CHUNKS = 64  # 16 MiB of 256 KiB chunks queued per socket, at most


class PeerTimeout(TesseraError):
    """A peer did not take or send a message in time."""


@dataclass(frozen=True)
class Incoming:
    """One complete message and who sent it (the CURVE key the handshake proved)."""

    peer_key: bytes  # Z85 public key
    peer: str  # the name the admit policy gave that key
    routing_id: bytes
    header: Header
    payload: bytes


class Endpoint:
    """A stage's (or gateway's) transport endpoint.

    `admit(public_key_z85) -> name | None` decides who may connect; it is
    called from the ZAP thread for every handshake.
    """

    def __init__(
        self,
        key,
        *,
        bind: str | None = None,
        admit: Callable[[bytes], str | None] | None = None,
        max_bytes: int = 64 * 2**20,
        chunk_bytes: int = CHUNK_BYTES,
        send_timeout: float = 30.0,
    ) -> None:
        self.key = key
        self.max_bytes = max_bytes
        self.chunk_bytes = chunk_bytes
        self.send_timeout = send_timeout
        self.ctx = zmq.Context()
        self.refusals: list[str] = []
        self._admit = admit or (lambda _k: None)
        self._names: dict[bytes, str] = {}
        self._names_lock = threading.Lock()
        self._stop = threading.Event()
        self._peers: dict[str, zmq.Socket] = {}
        self._partial: dict[bytes, tuple[bytes, Reassembler]] = {}
        self.router: zmq.Socket | None = None
        self.address = ""
        self.bytes_sent = 0
        self.bytes_received = 0
        if bind is not None:
            self._zap_ready = threading.Event()
            self._zap = threading.Thread(target=self._zap_loop, name="zap", daemon=True)
            self._zap.start()
            self._zap_ready.wait(5)
            r = self.ctx.socket(zmq.ROUTER)
            r.curve_server = True
            r.curve_secretkey = key.secret
            r.curve_publickey = key.public
            r.zap_domain = b"tessera"
            r.rcvhwm = HWM_CHUNKS
            r.sndhwm = HWM_CHUNKS
            r.linger = 0
            r.router_mandatory = True
            r.bind(bind)
            self.router = r
            self.address = r.last_endpoint.decode()

    # ------------------------------------------------------------------ admission
    def _zap_loop(self) -> None:
        zap = self.ctx.socket(zmq.REP)
        zap.linger = 0
        zap.bind(ZAP_ENDPOINT)
        self._zap_ready.set()
        poller = zmq.Poller()
        poller.register(zap, zmq.POLLIN)
        while not self._stop.is_set():
            if not poller.poll(200):
                continue
            msg = zap.recv_multipart()
            version, request_id, _domain, address, _identity, mechanism = msg[:6]
            ok, user, text = False, b"", b"refused"
            if mechanism == b"CURVE" and len(msg) >= 7 and len(msg[6]) == 32:
                public = z85.encode(msg[6])
                try:
                    name = self._admit(public)
                except Exception as exc:  # the policy's chain read failed: refuse, say why
                    name = None
                    text = f"admission check failed: {exc}".encode()[:200]
                if name:
                    ok, user = True, public
                    with self._names_lock:
                        self._names[public] = name
                else:
                    self._refuse(
                        f"refused connection from {address.decode(errors='replace')} with "
                        f"transport key {public.decode()}: not the key of an on-chain peer"
                    )
            else:
                self._refuse(f"refused a {mechanism.decode(errors='replace')} connection")
            zap.send_multipart(
                [version, request_id, b"200" if ok else b"400", b"OK" if ok else text, user, b""]
            )
        zap.close()

    def _refuse(self, reason: str) -> None:
        self.refusals.append(reason)
        log.warning("transport: %s", reason)

    def refuse(self, reason: str) -> None:
        """Record and log a refused message (the callers' checks name what they refuse)."""
        self._refuse(reason)

    def peer_name(self, public: bytes) -> str | None:
        with self._names_lock:
            return self._names.get(public)

    # ------------------------------------------------------------------ sending
    def connect(self, name: str, endpoint: str, server_key: bytes) -> None:
        """(Re)connect the DEALER called `name` to a peer serving with `server_key`."""
        old = self._peers.pop(name, None)
        if old is not None:
            old.close(0)
        d = self.ctx.socket(zmq.DEALER)
        d.curve_secretkey = self.key.secret
        d.curve_publickey = self.key.public
        d.curve_serverkey = server_key
        d.sndhwm = HWM_CHUNKS
        d.rcvhwm = HWM_CHUNKS
        d.immediate = True  # queue only on a completed (authenticated) connection
        d.linger = 0
        d.sndtimeo = int(self.send_timeout * 1000)
        d.connect(endpoint)
        self._peers[name] = d

    def connected(self, name: str) -> bool:
        return name in self._peers

    def send(
        self, name: str, header: Header, payload: bytes = b"", timeout: float | None = None
    ) -> None:
        """Send one message to peer `name`: header, then chunks (blocks on back-pressure)."""
        self._send(self._peers[name], [], header, payload, name, timeout)

    def reply(self, routing_id: bytes, header: Header, payload: bytes = b"") -> None:
        """Answer a message that came in on the ROUTER (inference replies)."""
        self._send(self.router, [routing_id], header, payload, "client")

    def _send(
        self,
        sock,
        prefix: list[bytes],
        header: Header,
        payload: bytes,
        name: str,
        timeout: float | None = None,
    ) -> None:
        header = _with_length(header, len(payload))
        frames = [encode_header(header), *split_chunks(payload, self.chunk_bytes)]
        timeout = self.send_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        for frame in frames:
            while True:
                try:
                    sock.send_multipart([*prefix, frame], flags=zmq.NOBLOCK, copy=False)
                    break
                except zmq.Again:
                    if time.monotonic() > deadline or self._stop.is_set():
                        raise PeerTimeout(f"peer {name} took nothing for {timeout:.1f}s") from None
                    time.sleep(0.002)
                except zmq.ZMQError as exc:  # router_mandatory: the client went away
                    raise PeerTimeout(f"peer {name}: {exc}") from None
        self.bytes_sent += len(payload)

    # ------------------------------------------------------------------ receiving
    def recv(self, timeout: float) -> Incoming | None:
        """The next complete message on the ROUTER, or None after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not self.router.poll(int(left * 1000) + 1):
                return None
            frames = self.router.recv_multipart(copy=False)
            if len(frames) != 2:
                self._refuse(f"refused a message of {len(frames)} frames")
                continue
            rid, frame = frames[0].bytes, frames[1]
            public = frame.get("User-Id").encode()
            out = self._feed(public, rid, frame.bytes)
            if out is not None:
                return out

    def recv_from(self, name: str, timeout: float) -> Incoming | None:
        """The next complete message on the DEALER to `name` (replies to INFER)."""
        sock = self._peers[name]
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not sock.poll(int(left * 1000) + 1):
                return None
            out = self._feed(name.encode(), b"", sock.recv())
            if out is not None:
                return out

    def _feed(self, public: bytes, rid: bytes, data: bytes) -> Incoming | None:
        name = self.peer_name(public) or public.decode(errors="replace")
        pending = self._partial.get(public)
        try:
            if pending is None or pending[0] != rid or data[:4] == b"TSR1":
                if pending is not None:
                    self._refuse(f"dropped an unfinished payload from {name}")
                    self._partial.pop(public, None)
                header = decode_header(data)
                asm = Reassembler(header, self.max_bytes, MAX_CHUNK_BYTES)
                if asm.done:
                    return Incoming(public, name, rid, header, b"")
                self._partial[public] = (rid, asm)
                return None
            _, asm = pending
            if asm.add(data):
                self._partial.pop(public, None)
                self.bytes_received += asm.header.length
                return Incoming(public, name, rid, asm.header, asm.payload())
            return None
        except FrameError as exc:
            self._partial.pop(public, None)
            self._refuse(f"refused bytes from {name}: {exc}")
            return None

    def close(self) -> None:
        """Close every socket and stop the ZAP thread."""
        self._stop.set()
        for s in self._peers.values():
            s.close(0)
        if self.router is not None:
            self.router.close(0)
            self._zap.join(timeout=2)
        self.ctx.term()


def _with_length(h: Header, n: int) -> Header:
    from dataclasses import replace

    return replace(h, length=n)
