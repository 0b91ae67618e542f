"""CIDs, multihashes, varints and multibase text, in pure Python.

Only what Tessera's content needs: CIDv0 and CIDv1, the codecs `raw` and
`dag-pb` (plus any other codec carried through untouched), sha2-256 and
identity multihashes, and the base32 / base58btc / base16 multibase texts that
IPFS nodes print. No I/O.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from agents.storage.errors import CIDError, IntegrityError

RAW = 0x55
DAG_PB = 0x70
DAG_CBOR = 0x71
SHA2_256 = 0x12
IDENTITY = 0x00

CODEC_NAMES = {RAW: "raw", DAG_PB: "dag-pb", DAG_CBOR: "dag-cbor"}

_B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58_ALPHABET)}


def encode_varint(value: int) -> bytes:
    """Unsigned LEB128, as used by multiformats and protobuf."""
    if value < 0:
        raise ValueError("varint must be non-negative")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def decode_varint(data: bytes | memoryview, offset: int = 0) -> tuple[int, int]:
    """Read an unsigned varint at `offset`; return (value, offset after it).

    Raises ValueError on a truncated or over-long (>9 bytes) varint.
    """
    value = 0
    shift = 0
    pos = offset
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift >= 63:
            raise ValueError("varint too long")


def b58encode(data: bytes) -> str:
    """Bitcoin base58 (the alphabet of CIDv0)."""
    zeros = len(data) - len(data.lstrip(b"\0"))
    num = int.from_bytes(data, "big")
    chars = []
    while num:
        num, rem = divmod(num, 58)
        chars.append(_B58_ALPHABET[rem])
    return "1" * zeros + "".join(reversed(chars))


def b58decode(text: str) -> bytes:
    """Inverse of `b58encode`; ValueError on a character outside the alphabet."""
    num = 0
    for c in text:
        if c not in _B58_INDEX:
            raise ValueError(f"invalid base58 character {c!r}")
        num = num * 58 + _B58_INDEX[c]
    zeros = len(text) - len(text.lstrip("1"))
    body = num.to_bytes((num.bit_length() + 7) // 8, "big") if num else b""
    return b"\0" * zeros + body


def b32encode(data: bytes) -> str:
    """RFC 4648 base32, lower case, no padding (multibase `b`)."""
    return base64.b32encode(data).decode().rstrip("=").lower()


def b32decode(text: str) -> bytes:
    """Inverse of `b32encode` (accepts either case)."""
    text = text.upper()
    return base64.b32decode(text + "=" * (-len(text) % 8))


def multihash(data: bytes, code: int = SHA2_256) -> bytes:
    """The multihash of `data` (sha2-256 unless `code` says identity)."""
    if code == SHA2_256:
        return b"\x12\x20" + hashlib.sha256(data).digest()
    if code == IDENTITY:
        return encode_varint(IDENTITY) + encode_varint(len(data)) + data
    raise ValueError(f"unsupported multihash code 0x{code:x}")


@dataclass(frozen=True)
class CID:
    """A parsed CID. `str(cid)` is base58btc for v0 and base32 for v1."""

    version: int
    codec: int
    mh: bytes

    @property
    def hash_code(self) -> int:
        """The multihash function code (0x12 sha2-256, 0x00 identity)."""
        return decode_varint(self.mh)[0]

    @property
    def digest(self) -> bytes:
        """The multihash digest bytes."""
        _, pos = decode_varint(self.mh)
        _, pos = decode_varint(self.mh, pos)
        return self.mh[pos:]

    def to_bytes(self) -> bytes:
        """Binary CID (as stored in dag-pb links and CAR sections)."""
        if self.version == 0:
            return self.mh
        return encode_varint(1) + encode_varint(self.codec) + self.mh

    def encode(self) -> str:
        """Canonical text: base58btc for v0, multibase base32 (`b…`) for v1."""
        if self.version == 0:
            return b58encode(self.mh)
        return "b" + b32encode(self.to_bytes())

    def __str__(self) -> str:
        return self.encode()

    def to_v1(self) -> CID:
        """The same content as a CIDv1 (v0 is always dag-pb + sha2-256)."""
        return CID(1, self.codec, self.mh) if self.version == 0 else self

    def to_v0(self) -> CID:
        """The same content as a CIDv0; only dag-pb + sha2-256 can be v0."""
        if self.version == 0:
            return self
        if self.codec != DAG_PB or self.hash_code != SHA2_256:
            raise CIDError(f"{self} cannot be expressed as CIDv0 (needs dag-pb and sha2-256)")
        return CID(0, DAG_PB, self.mh)

    def verify(self, block: bytes) -> None:
        """Raise IntegrityError unless `block` hashes to this CID."""
        code = self.hash_code
        if code == SHA2_256:
            ok = hashlib.sha256(block).digest() == self.digest
        elif code == IDENTITY:
            ok = bytes(block) == self.digest
        else:
            raise IntegrityError(f"{self}: cannot verify multihash code 0x{code:x}")
        if not ok:
            raise IntegrityError(
                f"block {self} is corrupt: its {len(block)} bytes do not hash to the CID"
            )

    @classmethod
    def for_block(cls, block: bytes, codec: int, version: int = 1) -> CID:
        """The CID of a block under `codec` (sha2-256)."""
        if version == 0 and codec != DAG_PB:
            raise CIDError("CIDv0 is only defined for dag-pb blocks")
        return cls(version, codec, multihash(block))

    @classmethod
    def from_bytes(cls, data: bytes) -> CID:
        """Parse a binary CID that spans exactly `data`."""
        cid, end = cls.read(data, 0)
        if end != len(data):
            raise CIDError(f"binary CID has {len(data) - end} trailing bytes")
        return cid

    @classmethod
    def read(cls, data: bytes | memoryview, offset: int = 0) -> tuple[CID, int]:
        """Parse a binary CID at `offset`; return (cid, offset after it)."""
        try:
            if len(data) - offset >= 34 and data[offset] == 0x12 and data[offset + 1] == 0x20:
                return cls(0, DAG_PB, bytes(data[offset : offset + 34])), offset + 34
            version, pos = decode_varint(data, offset)
            if version != 1:
                raise CIDError(f"unsupported CID version {version}")
            codec, pos = decode_varint(data, pos)
            mh_start = pos
            _code, pos = decode_varint(data, pos)
            length, pos = decode_varint(data, pos)
        except ValueError as exc:
            raise CIDError(f"malformed binary CID: {exc}") from None
        end = pos + length
        if end > len(data):
            raise CIDError("malformed binary CID: multihash digest is truncated")
        return cls(1, codec, bytes(data[mh_start:end])), end


def parse_cid(value: str | CID) -> CID:
    """Parse CID text (v0 `Qm…`, or v1 in multibase b/B/z/f/F); CIDError if it is not one."""
    if isinstance(value, CID):
        return value
    if not isinstance(value, str) or not value:
        raise CIDError(f"not a CID: {value!r}")
    text = value.strip()
    try:
        if len(text) == 46 and text.startswith("Qm"):
            raw = b58decode(text)
            if len(raw) != 34 or raw[:2] != b"\x12\x20":
                raise ValueError("bad CIDv0 multihash")
            return CID(0, DAG_PB, raw)
        prefix, body = text[0], text[1:]
        if prefix in "bB":
            raw = b32decode(body)
        elif prefix == "z":
            raw = b58decode(body)
        elif prefix in "fF":
            raw = bytes.fromhex(body)
        else:
            raise ValueError(f"unknown multibase prefix {prefix!r}")
        if not raw or raw[0] != 1:
            raise ValueError("not a CIDv1")
        cid = CID.from_bytes(raw)
        code = cid.hash_code
        if code == SHA2_256 and len(cid.digest) != 32:
            raise ValueError("sha2-256 digest must be 32 bytes")
        return cid
    except (ValueError, CIDError, IndexError) as exc:
        raise CIDError(f"not a CID: {value!r} ({exc})") from None
