"""The embedded block store on a real folder: adds, reads, pins, gc, faults, CAR."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from agents.storage import (
    CARError,
    CIDError,
    ContentNotFound,
    EmbeddedStore,
    IntegrityError,
    KuboStore,
    StoreError,
    compute_cid,
    open_store,
    parse_cid,
)
from agents.storage.car import encode_header
from agents.storage.unixfs import CHUNK_SIZE


@pytest.fixture
def store(tmp_path):
    return EmbeddedStore(tmp_path / "blocks")


def _data(n: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(n)


def test_add_bytes_and_file_give_kubo_cids_and_read_back(store, tmp_path):
    data = _data(3 * CHUNK_SIZE + 11)
    cid = store.add_bytes(data)
    assert cid == compute_cid(data)
    assert store.cat(cid) == data
    assert b"".join(store.cat_stream(cid)) == data
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    assert store.add_file(path) == cid
    v0 = store.add_file(path, cid_version=0)
    assert v0 == compute_cid(data, cid_version=0) and v0.startswith("Qm")
    assert store.cat(v0) == data
    assert store.has(cid) and store.has(v0)


def test_directory_add_ls_and_get(store, tmp_path):
    src = tmp_path / "ds"
    (src / "sub").mkdir(parents=True)
    (src / "b.txt").write_bytes(b"bee\n")
    (src / "a.bin").write_bytes(_data(CHUNK_SIZE + 1))
    (src / "sub" / "c.txt").write_bytes(b"")
    (src / ".hidden").write_bytes(b"skipped like ipfs add -r")
    cid = store.add_dir(src)
    assert cid == compute_cid(src)
    names = [(name, size) for name, _, size in store.ls(cid)]
    assert names[:2] == [("a.bin", CHUNK_SIZE + 1), ("b.txt", 4)] and names[2][0] == "sub"
    out = tmp_path / "out"
    store.get(cid, out)
    assert (out / "a.bin").read_bytes() == (src / "a.bin").read_bytes()
    assert (out / "sub" / "c.txt").read_bytes() == b""
    assert not (out / ".hidden").exists()
    with pytest.raises(StoreError, match="is a directory"):
        store.cat(cid)


def test_json_documents_are_canonical(store):
    a = store.put_json({"b": 2, "a": [1, "é"]})
    b = store.put_json({"a": [1, "é"], "b": 2})
    assert a == b
    assert store.cat(a) == b'{"a":[1,"\\u00e9"],"b":2}'
    assert store.get_json(a) == {"a": [1, "é"], "b": 2}
    with pytest.raises(StoreError, match="not a JSON document"):
        store.get_json(store.add_bytes(b"\x00\x01binary"))


def test_gc_keeps_pinned_dags_and_removes_the_rest(store):
    kept = store.add_bytes(_data(2 * CHUNK_SIZE + 1, 1))
    dropped = store.add_bytes(_data(2 * CHUNK_SIZE + 1, 2), pin=False)
    unpinned = store.add_bytes(b"short lived")
    store.unpin(unpinned)
    with pytest.raises(StoreError, match="not pinned"):
        store.unpin(unpinned)
    assert store.gc() == 4 + 1  # dropped: 3 leaves + its root; unpinned: 1 leaf
    assert store.cat(kept) == _data(2 * CHUNK_SIZE + 1, 1)
    assert not store.has(dropped) and not store.has(unpinned)
    with pytest.raises(ContentNotFound, match=dropped):
        store.cat(dropped)
    assert store.gc() == 0


def test_pin_needs_the_whole_dag(store):
    cid = store.add_bytes(_data(2 * CHUNK_SIZE, 3), pin=False)
    leaf = next(c for c, _ in store.walk(cid) if c.codec == 0x55)
    store._block_path(leaf).unlink()
    with pytest.raises(ContentNotFound, match="cannot pin"):
        store.pin(cid)


def test_tampered_block_is_an_integrity_error_naming_the_cid(store):
    data = _data(2 * CHUNK_SIZE + 3, 4)
    cid = store.add_bytes(data)
    leaf = [c for c, _ in store.walk(cid)][1]
    path = store._block_path(leaf)
    raw = bytearray(path.read_bytes())
    raw[100] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(IntegrityError, match=str(leaf)):
        store.cat(cid)
    path.write_bytes(bytes(raw[:1000]))  # truncated
    with pytest.raises(IntegrityError, match=str(leaf)):
        b"".join(store.cat_stream(cid))
    with pytest.raises(IntegrityError, match=str(leaf)):
        store.export_car(cid, store.root / "x.car")


def test_not_a_cid_is_a_cid_error(store):
    for bad in ("not-a-cid", "Qmshort", ""):
        with pytest.raises(CIDError):
            store.cat(bad)
        with pytest.raises(CIDError):
            store.has(bad)


def test_crash_mid_add_leaves_no_half_block(tmp_path):
    """Kill a process while it adds a large file: every block left must verify."""
    root = tmp_path / "blocks"
    script = textwrap.dedent(
        f"""
        import random, sys
        from agents.storage import EmbeddedStore
        from agents.storage.unixfs import bytes_chunks, import_file
        store = EmbeddedStore({str(root)!r})
        rng = random.Random(5)
        def chunks():
            print("started", flush=True)
            while True:
                yield rng.randbytes(262144)
        import_file(chunks(), store.put_block)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert proc.stdout.readline().strip() == b"started"
        time.sleep(0.5)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    store = EmbeddedStore(root)
    block_files = list((root / "blocks").rglob("*"))
    block_files = [p for p in block_files if p.is_file()]
    assert block_files, "the writer should have stored some blocks before it was killed"
    for path in block_files:
        store.get_block(parse_cid(path.name))  # raises IntegrityError on a partial block
    assert store.gc() == len(block_files)  # nothing pinned: all unreachable
    assert list((root / "tmp").iterdir()) == []


