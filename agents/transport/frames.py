"""The wire format: fixed binary headers and chunked payloads, with bounded reassembly.

A message is one header frame followed by ceil(length / chunk) chunk frames,
sent as separate ZeroMQ messages so neither side ever holds more than one
payload being assembled per peer, plus the socket's high-water mark of chunks.
Headers are fixed-size structs (no pickle, no JSON of untrusted shape): a
header that does not unpack exactly is refused.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from agents.errors import TesseraError

MAGIC = b"TSR1"
CHUNK_BYTES = 256 * 1024
MAX_CHUNK_BYTES = 1024 * 1024
ZERO32 = b"\x00" * 32
ZERO_SIG = b"\x00" * 65


class FrameError(TesseraError):
    """Bytes that are not a well-formed Tessera transport frame."""


class Kind(IntEnum):
    """What a message is. There is deliberately no kind that asks for state."""

    DATA = 1  # activations (direction 0) or gradients (direction 1) of one micro-batch
    RESET = 2  # "restart this round from its checkpoint under attempt N"
    INFER = 3  # one inference step of a paid request (gateway -> stage)
    REPLY = 4  # the stage's output for an INFER (stage -> gateway)
    REFUSED = 5  # the stage refused an INFER; payload is the one-line reason


# kind, job, round, attempt, stage, step, micro_batch, direction, request id,
# payload hash, signature, payload length
_HEADER = struct.Struct(">4sBQIQIIIB32s32s65sQ")
HEADER_BYTES = _HEADER.size
_CHUNK = struct.Struct(">4sI")


@dataclass(frozen=True)
class Header:
    """Everything a message is bound to, besides its payload bytes.

    `stage` is the sender's stage for DATA (as in the payload signature) and
    the target stage for INFER/REPLY; `step` is the decode position for INFER.
    """

    kind: Kind
    job_id: int
    round: int
    attempt: int
    stage: int
    step: int = 0
    micro_batch: int = 0
    direction: int = 0
    request_id: bytes = ZERO32
    payload_hash: bytes = ZERO32
    signature: bytes = ZERO_SIG
    length: int = 0

    @property
    def key(self) -> tuple[int, int]:
        """(step, micro_batch): the position of a DATA message in its stream."""
        return (self.step, self.micro_batch)

    def describe(self) -> str:
        """A short human name for logs: what this message claims to be."""
        if self.kind is Kind.DATA:
            what = "activations" if self.direction == 0 else "gradients"
            return (
                f"{what} of job {self.job_id} round {self.round} attempt {self.attempt} "
                f"from stage {self.stage} step {self.step} micro-batch {self.micro_batch}"
            )
        return f"{self.kind.name} job {self.job_id} round {self.round} attempt {self.attempt}"


def encode_header(h: Header) -> bytes:
    """The fixed-size bytes of `h`."""
    for name, value in (("request id", h.request_id), ("payload hash", h.payload_hash)):
        if len(value) != 32:
            raise FrameError(f"{name} must be 32 bytes, got {len(value)}")
    if len(h.signature) != 65:
        raise FrameError(f"signature must be 65 bytes, got {len(h.signature)}")
    try:
        return _HEADER.pack(
            MAGIC,
            int(h.kind),
            h.job_id,
            h.round,
            h.attempt,
            h.stage,
            h.step,
            h.micro_batch,
            h.direction,
            h.request_id,
            h.payload_hash,
            h.signature,
            h.length,
        )
    except struct.error as exc:
        raise FrameError(f"header field out of range: {exc}") from None


def decode_header(data: bytes) -> Header:
    """Parse a header frame; anything but exactly one well-formed header is refused."""
    if len(data) != HEADER_BYTES:
        raise FrameError(f"header is {len(data)} bytes, expected {HEADER_BYTES}")
    magic, kind, *rest = _HEADER.unpack(data)
    if magic != MAGIC:
        raise FrameError(f"bad magic {magic!r}")
    try:
        k = Kind(kind)
    except ValueError:
        raise FrameError(f"unknown message kind {kind}") from None
    job, rnd, attempt, stage, step, mb, direction, rid, ph, sig, length = rest
    if direction not in (0, 1):
        raise FrameError(f"direction must be 0 or 1, got {direction}")
    return Header(k, job, rnd, attempt, stage, step, mb, direction, rid, ph, sig, length)


def chunk_count(length: int, chunk_bytes: int = CHUNK_BYTES) -> int:
    """How many chunk frames carry `length` payload bytes."""
    return -(-length // chunk_bytes)


def split_chunks(payload: bytes, chunk_bytes: int = CHUNK_BYTES) -> list[bytes]:
    """Chunk frames (index prefix + data) of `payload`, as memoryview slices joined lazily."""
    view = memoryview(payload)
    out = []
    for i in range(chunk_count(len(payload), chunk_bytes)):
        out.append(_CHUNK.pack(b"TSRc", i) + view[i * chunk_bytes : (i + 1) * chunk_bytes])
    return out


class Reassembler:
    """Collects the chunks of one payload into a buffer of exactly the declared size.

    `chunk_bytes` is the largest chunk taken (senders may use smaller ones).

    Refuses a declared size over `max_bytes` before allocating anything, a
    chunk out of sequence, and a chunk that would overflow the declared size,
    so a peer cannot make the receiver hold more than `max_bytes`.
    """

    def __init__(self, header: Header, max_bytes: int, chunk_bytes: int = CHUNK_BYTES) -> None:
        if header.length > max_bytes:
            raise FrameError(
                f"{header.describe()} declares {header.length} bytes, more than the "
                f"{max_bytes} this stage accepts"
            )
        self.header = header
        self.chunk_bytes = chunk_bytes
        self._buf = bytearray(header.length)
        self._filled = 0
        self._next = 0

    @property
    def done(self) -> bool:
        return self._filled == self.header.length

    def add(self, frame: bytes) -> bool:
        """Add one chunk frame; True once the payload is complete."""
        if len(frame) < _CHUNK.size:
            raise FrameError("chunk frame too short")
        magic, index = _CHUNK.unpack_from(frame)
        if magic != b"TSRc":
            raise FrameError(f"bad chunk magic {magic!r}")
        if index != self._next:
            raise FrameError(f"chunk {index} out of sequence, expected {self._next}")
        data = memoryview(frame)[_CHUNK.size :]
        room = self.header.length - self._filled
        if not 0 < len(data) <= min(self.chunk_bytes, room):
            raise FrameError(
                f"chunk {index} has {len(data)} bytes; at most {min(self.chunk_bytes, room)} fit"
            )
        self._buf[self._filled : self._filled + len(data)] = data
        self._filled += len(data)
        self._next += 1
        return self.done

    def payload(self) -> bytes:
        """The assembled payload (only once complete)."""
        if not self.done:
            raise FrameError(f"payload incomplete: {self._filled}/{self.header.length} bytes")
        return bytes(self._buf)
