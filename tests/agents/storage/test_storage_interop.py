"""Against a real IPFS daemon: identical CIDs, CAR round trips, the RPC backend's faults."""

from __future__ import annotations

import contextlib
import json
import random
import socket
import threading
import time

import httpx
import pytest
from ipfs_daemon import free_port

from agents.storage import (
    ContentNotFound,
    EmbeddedStore,
    KuboStore,
    StoreUnreachable,
    compute_cid,
    parse_cid,
)
from agents.storage.car import CARReader
from agents.storage.unixfs import CHUNK_SIZE, MAX_LINKS, bytes_chunks, import_file

pytestmark = pytest.mark.ipfs

SIZES = {
    "empty": 0,
    "one-byte": 1,
    "chunk-minus-1": CHUNK_SIZE - 1,
    "one-chunk": CHUNK_SIZE,
    "chunk-plus-1": CHUNK_SIZE + 1,
    "two-chunks": 2 * CHUNK_SIZE,
    "second-level": MAX_LINKS * CHUNK_SIZE + 1,  # 175 chunks: the tree grows a level
}


def _data(n: int, seed: int = 0) -> bytes:
    return random.Random(n * 7 + seed).randbytes(n)


def _daemon_add(url: str, data: bytes, cid_version: int) -> str:
    """Add through the daemon's own importer (plain HTTP, not our client)."""
    params = {"cid-version": cid_version, "pin": "false"}
    if cid_version == 1:
        params.update({"raw-leaves": "true", "cid-base": "base32"})
    response = httpx.post(
        f"{url}/api/v0/add", params=params, files={"file": ("f", data)}, timeout=120
    )
    response.raise_for_status()
    return json.loads(response.text.splitlines()[-1])["Hash"]


@pytest.mark.parametrize("size", list(SIZES.values()), ids=list(SIZES))
@pytest.mark.parametrize("cid_version", [1, 0])
def test_file_cids_equal_the_daemons(ipfs_daemon, size, cid_version):
    data = _data(size)
    assert compute_cid(data, cid_version=cid_version) == _daemon_add(
        ipfs_daemon.url, data, cid_version
    )


def test_hello_world_on_the_daemon(ipfs_daemon):
    assert _daemon_add(ipfs_daemon.url, b"hello world\n", 0) == (
        "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"
    )
    assert _daemon_add(ipfs_daemon.url, b"hello world\n", 1) == (
        "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"
    )


def test_directory_cids_and_listing_match(kubo_store, tmp_path):
    src = tmp_path / "dataset"
    (src / "nested" / "empty").mkdir(parents=True)
    (src / "shard-0").write_bytes(_data(CHUNK_SIZE + 5))
    (src / "shard-1").write_bytes(b"tail\n")
    (src / "nested" / "é ü+%.txt").write_bytes(b"odd name")
    local = EmbeddedStore(tmp_path / "blocks")
    cid = local.add_dir(src)
    assert kubo_store.add_dir(src) == cid == compute_cid(src)
    assert kubo_store.ls(cid) == local.ls(cid)
    kubo_store.get(cid, tmp_path / "out")
    assert (tmp_path / "out" / "nested" / "é ü+%.txt").read_bytes() == b"odd name"
    assert (tmp_path / "out" / "nested" / "empty").is_dir()


def test_kubo_store_add_cat_and_json(kubo_store, tmp_path):
    data = _data(3 * CHUNK_SIZE + 17, 1)
    cid = kubo_store.add_bytes(data)
    assert cid == compute_cid(data)
    assert kubo_store.cat(cid) == data
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    v0 = kubo_store.add_file(path, cid_version=0)
    assert v0 == compute_cid(data, cid_version=0)
    assert kubo_store.cat(v0) == data  # dag-pb leaves: read block by block
    doc = kubo_store.put_json({"kind": "x", "n": 1})
    assert kubo_store.get_json(doc) == {"kind": "x", "n": 1}


def test_round_trip_embedded_car_daemon_car_embedded(kubo_store, tmp_path):
    first = EmbeddedStore(tmp_path / "first")
    data = _data(5 * CHUNK_SIZE + 3, 2)
    cid = first.add_bytes(data)
    car = tmp_path / "out.car"
    first.export_car(cid, car)
    assert kubo_store.import_car(car) == [cid]
    assert kubo_store.cat(cid) == data
    back = tmp_path / "back.car"
    kubo_store.export_car(cid, back)
    assert back.read_bytes() == car.read_bytes()
    second = EmbeddedStore(tmp_path / "second")
    assert second.import_car(back) == [cid]
    assert second.cat(cid) == data


