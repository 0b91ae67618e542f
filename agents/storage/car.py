"""CARv1 (Content Addressable aRchive) reading and writing over binary streams.

A CAR is a varint-framed dag-cbor header `{"roots": [CID…], "version": 1}`
followed by varint-framed sections `CID bytes ‖ block bytes`. The header
needs only a tiny dag-cbor subset (map, array, text, uint, tag 42 CIDs), so it
is written and read here by hand. Reading is streaming and strict: a
truncated or malformed file raises `CARError` naming the byte offset; every
block is verified against its CID before it is yielded. No file opening here.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import BinaryIO

from agents.storage.errors import StoreError
from agents.storage.multiformats import CID, encode_varint

# A header is a few CIDs; a block is at most a few MiB (Kubo caps at 2 MiB+).
MAX_HEADER = 1 << 20
MAX_SECTION = 8 << 20


class CARError(StoreError):
    """A CAR file is truncated or malformed."""


# --- the dag-cbor subset of a CAR header -------------------------------------------------


def _cbor_head(major: int, value: int) -> bytes:
    if value < 24:
        return bytes([major << 5 | value])
    for extra, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if value < 1 << (8 * size):
            return bytes([major << 5 | extra]) + value.to_bytes(size, "big")
    raise ValueError("integer too large for CBOR")


def _cbor_text(text: str) -> bytes:
    raw = text.encode()
    return _cbor_head(3, len(raw)) + raw


def _cbor_cid(cid: CID) -> bytes:
    # dag-cbor links: tag 42 over a byte string holding 0x00 ‖ binary CID.
    raw = b"\x00" + cid.to_bytes()
    return _cbor_head(6, 42) + _cbor_head(2, len(raw)) + raw


def encode_header(roots: Iterable[CID]) -> bytes:
    """The dag-cbor header block (map keys in dag-cbor order: shorter first)."""
    roots = list(roots)
    out = _cbor_head(5, 2) + _cbor_text("roots") + _cbor_head(4, len(roots))
    for root in roots:
        out += _cbor_cid(root)
    return out + _cbor_text("version") + _cbor_head(0, 1)


class _CborReader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def _take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ValueError("header ends early")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def _head(self) -> tuple[int, int]:
        first = self._take(1)[0]
        major, info = first >> 5, first & 31
        if info < 24:
            return major, info
        sizes = {24: 1, 25: 2, 26: 4, 27: 8}
        if info not in sizes:
            raise ValueError("indefinite or reserved CBOR length")
        return major, int.from_bytes(self._take(sizes[info]), "big")

    def item(self, depth: int = 0):
        if depth > 8:
            raise ValueError("header nests too deeply")
        major, value = self._head()
        if major == 0:
            return value
        if major == 2:
            return self._take(value)
        if major == 3:
            return self._take(value).decode()
        if major == 4:
            return [self.item(depth + 1) for _ in range(value)]
        if major == 5:
            out = {}
            for _ in range(value):
                key = self.item(depth + 1)
                if not isinstance(key, str):
                    raise ValueError("map key is not text")
                out[key] = self.item(depth + 1)
            return out
        if major == 6 and value == 42:
            raw = self.item(depth + 1)
            if not isinstance(raw, bytes) or not raw.startswith(b"\x00"):
                raise ValueError("tag 42 does not hold a CID")
            return CID.from_bytes(raw[1:])
        raise ValueError(f"unsupported CBOR item (major type {major})")


def decode_header(block: bytes) -> list[CID]:
    """Roots of a CARv1 header; CARError if it is not one."""
    try:
        reader = _CborReader(block)
        header = reader.item()
        if reader.pos != len(block):
            raise ValueError("trailing bytes after the header")
    except (ValueError, UnicodeDecodeError, StoreError) as exc:
        raise CARError(f"CAR header is malformed: {exc}") from None
    if not isinstance(header, dict) or header.get("version") != 1:
        raise CARError("not a CARv1 file (header version is not 1)")
    roots = header.get("roots")
    if not isinstance(roots, list) or not all(isinstance(r, CID) for r in roots):
        raise CARError("CAR header has no valid roots list")
    return roots


# --- streams ----------------------------------------------------------------------------


def write_car(stream: BinaryIO, roots: Iterable[CID], blocks: Iterable[tuple[CID, bytes]]) -> int:
    """Write a CARv1; return the number of blocks written. Blocks are written as given."""
    header = encode_header(roots)
    stream.write(encode_varint(len(header)) + header)
    count = 0
    for cid, block in blocks:
        raw_cid = cid.to_bytes()
        stream.write(encode_varint(len(raw_cid) + len(block)))
        stream.write(raw_cid)
        stream.write(block)
        count += 1
    return count


def _read_varint(stream: BinaryIO, offset: int) -> tuple[int | None, int]:
    """A varint from a stream; (None, 0) at a clean end of file."""
    value = 0
    shift = 0
    used = 0
    while True:
        byte = stream.read(1)
        if not byte:
            if used == 0:
                return None, 0
            raise CARError(f"CAR is truncated at byte {offset + used} (inside a length prefix)")
        used += 1
        value |= (byte[0] & 0x7F) << shift
        if not byte[0] & 0x80:
            return value, used
        shift += 7
        if shift >= 63:
            raise CARError(f"CAR has an over-long length prefix at byte {offset}")


def _read_exact(stream: BinaryIO, n: int, offset: int, what: str) -> bytes:
    data = stream.read(n)
    while len(data) < n:
        more = stream.read(n - len(data))
        if not more:
            raise CARError(
                f"CAR is truncated at byte {offset + len(data)} "
                f"({what} needs {n} bytes, {len(data)} present)"
            )
        data += more
    return data


class CARReader:
    """Iterate a CARv1 stream: `roots` first, then verified `(cid, block)` pairs."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        length, used = _read_varint(stream, 0)
        if length is None:
            raise CARError("CAR is empty (no header)")
        if length == 0 or length > MAX_HEADER:
            raise CARError(f"CAR header length {length} is not plausible")
        self.roots = decode_header(_read_exact(stream, length, used, "the header"))
        self._offset = used + length

    def __iter__(self) -> Iterator[tuple[CID, bytes]]:
        stream = self._stream
        while True:
            start = self._offset
            length, used = _read_varint(stream, start)
            if length is None:
                return
            if length == 0 or length > MAX_SECTION:
                raise CARError(f"CAR section at byte {start} has implausible length {length}")
            body = _read_exact(stream, length, start + used, f"the section at byte {start}")
            self._offset = start + used + length
            try:
                cid, end = CID.read(body, 0)
            except StoreError as exc:
                raise CARError(f"CAR section at byte {start} has a bad CID: {exc}") from None
            block = body[end:]
            cid.verify(block)
            yield cid, block
