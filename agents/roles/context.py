"""Connecting a role to a chain, a deployment, a key and a content store.

Every `tessera` command and agent goes through `connect`: the RPC comes from
`--rpc URL`, a brownie network id (`--network sepolia`) or `$TESSERA_RPC`;
contracts from `deployments/<chainId>.json`; the key from the environment or
an encrypted keystore (dev accounts only on a local dev chain).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from eth_account import Account

from agents.chain.client import ChainClient
from agents.chain.deployments import Deployment
from agents.chain.errors import ChainError, RPCUnreachable
from agents.chain.keys import DEV_CHAIN_IDS, dev_account, load_account
from agents.chain.protocol import Protocol


@dataclass
class Connection:
    """A role's handles: chain client, typed protocol access, content store."""

    client: ChainClient
    protocol: Protocol
    store: object


def resolve_rpc(rpc: str | None = None, network: str | None = None) -> str:
    """The RPC URL from --rpc, --network (brownie's network config) or $TESSERA_RPC."""
    if rpc:
        return rpc
    if network:
        from brownie._config import CONFIG

        net = CONFIG.networks.get(network)
        if net is None:
            raise ChainError(f"unknown network id {network!r} (see `brownie networks list`)")
        host = os.path.expandvars(str(net.get("host", "")))
        if "$" in host:
            raise ChainError(f"network {network} needs environment variables: {host}")
        if "cmd" in net:  # a development network: brownie would launch it
            port = (net.get("cmd_settings") or {}).get("port", 8545)
            return f"{host}:{port}"
        return host
    env = os.environ.get("TESSERA_RPC")
    if env:
        return env
    raise ChainError("no chain given: pass --rpc URL or --network ID, or set $TESSERA_RPC")


# An endpoint that answers these is up but busy (a public RPC's rate limit, a load
# balancer between backends): worth a short retry, unlike a refusal or a wrong path.
_BUSY = (429, 502, 503, 504)


def probe_rpc(url: str, timeout: float = 3.0, busy_retries: int = 3) -> None:
    """Fail fast, in one line, if `url` is not a JSON-RPC endpoint that answers.

    A refused connection, a timeout, an HTTP error (a wrong path answering 404)
    or a non-JSON-RPC answer is reported at once; only a busy answer (429, 502,
    503, 504) is tried again, up to `busy_retries` more times within about a
    second: the client's own retries are for endpoints that worked before.
    """
    import time

    import requests

    body = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
    for attempt in range(busy_retries + 1):
        try:
            response = requests.post(url, json=body, timeout=timeout)
        except requests.exceptions.InvalidURL:
            raise RPCUnreachable(f"RPC URL {url!r} is not a valid URL") from None
        except (requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema):
            raise RPCUnreachable(f"RPC URL {url!r} needs http:// or https://") from None
        except requests.Timeout:
            raise RPCUnreachable(f"cannot reach RPC {url}: no answer in {timeout:g} s") from None
        except requests.ConnectionError as exc:
            reason = "connection refused" if "refused" in str(exc).lower() else type(exc).__name__
            raise RPCUnreachable(f"cannot reach RPC {url}: {reason}") from None
        if response.status_code in _BUSY and attempt < busy_retries:
            time.sleep(0.1 * 2**attempt)
            continue
        break
    if response.status_code != 200:
        raise RPCUnreachable(
            f"RPC {url} answered HTTP {response.status_code}: not a JSON-RPC endpoint"
        )
    try:
        answer = response.json()
    except ValueError:
        raise RPCUnreachable(f"RPC {url} did not answer JSON: not a JSON-RPC endpoint") from None
    if not isinstance(answer, dict) or "result" not in answer:
        raise RPCUnreachable(f"RPC {url} did not answer eth_chainId: {str(answer)[:80]}")


def connect(
    *,
    rpc: str | None = None,
    network: str | None = None,
    keystore: str | None = None,
    dev_index: int | None = None,
    store: str | None = None,
    confirmations: int | None = None,
    need_key: bool = True,
    deployment: Deployment | None = None,
    private_key: str | None = None,
) -> Connection:
    """Open a Connection; every failure is one clear TesseraError."""
    from agents.storage import open_store

    url = resolve_rpc(rpc, network)
    probe_rpc(url)
    if confirmations is None:
        confirmations = int(os.environ.get("TESSERA_CONFIRMATIONS", "0"))
    client = ChainClient(url, None, confirmations=confirmations, deployment=deployment)
    if private_key is not None:  # handed over by the process that loaded it
        client.account = Account.from_key(private_key)
    elif dev_index is not None:
        client.account = dev_account(dev_index, client.chain_id)
    elif need_key or keystore or os.environ.get("TESSERA_PRIVATE_KEY"):
        client.account = load_account(keystore=keystore)
    if client.chain_id not in DEV_CHAIN_IDS and confirmations == 0:
        client.confirmations = 2  # public chains: act only on events 2 blocks deep
    client.deployment  # noqa: B018  (fail now, clearly, if there is no deployment)
    return Connection(client=client, protocol=Protocol(client), store=open_store(store))