def test_car_round_trip_between_embedded_stores(store, tmp_path):
    src = tmp_path / "tree"
    src.mkdir()
    (src / "x.bin").write_bytes(_data(3 * CHUNK_SIZE, 6))
    (src / "y.bin").write_bytes(_data(3 * CHUNK_SIZE, 6))  # duplicate blocks: written once
    cid = store.add_dir(src)
    car = tmp_path / "tree.car"
    store.export_car(cid, car)
    other = EmbeddedStore(tmp_path / "other")
    assert other.import_car(car) == [cid]
    assert other.pins() == [cid]
    other.get(cid, tmp_path / "copy")
    assert (tmp_path / "copy" / "y.bin").read_bytes() == _data(3 * CHUNK_SIZE, 6)
    car2 = tmp_path / "again.car"
    other.export_car(cid, car2)
    assert car2.read_bytes() == car.read_bytes()


def test_truncated_or_corrupt_car_is_refused(store, tmp_path):
    cid = store.add_bytes(_data(2 * CHUNK_SIZE + 9, 7))
    car = tmp_path / "f.car"
    store.export_car(cid, car)
    raw = car.read_bytes()
    cut = tmp_path / "cut.car"
    cut.write_bytes(raw[: len(raw) - 1000])
    target = EmbeddedStore(tmp_path / "t")
    with pytest.raises(CARError, match="truncated at byte"):
        target.import_car(cut)
    assert target.pins() == []
    header_only = tmp_path / "header.car"
    header_only.write_bytes(raw[: 1 + len(encode_header([parse_cid(cid)]))])
    with pytest.raises(StoreError, match="does not hold the whole DAG"):
        target.import_car(header_only)
    flipped = bytearray(raw)
    flipped[-5] ^= 1
    bad = tmp_path / "bad.car"
    bad.write_bytes(bytes(flipped))
    with pytest.raises(IntegrityError, match="corrupt"):
        target.import_car(bad)
    garbage = tmp_path / "garbage.car"
    garbage.write_bytes(b"\x05hello")
    with pytest.raises(CARError, match="header is malformed"):
        target.import_car(garbage)
    empty = tmp_path / "empty.car"
    empty.write_bytes(b"")
    with pytest.raises(CARError, match="empty"):
        target.import_car(empty)


def test_open_store_reads_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("TESSERA_IPFS_API", raising=False)
    monkeypatch.setenv("TESSERA_STORE_DIR", str(tmp_path / "env-store"))
    opened = open_store()
    assert isinstance(opened, EmbeddedStore) and opened.root == tmp_path / "env-store"
    assert isinstance(open_store(tmp_path / "explicit"), EmbeddedStore)
    monkeypatch.setenv("TESSERA_IPFS_API", "/ip4/127.0.0.1/tcp/5001")
    kubo = open_store()
    assert isinstance(kubo, KuboStore) and kubo.base == "http://127.0.0.1:5001"
    assert open_store("http://node:5001/api/v0").base == "http://node:5001"
    with pytest.raises(StoreError, match="not an IPFS API address"):
        open_store("/ip4/127.0.0.1/udp/5001")
