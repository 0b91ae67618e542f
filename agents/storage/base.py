"""The `ContentStore` interface every backend implements, and the logic they share.

A backend supplies block primitives (`get_block` verified against the CID,
`put_block`, `has_block`) plus add/pin/gc; reading files and directories,
JSON documents and CAR export are built on those here, so every read of every
backend is verified block by block.
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from agents.storage.car import write_car
from agents.storage.errors import StoreError
from agents.storage.multiformats import CID, RAW, parse_cid
from agents.storage.unixfs import (
    child_links,
    file_size,
    is_directory,
    iter_file,
    read_directory,
    write_tree,
)

# Documents are small; a cap keeps a wrong CID (a checkpoint, say) from being
# read whole into memory just to find out it is not JSON.
MAX_JSON_BYTES = 64 << 20


def canonical_json(doc: dict | BaseModel) -> bytes:
    """Sorted keys, no whitespace, UTF-8: the same document always has the same CID."""
    if isinstance(doc, BaseModel):
        doc = doc.model_dump(mode="json")
    if not isinstance(doc, dict):
        raise StoreError(f"put_json needs a dict or a pydantic model, got {type(doc).__name__}")
    try:
        text = json.dumps(doc, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise StoreError(f"document is not JSON-serialisable: {exc}") from None
    return text.encode()


@dataclass(frozen=True)
class VerifyReport:
    """What a scrub found: blocks checked, and (CID, why) of each bad one."""

    checked: int
    bad: list[tuple[str, str]]


class ContentStore(ABC):
    """Content addressed by CID: files, directories, JSON documents, CAR archives."""

    # --- block primitives (backend-specific) --------------------------------------

    @abstractmethod
    def get_block(self, cid: CID) -> bytes:
        """The block's bytes, verified against `cid`; ContentNotFound / IntegrityError."""

    @abstractmethod
    def put_block(self, cid: CID, block: bytes) -> None:
        """Store one block after checking it hashes to `cid`."""

    @abstractmethod
    def has_block(self, cid: CID) -> bool:
        """Whether the block is held (not fetched from elsewhere)."""

    # --- adding ----------------------------------------------------------------------

    @abstractmethod
    def add_bytes(self, data: bytes, *, pin: bool = True) -> str:
        """Add bytes as a UnixFS file (CIDv1, raw leaves); return its CID."""

    @abstractmethod
    def add_file(self, path: str | os.PathLike, *, pin: bool = True, cid_version: int = 1) -> str:
        """Add a file from disk, streaming; return its CID (v1 base32, or v0 on request)."""

    @abstractmethod
    def add_dir(self, path: str | os.PathLike, *, pin: bool = True) -> str:
        """Add a folder recursively as a UnixFS directory (sorted, hidden entries skipped)."""

    # --- pinning ---------------------------------------------------------------------

    @abstractmethod
    def pin(self, cid: str) -> None:
        """Pin a whole DAG so `gc` keeps it; ContentNotFound if a block is missing."""

    @abstractmethod
    def unpin(self, cid: str) -> None:
        """Remove a pin; StoreError if `cid` is not pinned."""

    @abstractmethod
    def gc(self) -> int:
        """Remove every block no pin reaches; return how many were removed."""

    @abstractmethod
    def import_car(self, path: Path) -> list[str]:
        """Import a CARv1 (every block verified), pin its roots, return them."""

    # --- shared reading logic --------------------------------------------------------

    def has(self, cid: str) -> bool:
        """Whether the root block of `cid` is held by this store."""
        return self.has_block(parse_cid(cid))

    def cat_stream(self, cid: str) -> Iterator[bytes]:
        """A file's bytes in order, each block verified before it is yielded."""
        return iter_file(parse_cid(cid), self.get_block)

    def cat(self, cid: str) -> bytes:
        """A whole file, verified against `cid`."""
        return b"".join(self.cat_stream(cid))

    def get(self, cid: str, out: Path) -> None:
        """Write a file or a directory tree to `out`; on failure nothing is left there.

        A tree is written into a hidden sibling folder and renamed into place
        when complete, so a block that is missing or corrupt halfway leaves no
        partial folder. `out` must not exist yet, unless as an empty folder.
        """
        import shutil

        root = parse_cid(cid)
        out = Path(out)
        if not is_directory(root, self.get_block):
            write_tree(root, out, self.get_block)  # a single file is written atomically
            return
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise StoreError(f"{out} already exists: give a new path for the folder")
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = out.with_name(f".{out.name}.tessera-partial-{os.getpid()}")
        try:
            write_tree(root, staging, self.get_block)
            if out.exists():
                out.rmdir()
            os.replace(staging, out)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def verify(self) -> VerifyReport:
        """Re-hash every block held; backends that cannot enumerate blocks refuse."""
        raise StoreError(f"{type(self).__name__} cannot scrub its blocks: use the node's own tools")

    def remove_blocks(self, cids: list[str]) -> int:
        """Delete the named blocks; backends that cannot refuse."""
        raise StoreError(f"{type(self).__name__} cannot remove single blocks")

    def ls(self, cid: str) -> list[tuple[str, str, int]]:
        """(name, cid, size) of a directory's entries; size is bytes for a file,
        the cumulative DAG size for a subdirectory."""
        out = []
        for link in read_directory(parse_cid(cid), self.get_block):
            if is_directory(link.cid, self.get_block):
                size = link.tsize
            else:
                size = file_size(link.cid, self.get_block)
            out.append((link.name, str(link.cid), size))
        return out

    def put_json(self, doc: dict | BaseModel) -> str:
        """Store a document as canonical JSON bytes (a file); return its CID."""
        return self.add_bytes(canonical_json(doc))

    def get_json(self, cid: str) -> dict[str, Any]:
        """Load a JSON object stored by `put_json` (verified); StoreError if not JSON."""
        chunks = []
        total = 0
        for piece in self.cat_stream(cid):
            total += len(piece)
            if total > MAX_JSON_BYTES:
                raise StoreError(f"{cid} is over {MAX_JSON_BYTES} bytes: not a document")
            chunks.append(piece)
        try:
            doc = json.loads(b"".join(chunks))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise StoreError(f"{cid} is not a JSON document: {exc}") from None
        if not isinstance(doc, dict):
            raise StoreError(f"{cid} is JSON but not an object")
        return doc

    def walk(self, cid: str | CID) -> Iterator[tuple[CID, bytes]]:
        """Every block of a DAG once, depth-first in link order (the CAR order)."""
        root = parse_cid(cid)
        seen: set[bytes] = set()
        stack = [root]
        while stack:
            current = stack.pop()
            key = current.to_bytes()
            if key in seen:
                continue
            seen.add(key)
            block = self.get_block(current)
            yield current, block
            stack.extend(reversed(child_links(current, block)))

    def export_car(self, cid: str, out: Path) -> None:
        """Write the whole DAG of `cid` as a CARv1 file (atomically)."""
        root = parse_cid(cid)
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.partial-{os.getpid()}")
        try:
            with open(tmp, "wb") as fh:
                write_car(fh, [root], self.walk(root))
            os.replace(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)

    def missing_blocks(self, cid: str | CID) -> list[CID]:
        """Blocks of a DAG this store lacks (empty when the DAG is complete)."""
        missing: list[CID] = []
        stack = [parse_cid(cid)]
        seen: set[bytes] = set()
        while stack:
            current = stack.pop()
            if current.to_bytes() in seen:
                continue
            seen.add(current.to_bytes())
            if not self.has_block(current):
                missing.append(current)
                continue
            if current.codec != RAW:
                stack.extend(child_links(current, self.get_block(current)))
        return missing
