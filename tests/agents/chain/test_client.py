"""ChainClient against a real anvil: sends, decoded reverts, events, a flaky RPC."""

from __future__ import annotations

import pytest
from flaky_rpc import flaky_rpc

from agents.chain.client import ChainClient, EventCursor
from agents.chain.deploy import deploy_contract
from agents.chain.deployments import Deployment, load_deployment, save_deployment
from agents.chain.errors import DeploymentNotFound, RevertError, RPCUnreachable
from agents.chain.keys import dev_account, load_account
from agents.chain.local import LocalChain, free_port


@pytest.fixture(scope="module")
def chain():
    with LocalChain(block_time=None) as c:
        yield c


@pytest.fixture()
def token_client(chain):
    owner = dev_account(0, 31337)
    client = ChainClient(chain.url, owner, deployment=Deployment(31337, 0, {}))
    address = deploy_contract(client, "TesseraToken", owner.address, 0)
    client.deployment = Deployment(31337, 0, {"TesseraToken": address})
    return client


def test_send_and_call(token_client):
    alice = dev_account(1, 31337).address
    receipt = token_client.send("TesseraToken", "mint", alice, 10**18)
    assert receipt["status"] == 1
    assert token_client.call("TesseraToken", "balanceOf", alice) == 10**18


def test_revert_is_decoded_custom_error_with_values(token_client, chain):
    stranger = dev_account(2, 31337)
    other = ChainClient(chain.url, stranger, deployment=token_client.deployment)
    with pytest.raises(RevertError) as info:
        other.send("TesseraToken", "mint", stranger.address, 1)
    assert info.value.error_name == "OwnableUnauthorizedAccount"
    assert stranger.address.lower() in str(info.value).lower()
    assert "\n" not in str(info.value)
    # Nothing was sent: the nonce of the stranger is unchanged.
    assert other.w3.eth.get_transaction_count(stranger.address) == 0


def test_event_cursor_reads_each_event_once(token_client):
    start = token_client.head()
    cursor = EventCursor(token_client, [("TesseraToken", "Transfer")], start)
    token_client.send("TesseraToken", "mint", dev_account(3, 31337).address, 5)
    first = cursor.poll()
    assert [e.args["value"] for e in first] == [5]
    assert cursor.poll() == []
    token_client.send("TesseraToken", "mint", dev_account(3, 31337).address, 7)
    assert [e.args["value"] for e in cursor.poll()] == [7]
    # A restarted agent rebuilds the same view from the chain alone.
    replay = EventCursor(token_client, [("TesseraToken", "Transfer")], start).poll()
    assert [e.args["value"] for e in replay] == [5, 7]


def test_rpc_failing_every_third_request_still_works(token_client, chain):
    with flaky_rpc(chain.url) as proxy:
        flaky = ChainClient(proxy.url, dev_account(0, 31337), deployment=token_client.deployment)
        flaky.w3.provider.backoff = 0.01
        bob = dev_account(4, 31337).address
        for _ in range(3):
            flaky.send("TesseraToken", "mint", bob, 1)
        assert flaky.call("TesseraToken", "balanceOf", bob) == 3
        assert proxy.failed >= 3  # the proxy really did fail requests


def test_unreachable_rpc_is_one_clear_error():
    with pytest.raises(RPCUnreachable) as info:
        client = ChainClient(f"http://127.0.0.1:{free_port()}", retries=2)
        client.w3.provider.backoff = 0.01
    assert "cannot reach RPC" in str(info.value)


def test_deployments_registry_round_trip(tmp_path):
    dep = Deployment(11155111, 42, {"JobMarket": "0x" + "11" * 20}, deployer="0x" + "22" * 20)
    save_deployment(dep, tmp_path)
    assert load_deployment(11155111, tmp_path) == dep
    with pytest.raises(DeploymentNotFound):
        load_deployment(5, tmp_path)


def test_dev_accounts_refused_off_dev_chains():
    with pytest.raises(Exception, match="only on local dev chains"):
        dev_account(0, 11155111)


def test_key_from_env_and_keystore(tmp_path, monkeypatch):
    from eth_account import Account

    acct = Account.create()
    monkeypatch.setenv("TESSERA_PRIVATE_KEY", acct.key.hex())
    assert load_account().address == acct.address
    keystore = tmp_path / "key.json"
    import json

    keystore.write_text(json.dumps(Account.encrypt(acct.key, "pw")))
    monkeypatch.delenv("TESSERA_PRIVATE_KEY")
    monkeypatch.setenv("TESSERA_KEYSTORE_PASSWORD", "pw")
    assert load_account(keystore=keystore).address == acct.address
    monkeypatch.setenv("TESSERA_KEYSTORE_PASSWORD", "wrong")
    with pytest.raises(Exception, match="cannot decrypt"):
        load_account(keystore=keystore)


def test_connect_probe_rides_out_a_busy_answer_but_not_a_dead_one(chain):
    """The start-up probe of an agent met the flaky RPC's 503 and the agent died
    (tests/integration/test_testnet.py, one run in two): a busy answer is tried again;
    an endpoint that only ever answers 503 is still one clear line, quickly."""
    import time

    from agents.roles.context import probe_rpc

    with flaky_rpc(chain.url, every=2) as proxy:  # every second request fails
        for _ in range(4):
            probe_rpc(proxy.url)
        assert proxy.failed >= 1
    with flaky_rpc(chain.url, every=1) as dead:  # every request fails
        t0 = time.monotonic()
        with pytest.raises(RPCUnreachable, match="HTTP 503"):
            probe_rpc(dead.url)
        assert time.monotonic() - t0 < 5
        assert dead.count == 4  # the first try and three retries, no more
