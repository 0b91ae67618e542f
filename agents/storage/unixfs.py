"""UnixFS files and directories exactly as Kubo's `ipfs add` lays them out.

Files are cut into 256 KiB chunks and arranged in Kubo's *balanced* layout
with at most 174 links per node: a file of one chunk is that chunk's block; a
longer one gets internal nodes filled left to right, and a tree grows one
level when its root is full. CIDv1 (the default) stores chunks as `raw`
blocks; CIDv0 wraps each chunk in a dag-pb UnixFS `File` node. Directories
are dag-pb nodes whose links are sorted by name.

Building is streaming: the only state kept is at most 174 links per tree
level, so memory stays flat whatever the file size. Blocks are handed to a
`put(cid, block)` callback as soon as they exist (a no-op for `--only-hash`).
Reading walks the DAG through a `get_block(cid)` callback that must return
bytes already verified against the CID. No I/O here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from agents.storage.dagpb import (
    UNIXFS_DIRECTORY,
    UNIXFS_FILE,
    UNIXFS_HAMT_SHARD,
    UNIXFS_RAW,
    DagPBError,
    PBLink,
    PBNode,
    UnixFSData,
)
from agents.storage.errors import StoreError
from agents.storage.multiformats import CID, DAG_PB, RAW

CHUNK_SIZE = 256 * 1024
MAX_LINKS = 174
# Kubo switches a directory to a HAMT shard once the estimated size of its
# links (name bytes + CID bytes) exceeds 256 KiB; we do not build HAMTs, so we
# refuse such directories rather than produce a CID Kubo would not.
HAMT_THRESHOLD = 256 * 1024

PutBlock = Callable[[CID, bytes], None]
GetBlock = Callable[[CID], bytes]


@dataclass(frozen=True)
class DagEntry:
    """The root of an imported file or directory.

    `size` is the file's byte length (for a directory, the sum of its files);
    `tsize` is the cumulative encoded size of every block in the DAG, the
    number a parent link records.
    """

    cid: CID
    size: int
    tsize: int


def _discard(_cid: CID, _block: bytes) -> None:
    """The `put` of --only-hash: blocks are hashed and dropped."""


def open_input(path: Path) -> BinaryIO:
    """Open a file for reading; StoreError (one line, naming it) if that fails."""
    try:
        return open(path, "rb")
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {exc.strerror}") from None


def read_chunks(stream: BinaryIO, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """Fixed-size chunks of a binary stream (short reads from pipes are refilled)."""
    while True:
        chunk = stream.read(chunk_size)
        if not chunk:
            return
        while len(chunk) < chunk_size:
            more = stream.read(chunk_size - len(chunk))
            if not more:
                break
            chunk += more
        yield chunk
        if len(chunk) < chunk_size:
            return


def bytes_chunks(data: bytes, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """Fixed-size chunks of an in-memory byte string."""
    view = memoryview(data)
    for start in range(0, len(data), chunk_size):
        yield bytes(view[start : start + chunk_size])


def _leaf(chunk: bytes, cid_version: int, put: PutBlock) -> DagEntry:
    if cid_version == 1:
        cid = CID.for_block(chunk, RAW, 1)
        put(cid, chunk)
        return DagEntry(cid, len(chunk), len(chunk))
    block = PBNode(data=UnixFSData(UNIXFS_FILE, chunk, len(chunk)).encode()).encode()
    cid = CID.for_block(block, DAG_PB, 0)
    put(cid, block)
    return DagEntry(cid, len(chunk), len(block))


def _internal(children: list[DagEntry], cid_version: int, put: PutBlock) -> DagEntry:
    unixfs = UnixFSData(
        UNIXFS_FILE,
        filesize=sum(c.size for c in children),
        blocksizes=tuple(c.size for c in children),
    )
    block = PBNode(
        links=tuple(PBLink(c.cid, "", c.tsize) for c in children), data=unixfs.encode()
    ).encode()
    cid = CID.for_block(block, DAG_PB, cid_version)
    put(cid, block)
    return DagEntry(cid, unixfs.filesize or 0, len(block) + sum(c.tsize for c in children))


def import_file(
    chunks: Iterable[bytes], put: PutBlock = _discard, *, cid_version: int = 1
) -> DagEntry:
    """Build a file's balanced DAG from its chunks; return its root.

    `levels[i]` holds the finished, not yet parented nodes of depth i. A level
    is folded into a parent only when it is full and another node must join
    it, or at the end; this reproduces Kubo's balanced builder node for node.
    """
    if cid_version not in (0, 1):
        raise StoreError(f"cid version must be 0 or 1, got {cid_version}")
    levels: list[list[DagEntry]] = [[]]

    def push(depth: int, entry: DagEntry) -> None:
        if depth == len(levels):
            levels.append([])
        if len(levels[depth]) == MAX_LINKS:
            push(depth + 1, _internal(levels[depth], cid_version, put))
            levels[depth] = []
        levels[depth].append(entry)

    any_chunk = False
    for chunk in chunks:
        any_chunk = True
        push(0, _leaf(chunk, cid_version, put))
    if not any_chunk:
        return _empty_file(cid_version, put)
    depth = 0
    while True:
        top = depth == len(levels) - 1
        if top and len(levels[depth]) == 1:
            return levels[depth][0]
        node = _internal(levels[depth], cid_version, put)
        levels[depth] = []
        push(depth + 1, node)
        depth += 1


def _empty_file(cid_version: int, put: PutBlock) -> DagEntry:
    # Kubo's empty file: an empty raw block under raw leaves, else a File node
    # that records filesize 0 and carries no data.
    if cid_version == 1:
        cid = CID.for_block(b"", RAW, 1)
        put(cid, b"")
        return DagEntry(cid, 0, 0)
    block = PBNode(data=UnixFSData(UNIXFS_FILE, filesize=0).encode()).encode()
    cid = CID.for_block(block, DAG_PB, 0)
    put(cid, block)
    return DagEntry(cid, 0, len(block))


def import_directory(
    entries: Iterable[tuple[str, DagEntry]], put: PutBlock = _discard, *, cid_version: int = 1
) -> DagEntry:
    """Build a basic (non-sharded) UnixFS directory over named children."""
    items = sorted(entries, key=lambda item: item[0].encode())
    names = [name for name, _ in items]
    if len(set(names)) != len(names):
        raise StoreError("a directory cannot hold two entries with the same name")
    for name in names:
        if not name or "/" in name or name in (".", ".."):
            raise StoreError(f"invalid directory entry name {name!r}")
    estimate = sum(len(n.encode()) + len(e.cid.to_bytes()) for n, e in items)
    if estimate > HAMT_THRESHOLD:
        raise StoreError(
            f"directory with {len(items)} entries is too large for a basic UnixFS directory "
            "(Kubo would shard it as a HAMT, which Tessera does not build)"
        )
    block = PBNode(
        links=tuple(PBLink(e.cid, n, e.tsize) for n, e in items),
        data=UnixFSData(UNIXFS_DIRECTORY).encode(),
    ).encode()
    cid = CID.for_block(block, DAG_PB, cid_version)
    put(cid, block)
    return DagEntry(cid, sum(e.size for _, e in items), len(block) + sum(e.tsize for _, e in items))


def tree_entries(path: Path) -> list[Path]:
    """Children of a folder as `ipfs add -r` takes them: sorted, hidden ones skipped.

    Symlinks and special files are refused, because Kubo would store a symlink
    node for them and the content would not be what the folder shows.
    """
    children = []
    for child in sorted(path.iterdir(), key=lambda p: p.name.encode()):
        if child.name.startswith("."):
            continue
        if child.is_symlink():
            raise StoreError(f"symlinks are not supported: {child}")
        if not (child.is_file() or child.is_dir()):
            raise StoreError(f"not a regular file or folder: {child}")
        children.append(child)
    return children


def import_tree(path: Path, put: PutBlock = _discard, *, cid_version: int = 1) -> DagEntry:
    """Import a file, or a folder recursively, from disk (streaming each file)."""
    path = Path(path)
    if path.is_symlink() and path.is_dir():
        raise StoreError(f"symlinks are not supported: {path}")
    if path.is_dir():
        entries = [
            (child.name, import_tree(child, put, cid_version=cid_version))
            for child in tree_entries(path)
        ]
        return import_directory(entries, put, cid_version=cid_version)
    if not path.is_file():
        raise StoreError(f"no such file or folder: {path}")
    with open_input(path) as stream:
        return import_file(read_chunks(stream), put, cid_version=cid_version)


# --- reading -------------------------------------------------------------------


def decode_unixfs(cid: CID, block: bytes) -> tuple[PBNode, UnixFSData]:
    """Decode a dag-pb block and its UnixFS data; StoreError naming the CID if not UnixFS."""
    try:
        node = PBNode.decode(block)
        if node.data is None:
            raise DagPBError("dag-pb node has no UnixFS data")
        return node, UnixFSData.decode(node.data)
    except DagPBError as exc:
        raise StoreError(f"{cid} is not a UnixFS node: {exc}") from None


@dataclass(frozen=True)
class RawLeaf:
    """A raw leaf of a file, not yet fetched: its CID and its declared length."""

    cid: CID
    size: int


def iter_file_plan(cid: CID, get_block: GetBlock) -> Iterator[bytes | RawLeaf]:
    """A file's content in order, as verified inline bytes or raw leaves to fetch.

    Internal (dag-pb) nodes are read through `get_block`; raw leaves whose
    length the parent declares are left to the caller, so a remote backend can
    stream them in one request and verify each against its CID.
    """
    if cid.codec == RAW:
        yield get_block(cid)
        return
    if cid.codec != DAG_PB:
        raise StoreError(f"{cid} is not a file (codec 0x{cid.codec:x})")
    node, unixfs = decode_unixfs(cid, get_block(cid))
    if unixfs.type == UNIXFS_DIRECTORY or unixfs.type == UNIXFS_HAMT_SHARD:
        raise StoreError(f"{cid} is a directory, not a file")
    if unixfs.type not in (UNIXFS_FILE, UNIXFS_RAW):
        raise StoreError(f"{cid} is not a file (UnixFS type {unixfs.type})")
    if node.links and len(unixfs.blocksizes) != len(node.links):
        raise StoreError(f"{cid} has {len(node.links)} links but {len(unixfs.blocksizes)} sizes")
    declared = len(unixfs.data or b"") + sum(unixfs.blocksizes)
    if unixfs.filesize is not None and declared != unixfs.filesize:
        raise StoreError(f"{cid} declares {unixfs.filesize} bytes but its parts add to {declared}")
    if unixfs.data:
        yield unixfs.data
    for link, size in zip(node.links, unixfs.blocksizes, strict=True):
        if link.cid.codec == RAW:
            yield RawLeaf(link.cid, size)
        else:
            yield from iter_file_plan(link.cid, get_block)


def iter_file(cid: CID, get_block: GetBlock) -> Iterator[bytes]:
    """Yield a UnixFS file's bytes in order, block by block (flat memory).

    Each block comes from `get_block`, which verifies it. The lengths the
    nodes declare are checked too, so a DAG that lies about sizes is an error.
    """
    for piece in iter_file_plan(cid, get_block):
        if isinstance(piece, RawLeaf):
            data = get_block(piece.cid)
            if len(data) != piece.size:
                raise StoreError(
                    f"leaf {piece.cid} holds {len(data)} bytes, its parent declares {piece.size}"
                )
            yield data
        else:
            yield piece


def is_directory(cid: CID, get_block: GetBlock) -> bool:
    """True when `cid` is a UnixFS directory node."""
    if cid.codec != DAG_PB:
        return False
    _, unixfs = decode_unixfs(cid, get_block(cid))
    return unixfs.type in (UNIXFS_DIRECTORY, UNIXFS_HAMT_SHARD)


def read_directory(cid: CID, get_block: GetBlock) -> list[PBLink]:
    """The links of a basic UnixFS directory; StoreError if `cid` is not one."""
    if cid.codec != DAG_PB:
        raise StoreError(f"{cid} is not a directory")
    node, unixfs = decode_unixfs(cid, get_block(cid))
    if unixfs.type == UNIXFS_HAMT_SHARD:
        raise StoreError(f"{cid} is a HAMT-sharded directory, which Tessera does not read")
    if unixfs.type != UNIXFS_DIRECTORY:
        raise StoreError(f"{cid} is not a directory")
    for link in node.links:
        if not link.name or "/" in link.name or link.name in (".", ".."):
            raise StoreError(f"directory {cid} has an unsafe entry name {link.name!r}")
    return list(node.links)


def file_size(cid: CID, get_block: GetBlock) -> int:
    """A file's byte length from its root block alone."""
    if cid.codec == RAW:
        return len(get_block(cid))
    _, unixfs = decode_unixfs(cid, get_block(cid))
    if unixfs.filesize is not None:
        return unixfs.filesize
    return len(unixfs.data or b"")


def child_links(cid: CID, block: bytes) -> list[CID]:
    """The CIDs a block links to (dag-pb links; raw and other codecs have none)."""
    if cid.codec != DAG_PB:
        return []
    try:
        return [link.cid for link in PBNode.decode(block).links]
    except DagPBError as exc:
        raise StoreError(f"{cid} is not a valid dag-pb block: {exc}") from None


def write_tree(cid: CID, out: Path, get_block: GetBlock) -> None:
    """Write a file or a directory tree to `out` (atomically per file)."""
    out = Path(out)
    if is_directory(cid, get_block):
        out.mkdir(parents=True, exist_ok=True)
        for link in read_directory(cid, get_block):
            write_tree(link.cid, out / link.name, get_block)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tessera-partial-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            for piece in iter_file(cid, get_block):
                fh.write(piece)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
