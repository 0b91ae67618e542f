"""dag-pb nodes and UnixFS `Data` messages: protobuf by hand, in canonical order.

Kubo's CIDs depend on exact bytes, so encoding follows the dag-pb spec's
canonical form: a node's Links (field 2) come before its Data (field 1); a
link writes Hash, then Name, then Tsize. Kubo always writes the Name field,
even when it is empty, so `PBLink.name` is never omitted here either.
No I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agents.storage.errors import StoreError
from agents.storage.multiformats import CID, decode_varint, encode_varint

# UnixFS Data.Type values (unixfs.proto).
UNIXFS_RAW = 0
UNIXFS_DIRECTORY = 1
UNIXFS_FILE = 2
UNIXFS_METADATA = 3
UNIXFS_SYMLINK = 4
UNIXFS_HAMT_SHARD = 5

_VARINT = 0
_LEN = 2


class DagPBError(StoreError):
    """A dag-pb or UnixFS message does not decode."""


def _key(field_no: int, wire: int) -> bytes:
    return encode_varint(field_no << 3 | wire)


def _len_field(field_no: int, payload: bytes) -> bytes:
    return _key(field_no, _LEN) + encode_varint(len(payload)) + payload


def _uint_field(field_no: int, value: int) -> bytes:
    return _key(field_no, _VARINT) + encode_varint(value)


def _fields(data: bytes | memoryview, what: str):
    """Yield (field number, wire type, value) of a protobuf message; strict."""
    pos = 0
    end = len(data)
    try:
        while pos < end:
            key, pos = decode_varint(data, pos)
            field_no, wire = key >> 3, key & 7
            if wire == _VARINT:
                value, pos = decode_varint(data, pos)
                yield field_no, wire, value
            elif wire == _LEN:
                length, pos = decode_varint(data, pos)
                if pos + length > end:
                    raise ValueError("length-delimited field runs past the end")
                yield field_no, wire, bytes(data[pos : pos + length])
                pos += length
            else:
                raise ValueError(f"unsupported wire type {wire}")
    except ValueError as exc:
        raise DagPBError(f"malformed {what}: {exc}") from None


@dataclass(frozen=True)
class PBLink:
    """A dag-pb link: target CID, entry name and cumulative DAG size."""

    cid: CID
    name: str = ""
    tsize: int = 0

    def encode(self) -> bytes:
        """Canonical bytes: Hash, Name (always, even empty), Tsize."""
        return (
            _len_field(1, self.cid.to_bytes())
            + _len_field(2, self.name.encode())
            + _uint_field(3, self.tsize)
        )


@dataclass(frozen=True)
class PBNode:
    """A dag-pb node: ordered links plus opaque data (a UnixFS message here)."""

    links: tuple[PBLink, ...] = ()
    data: bytes | None = None

    def encode(self) -> bytes:
        """Canonical bytes: every link, then the data field if present."""
        out = bytearray()
        for link in self.links:
            out += _len_field(2, link.encode())
        if self.data is not None:
            out += _len_field(1, self.data)
        return bytes(out)

    @classmethod
    def decode(cls, block: bytes) -> PBNode:
        """Parse a dag-pb block; DagPBError if it is not one."""
        links: list[PBLink] = []
        data: bytes | None = None
        for field_no, wire, value in _fields(block, "dag-pb node"):
            if field_no == 2 and wire == _LEN:
                links.append(_decode_link(value))
            elif field_no == 1 and wire == _LEN:
                data = value
            else:
                raise DagPBError(f"malformed dag-pb node: unexpected field {field_no}")
        return cls(tuple(links), data)


def _decode_link(payload: bytes) -> PBLink:
    cid: CID | None = None
    name = ""
    tsize = 0
    for field_no, wire, value in _fields(payload, "dag-pb link"):
        if field_no == 1 and wire == _LEN:
            cid = CID.from_bytes(value)
        elif field_no == 2 and wire == _LEN:
            try:
                name = value.decode()
            except UnicodeDecodeError:
                raise DagPBError("malformed dag-pb link: name is not UTF-8") from None
        elif field_no == 3 and wire == _VARINT:
            tsize = value
        else:
            raise DagPBError(f"malformed dag-pb link: unexpected field {field_no}")
    if cid is None:
        raise DagPBError("malformed dag-pb link: no Hash")
    return PBLink(cid, name, tsize)


@dataclass(frozen=True)
class UnixFSData:
    """The UnixFS message carried in a dag-pb node's Data field."""

    type: int
    data: bytes | None = None
    filesize: int | None = None
    blocksizes: tuple[int, ...] = field(default_factory=tuple)

    def encode(self) -> bytes:
        """Kubo's field order: Type, Data, filesize, blocksizes (unpacked)."""
        out = bytearray(_uint_field(1, self.type))
        if self.data is not None:
            out += _len_field(2, self.data)
        if self.filesize is not None:
            out += _uint_field(3, self.filesize)
        for size in self.blocksizes:
            out += _uint_field(4, size)
        return bytes(out)

    @classmethod
    def decode(cls, payload: bytes) -> UnixFSData:
        """Parse a UnixFS message, ignoring mode/mtime/fanout fields we do not use."""
        type_: int | None = None
        data: bytes | None = None
        filesize: int | None = None
        blocksizes: list[int] = []
        for field_no, wire, value in _fields(payload, "UnixFS data"):
            if field_no == 1 and wire == _VARINT:
                type_ = value
            elif field_no == 2 and wire == _LEN:
                data = value
            elif field_no == 3 and wire == _VARINT:
                filesize = value
            elif field_no == 4 and wire == _VARINT:
                blocksizes.append(value)
            elif field_no == 4 and wire == _LEN:  # packed encoding from other writers
                pos = 0
                while pos < len(value):
                    size, pos = decode_varint(value, pos)
                    blocksizes.append(size)
            # Fields 5-8 (hashType, fanout, mode, mtime) do not change file bytes.
        if type_ is None:
            raise DagPBError("malformed UnixFS data: no Type")
        return cls(type_, data, filesize, tuple(blocksizes))
