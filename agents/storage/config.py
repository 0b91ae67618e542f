"""Which store to use: `open_store` reads a spec or the environment.

- `TESSERA_IPFS_API` (a multiaddr `/ip4/H/tcp/P` or an http URL) selects the
  Kubo RPC backend;
- otherwise the embedded store lives at `TESSERA_STORE_DIR`, or
  `~/.tessera/blocks`.
"""

from __future__ import annotations

import os
from pathlib import Path

from agents.storage.base import ContentStore

DEFAULT_STORE_DIR = Path("~/.tessera/blocks")


def _looks_like_api(spec: str) -> bool:
    return spec.startswith(("http://", "https://", "/ip4/", "/ip6/", "/dns/", "/dns4/", "/dns6/"))


def resolve_store_spec(spec: str | os.PathLike | None = None) -> str:
    """The concrete spec `open_store(spec)` would use (to hand to another process)."""
    if spec is not None and os.fspath(spec):
        return os.fspath(spec)
    api = os.environ.get("TESSERA_IPFS_API", "").strip()
    if api:
        return api
    folder = os.environ.get("TESSERA_STORE_DIR", "").strip()
    return folder or str(DEFAULT_STORE_DIR)


def open_store(spec: str | os.PathLike | None = None) -> ContentStore:
    """Open the store a spec names.

    `spec` is an API address (multiaddr or URL) for a Kubo node, or a folder
    for the embedded store; None reads TESSERA_IPFS_API, then
    TESSERA_STORE_DIR, then falls back to ~/.tessera/blocks.
    """
    from agents.storage.embedded import EmbeddedStore
    from agents.storage.kubo import KuboStore

    if spec is None:
        api = os.environ.get("TESSERA_IPFS_API", "").strip()
        if api:
            return KuboStore(api)
        folder = os.environ.get("TESSERA_STORE_DIR", "").strip()
        return EmbeddedStore(Path(folder) if folder else DEFAULT_STORE_DIR)
    text = os.fspath(spec)
    if _looks_like_api(text):
        return KuboStore(text)
    return EmbeddedStore(Path(text))
