"""Errors of the content store, each a one-line `TesseraError`."""

from __future__ import annotations

from agents.errors import TesseraError


class StoreError(TesseraError):
    """A content-store operation failed (bad input, unsupported content, node error)."""


class CIDError(StoreError):
    """A string or byte sequence is not a valid CID."""


class ContentNotFound(StoreError):
    """The store holds no block for a CID."""


class IntegrityError(StoreError):
    """Bytes read for a CID do not hash to that CID (tampered or truncated)."""


class StoreUnreachable(StoreError):
    """The IPFS node's RPC API did not answer (after retries)."""
