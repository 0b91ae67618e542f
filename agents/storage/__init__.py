"""Tessera's content store: CIDs byte-identical to Kubo's, on disk or over a node's RPC.

`open_store()` picks the backend from the environment; `compute_cid` hashes
without storing (`--only-hash`). Every backend verifies every read against
the CID it asked for.
"""

from __future__ import annotations

import os
from pathlib import Path

from agents.storage.base import ContentStore, canonical_json
from agents.storage.car import CARError
from agents.storage.config import open_store
from agents.storage.embedded import EmbeddedStore
from agents.storage.errors import (
    CIDError,
    ContentNotFound,
    IntegrityError,
    StoreError,
    StoreUnreachable,
)
from agents.storage.kubo import KuboStore
from agents.storage.multiformats import CID, parse_cid
from agents.storage.unixfs import bytes_chunks, import_file, import_tree


def compute_cid(data: bytes | str | os.PathLike, *, cid_version: int = 1) -> str:
    """The CID `ipfs add` would give bytes, a file or a folder; nothing is stored.

    A `str` or path is read from disk (streaming; folders recursively, as
    `ipfs add -r`); `bytes` are hashed as a file's content.
    """
    if isinstance(data, bytes | bytearray | memoryview):
        return str(import_file(bytes_chunks(bytes(data)), cid_version=cid_version).cid)
    return str(import_tree(Path(data), cid_version=cid_version).cid)


def validate_cid(text: str) -> str:
    """Canonical text of a CID (v1 base32, v0 base58); CIDError if `text` is not one."""
    return str(parse_cid(text))


__all__ = [
    "CID",
    "CARError",
    "CIDError",
    "ContentNotFound",
    "ContentStore",
    "EmbeddedStore",
    "IntegrityError",
    "KuboStore",
    "StoreError",
    "StoreUnreachable",
    "canonical_json",
    "compute_cid",
    "open_store",
    "parse_cid",
    "validate_cid",
]