def test_car_written_by_the_daemon_imports_with_the_same_cids(ipfs_daemon, tmp_path):
    data = _data(2 * CHUNK_SIZE + 9, 3)
    cid = _daemon_add(ipfs_daemon.url, data, 1)
    response = httpx.post(f"{ipfs_daemon.url}/api/v0/dag/export", params={"arg": cid}, timeout=60)
    response.raise_for_status()
    car = tmp_path / "node.car"
    car.write_bytes(response.content)
    with open(car, "rb") as fh:
        assert [str(r) for r in CARReader(fh).roots] == [cid]
    store = EmbeddedStore(tmp_path / "blocks")
    assert store.import_car(car) == [cid]
    assert store.cat(cid) == data


def test_blocks_pins_and_gc_on_the_node(kubo_store):
    local_data = _data(CHUNK_SIZE + 1, 4)
    local = compute_cid(local_data)
    assert not kubo_store.has(local)
    blocks = []
    import_file(bytes_chunks(local_data), lambda c, b: blocks.append((c, b)))
    for cid, block in blocks:
        kubo_store.put_block(cid, block)  # dag/put with raw and dag-pb codecs
    assert kubo_store.has(local)
    kubo_store.pin(local)
    assert kubo_store.cat(local) == local_data
    kubo_store.unpin(local)
    assert kubo_store.gc() >= len(blocks)
    assert not kubo_store.has(local)


def test_missing_content_is_content_not_found(kubo_store):
    absent = compute_cid(b"never added " + str(time.time()).encode())
    with pytest.raises(ContentNotFound, match=absent):
        kubo_store.cat(absent)


def test_daemon_down_is_a_clear_error_after_retries():
    port = free_port()
    store = KuboStore(f"/ip4/127.0.0.1/tcp/{port}", retries=2, backoff=0.05)
    started = time.monotonic()
    with pytest.raises(StoreUnreachable, match=rf"127.0.0.1:{port} is unreachable \(3 attempts"):
        store.add_bytes(b"x")
    assert time.monotonic() - started >= 0.05 + 0.1  # it backed off between attempts


class _Proxy:
    """A loopback TCP proxy to the daemon that starts late or cuts its first connection."""

    def __init__(self, upstream_port: int, *, start_after: float = 0.0, cut_after: int = 0):
        self.port = free_port()
        self.upstream_port = upstream_port
        self.cut_after = cut_after
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(start_after,), daemon=True)
        self._thread.start()

    def _serve(self, start_after: float) -> None:
        time.sleep(start_after)
        with socket.socket() as listener:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", self.port))
            listener.listen()
            listener.settimeout(0.2)
            while not self._stop.is_set():
                try:
                    client, _ = listener.accept()
                except TimeoutError:
                    continue
                self.connections += 1
                limit = self.cut_after if self.connections == 1 else 0
                threading.Thread(target=self._pipe, args=(client, limit), daemon=True).start()

    def _pipe(self, client: socket.socket, limit: int) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.upstream_port))

        def pump(src, dst, budget):
            sent = 0
            try:
                while data := src.recv(65536):
                    if budget and sent + len(data) > budget:
                        dst.sendall(data[: budget - sent])
                        break
                    dst.sendall(data)
                    sent += len(data)
            except OSError:
                pass
            for s in (client, upstream):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

        threading.Thread(target=pump, args=(client, upstream, 0), daemon=True).start()
        pump(upstream, client, limit)
        client.close()
        upstream.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def _port(daemon) -> int:
    return int(daemon.url.rsplit(":", 1)[1])


def test_retries_reach_a_daemon_that_comes_up_late(ipfs_daemon):
    proxy = _Proxy(_port(ipfs_daemon), start_after=0.4)
    try:
        store = KuboStore(f"/ip4/127.0.0.1/tcp/{proxy.port}", retries=5, backoff=0.1)
        assert store.add_bytes(b"late\n") == compute_cid(b"late\n")
    finally:
        proxy.close()


def test_a_cat_stream_cut_midway_resumes_at_its_offset(kubo_store, ipfs_daemon):
    data = _data(8 * CHUNK_SIZE + 1, 5)
    cid = kubo_store.add_bytes(data)
    proxy = _Proxy(_port(ipfs_daemon), cut_after=3 * CHUNK_SIZE)
    try:
        store = KuboStore(f"/ip4/127.0.0.1/tcp/{proxy.port}", retries=3, backoff=0.05)
        assert store.cat(cid) == data
        assert proxy.connections >= 2  # the first connection was cut, a second resumed
    finally:
        proxy.close()
    assert parse_cid(cid).codec == 0x70
