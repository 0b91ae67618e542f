"""web3.py access to the deployed Tessera contracts.

`ChainClient` sends transactions with local nonce management, gas estimation
and a decoded one-line error on revert, and reads events in bounded block
ranges behind a configurable number of confirmations, so an agent that
restarts can rebuild its view from chain state alone.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractCustomError, ContractLogicError, ContractPanicError

from agents.chain.artifacts import decode_revert, load_artifact
from agents.chain.deployments import Deployment, load_deployment
from agents.chain.errors import ChainError, RevertError, RPCUnreachable
from agents.chain.rpc import RetryingHTTPProvider

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Event:
    """One decoded log."""

    contract: str
    name: str
    args: dict[str, Any]
    block: int
    log_index: int
    tx_hash: str


def _revert_data(exc: Exception) -> bytes | str | None:
    data = getattr(exc, "data", None)
    if isinstance(data, dict):
        data = data.get("data")
    if data is None and exc.args:
        first = exc.args[0]
        if isinstance(first, str) and first.startswith("0x"):
            data = first
    return data


def _as_revert(exc: Exception, what: str) -> RevertError:
    if isinstance(exc, ContractPanicError):
        return RevertError(f"{what} {exc}")
    data = _revert_data(exc)
    if isinstance(data, str) and not data.startswith("0x"):
        return RevertError(f"{what} reverted: {data}")
    message, name, args = decode_revert(data)
    return RevertError(f"{what} {message}", error_name=name, args=args)


class ChainClient:
    """One account's connection to one chain and its Tessera deployment."""

    def __init__(
        self,
        rpc_url: str,
        account: LocalAccount | None = None,
        *,
        deployment: Deployment | None = None,
        confirmations: int = 0,
        retries: int = 6,
        receipt_timeout: float = 120.0,
    ):
        self.rpc_url = rpc_url
        self.w3 = Web3(RetryingHTTPProvider(rpc_url, retries=retries))
        try:
            self.chain_id = int(self.w3.eth.chain_id)
        except RPCUnreachable:
            raise RPCUnreachable(f"cannot reach RPC {rpc_url}") from None
        self.account = account
        self._deployment = deployment
        self.confirmations = confirmations
        self.receipt_timeout = receipt_timeout
        self._contracts: dict[str, Contract] = {}
        self._nonce: int | None = None
        self._lock = threading.Lock()

    # -- contracts ---------------------------------------------------------
    @property
    def deployment(self) -> Deployment:
        """The protocol deployment on this chain (from the registry unless given)."""
        if self._deployment is None:
            self._deployment = load_deployment(self.chain_id)
        return self._deployment

    @deployment.setter
    def deployment(self, value: Deployment) -> None:
        self._deployment = value
        self._contracts.clear()

    @property
    def address(self) -> str:
        """The signing account's address."""
        if self.account is None:
            raise ChainError("this client has no signing account")
        return self.account.address

    def contract(self, name: str) -> Contract:
        """The web3 contract object of protocol contract `name`."""
        if name not in self._contracts:
            self._contracts[name] = self.w3.eth.contract(
                address=Web3.to_checksum_address(self.deployment.address(name)),
                abi=load_artifact(name).abi,
            )
        return self._contracts[name]

    def call(self, name: str, fn: str, *args: Any, block: int | str = "latest") -> Any:
        """Read-only call; a revert becomes a RevertError with the decoded custom error."""
        try:
            return getattr(self.contract(name).functions, fn)(*args).call(block_identifier=block)
        except (ContractCustomError, ContractLogicError) as exc:
            raise _as_revert(exc, f"{name}.{fn}") from None

    # -- transactions --------------------------------------------------------
    def _next_nonce(self) -> int:
        if self._nonce is None:
            self._nonce = self.w3.eth.get_transaction_count(self.address, "pending")
        nonce = self._nonce
        self._nonce += 1
        return nonce

    def send(self, name: str, fn: str, *args: Any, gas: int | None = None) -> dict:
        """Estimate, sign and send `name.fn(*args)`; wait for the receipt.

        A revert (at estimation or in the mined transaction) raises RevertError
        with the decoded custom error; nothing is sent when estimation reverts.
        """
        what = f"{name}.{fn}"
        call = getattr(self.contract(name).functions, fn)(*args)
        with self._lock:
            try:
                estimate = call.estimate_gas({"from": self.address})
            except (ContractCustomError, ContractLogicError) as exc:
                raise _as_revert(exc, what) from None
            for attempt in range(3):
                nonce = self._next_nonce()
                tx = call.build_transaction(
                    {
                        "from": self.address,
                        "nonce": nonce,
                        "chainId": self.chain_id,
                        "gas": gas or int(estimate * 1.25) + 20_000,
                    }
                )
                signed = self.account.sign_transaction(tx)
                try:
                    tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
                    break
                except ValueError as exc:  # nonce drift (another process used this key)
                    if "nonce" in str(exc).lower() and attempt < 2:
                        self._nonce = None
                        continue
                    raise ChainError(f"{what}: transaction rejected: {exc}") from None
        receipt = self.wait_receipt(tx_hash)
        if receipt["status"] != 1:
            # Re-run the call at the failing block to recover the revert reason.
            try:
                call.call({"from": self.address}, block_identifier=receipt["blockNumber"] - 1)
            except (ContractCustomError, ContractLogicError) as exc:
                raise _as_revert(exc, what) from None
            raise RevertError(f"{what} reverted in block {receipt['blockNumber']}")
        return receipt

    def wait_receipt(self, tx_hash: bytes | str) -> dict:
        """Poll for a receipt (tolerating a flaky RPC) until `receipt_timeout`."""
        deadline = time.monotonic() + self.receipt_timeout
        while True:
            try:
                receipt = self.w3.eth.get_transaction_receipt(tx_hash)
                if receipt is not None:
                    return dict(receipt)
            except Exception as exc:  # not mined yet, or a transient error
                if isinstance(exc, RPCUnreachable):
                    raise
            if time.monotonic() > deadline:
                raise ChainError(f"transaction {Web3.to_hex(tx_hash)} not mined after timeout")
            time.sleep(0.2)

    def transfer_eth(self, to: str, wei: int) -> dict:
        """Send plain ETH (used to fund agent accounts on dev chains)."""
        with self._lock:
            tx = {
                "to": Web3.to_checksum_address(to),
                "value": wei,
                "nonce": self._next_nonce(),
                "chainId": self.chain_id,
                "gas": 21_000,
                "gasPrice": self.w3.eth.gas_price,
            }
            tx_hash = self.w3.eth.send_raw_transaction(
                self.account.sign_transaction(tx).raw_transaction
            )
        return self.wait_receipt(tx_hash)

    # -- reading -------------------------------------------------------------
    def head(self) -> int:
        """Newest block the agent acts on (latest minus confirmations)."""
        return max(0, int(self.w3.eth.block_number) - self.confirmations)

    def now(self) -> int:
        """Timestamp of the latest block (the contracts' clock)."""
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def events(
        self,
        name: str,
        event: str,
        from_block: int,
        to_block: int | None = None,
        *,
        step: int = 2_000,
        filters: dict | None = None,
    ) -> list[Event]:
        """Decoded `event` logs of contract `name` in [from_block, to_block], in order."""
        to_block = self.head() if to_block is None else to_block
        ev = getattr(self.contract(name).events, event)
        out: list[Event] = []
        start = max(from_block, 0)
        while start <= to_block:
            end = min(start + step - 1, to_block)
            logs = ev.get_logs(from_block=start, to_block=end, argument_filters=filters)
            out.extend(
                Event(
                    contract=name,
                    name=event,
                    args=dict(lg["args"]),
                    block=lg["blockNumber"],
                    log_index=lg["logIndex"],
                    tx_hash=Web3.to_hex(lg["transactionHash"]),
                )
                for lg in logs
            )
            start = end + 1
        return out


class EventCursor:
    """Reads new events of several kinds from a start block onward, exactly once each.

    The cursor holds only `next_block`; an agent that restarts makes a new
    cursor from the deployment (or job) block and catches up from the chain.
    """

    def __init__(self, client: ChainClient, kinds: Iterable[tuple[str, str]], from_block: int):
        self.client = client
        self.kinds = list(kinds)
        self.next_block = from_block

    def poll(self) -> list[Event]:
        """Events in blocks [next_block, head], sorted by (block, log index)."""
        head = self.client.head()
        if head < self.next_block:
            return []
        found: list[Event] = []
        for contract, event in self.kinds:
            found.extend(self.client.events(contract, event, self.next_block, head))
        self.next_block = head + 1
        return sorted(found, key=lambda e: (e.block, e.log_index))
