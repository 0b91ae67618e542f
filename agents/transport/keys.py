"""Transport key pairs (Curve25519, as ZeroMQ CURVE uses them) and their files.

The public key goes on-chain (ProviderDirectory, as bytes32) under the
provider's staked address; the secret key never leaves the operator's
machine: it lives in a file readable by its owner only.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import zmq
from zmq.utils import z85

from agents.errors import TesseraError


@dataclass(frozen=True)
class TransportKey:
    """A CURVE key pair, Z85-encoded as libzmq takes it (40 characters each)."""

    public: bytes
    secret: bytes

    @property
    def public_raw(self) -> bytes:
        """The 32 raw bytes of the public key (what goes on-chain)."""
        return z85.decode(self.public)

    @classmethod
    def generate(cls) -> TransportKey:
        """A fresh key pair."""
        public, secret = zmq.curve_keypair()
        return cls(public, secret)


def public_from_raw(raw: bytes) -> bytes:
    """Z85 of a 32-byte public key read from the chain."""
    if len(raw) != 32:
        raise TesseraError(f"a transport key is 32 bytes, got {len(raw)}")
    return z85.encode(raw)


def save_key(key: TransportKey, path: Path) -> None:
    """Write the key pair to `path`, readable by the owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"public": key.public.decode(), "secret": key.secret.decode()}, f)


def load_or_create_key(path: Path) -> TransportKey:
    """The key pair in `path`, made (and saved) if the file does not exist."""
    if not path.exists():
        key = TransportKey.generate()
        save_key(key, path)
        return key
    try:
        data = json.loads(path.read_text())
        key = TransportKey(data["public"].encode(), data["secret"].encode())
        if len(key.public) != 40 or len(key.secret) != 40:
            raise ValueError("bad length")
        if zmq.curve_public(key.secret) != key.public:
            raise ValueError("public key does not match the secret key")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TesseraError(f"transport key file {path} is unusable: {exc}") from None
    return key
