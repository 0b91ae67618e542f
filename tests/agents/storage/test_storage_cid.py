"""Pure CID computation: known vectors, layout shape, parsing, streaming."""

from __future__ import annotations

import io
import random

import pytest

from agents.storage import CIDError, compute_cid, parse_cid
from agents.storage.dagpb import PBNode, UnixFSData
from agents.storage.multiformats import CID, DAG_PB, RAW, b58decode, b58encode
from agents.storage.unixfs import (
    CHUNK_SIZE,
    MAX_LINKS,
    bytes_chunks,
    import_file,
    read_chunks,
)

HELLO = b"hello world\n"
HELLO_V0 = "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"
HELLO_V1 = "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"


def test_hello_world_matches_kubo_vectors():
    assert compute_cid(HELLO) == HELLO_V1
    assert compute_cid(HELLO, cid_version=0) == HELLO_V0


def test_empty_file_matches_kubo_vectors():
    assert compute_cid(b"") == "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
    assert compute_cid(b"", cid_version=0) == "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"


def test_file_path_and_bytes_give_the_same_cid(tmp_path):
    data = random.Random(1).randbytes(3 * CHUNK_SIZE + 5)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    assert compute_cid(path) == compute_cid(data)
    assert compute_cid(str(path), cid_version=0) == compute_cid(data, cid_version=0)


def _collect(data: bytes, cid_version: int = 1):
    blocks: dict[CID, bytes] = {}
    root = import_file(
        bytes_chunks(data), lambda c, b: blocks.__setitem__(c, b), cid_version=cid_version
    )
    return root, blocks


def test_one_chunk_is_its_own_root_and_two_chunks_get_a_parent():
    root, blocks = _collect(b"x" * CHUNK_SIZE)
    assert root.cid.codec == RAW and len(blocks) == 1
    root, blocks = _collect(bytes(range(256)) * (CHUNK_SIZE // 256) + b"!")
    node = PBNode.decode(blocks[root.cid])
    unixfs = UnixFSData.decode(node.data)
    assert root.cid.codec == DAG_PB
    assert [link.name for link in node.links] == ["", ""]
    assert unixfs.blocksizes == (CHUNK_SIZE, 1) and unixfs.filesize == CHUNK_SIZE + 1
    assert root.size == CHUNK_SIZE + 1


def test_over_174_chunks_needs_a_second_tree_level():
    # Small chunks are used only to reach the shape cheaply; the layout rule
    # is the same one Kubo applies to 256 KiB chunks (checked against the
    # daemon in test_storage_interop.py).
    chunks = [i.to_bytes(4, "big") for i in range(MAX_LINKS + 1)]
    blocks: dict[CID, bytes] = {}
    root = import_file(chunks, lambda c, b: blocks.__setitem__(c, b))
    top = PBNode.decode(blocks[root.cid])
    assert len(top.links) == 2
    full, rest = (PBNode.decode(blocks[link.cid]) for link in top.links)
    assert len(full.links) == MAX_LINKS
    assert len(rest.links) == 1  # Kubo keeps the single leaf under its own internal node
    assert root.size == 4 * (MAX_LINKS + 1)
    assert root.tsize == sum(len(b) for b in blocks.values())


def test_read_chunks_refills_short_reads():
    class Trickle(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self.data = data

        def readable(self) -> bool:
            return True

        def read(self, n: int = -1) -> bytes:
            out, self.data = self.data[: min(n, 1000)], self.data[min(n, 1000) :]
            return out

    data = random.Random(2).randbytes(CHUNK_SIZE * 2 + 7)
    assert [len(c) for c in read_chunks(Trickle(data))] == [CHUNK_SIZE, CHUNK_SIZE, 7]
    assert compute_cid(data) == str(import_file(read_chunks(Trickle(data))).cid)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "hello",
        "Qm123",
        "bafy!!!",
        "zzzz",
        "b" + "a" * 10,
        "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5O",
        42,
    ],
)
def test_a_string_that_is_not_a_cid_is_a_cid_error(text):
    with pytest.raises(CIDError, match="not a CID"):
        parse_cid(text)


def test_cid_text_forms_round_trip():
    v1 = parse_cid(HELLO_V1)
    assert str(v1) == HELLO_V1 and v1.codec == RAW
    assert parse_cid("z" + b58encode(v1.to_bytes())) == v1
    assert parse_cid("f" + v1.to_bytes().hex()) == v1
    assert parse_cid(HELLO_V1.upper()[0] + HELLO_V1.upper()[1:]) == v1
    v0 = parse_cid(HELLO_V0)
    assert v0.to_v1().to_v0() == v0
    assert str(v0.to_v1()).startswith("bafybei")
    with pytest.raises(CIDError, match="CIDv0"):
        v1.to_v0()
    assert b58decode(b58encode(b"\0\0abc")) == b"\0\0abc"
