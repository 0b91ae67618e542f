"""The sockets for real: CURVE handshakes on loopback, chunked payloads, refusals logged."""

from __future__ import annotations

import json
import logging

import pytest

from agents.transport.endpoint import Endpoint, PeerTimeout
from agents.transport.frames import Header, Kind
from agents.transport.keys import TransportKey, load_or_create_key


@pytest.fixture()
def pair():
    server_key, client_key = TransportKey.generate(), TransportKey.generate()
    server = Endpoint(
        server_key,
        bind="tcp://127.0.0.1:0",
        admit=lambda k: "stage 0 provider" if k == client_key.public else None,
        max_bytes=2 * 2**20,
    )
    client = Endpoint(client_key, send_timeout=5, chunk_bytes=64 * 1024)
    client.connect("up", server.address, server_key.public)
    yield server, client, server_key
    client.close()
    server.close()


def test_a_payload_streams_in_chunks_and_arrives_whole(pair):
    server, client, _ = pair
    payload = bytes(range(256)) * 6000  # 1.5 MB in 24 chunks
    client.send("up", Header(Kind.DATA, 1, 0, 1, 0, 0, 0), payload)
    m = server.recv(10)
    assert m is not None and m.payload == payload and m.peer == "stage 0 provider"
    assert m.header.length == len(payload)


def test_a_payload_over_the_limit_is_refused_and_named(pair, caplog):
    server, client, _ = pair
    with caplog.at_level(logging.WARNING, "agents.transport"):
        client.send("up", Header(Kind.DATA, 1, 0, 1, 0, 3, 1), b"x" * (3 * 2**20))
        assert server.recv(3) is None
    assert any("declares 3145728 bytes" in r for r in server.refusals)
    assert "step 3 micro-batch 1" in caplog.text


def test_a_peer_with_the_wrong_key_never_gets_a_message_through(pair, caplog):
    server, _, server_key = pair
    intruder_key = TransportKey.generate()
    intruder = Endpoint(intruder_key, send_timeout=1.5)
    intruder.connect("up", server.address, server_key.public)
    with caplog.at_level(logging.WARNING, "agents.transport"):
        with pytest.raises(PeerTimeout):
            intruder.send("up", Header(Kind.DATA, 1, 0, 1, 0), b"forged")
        assert server.recv(0.5) is None
    intruder.close()
    assert intruder_key.public.decode() in caplog.text
    assert "not the key of an on-chain peer" in caplog.text


def test_a_client_that_expects_another_server_key_does_not_connect(pair):
    server, _, _ = pair
    c = Endpoint(TransportKey.generate(), send_timeout=1.0)
    c.connect("up", server.address, TransportKey.generate().public)  # a man in the middle's
    with pytest.raises(PeerTimeout):
        c.send("up", Header(Kind.DATA, 1, 0, 1, 0), b"x")
    c.close()


def test_key_files_are_private_and_checked(tmp_path):
    path = tmp_path / "k.json"
    key = load_or_create_key(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_or_create_key(path) == key and len(key.public_raw) == 32
    path.write_text(json.dumps({"public": key.public.decode(), "secret": "0" * 40}))
    with pytest.raises(Exception, match="does not match"):
        load_or_create_key(path)
