"""The on-chain side of the transport: endpoint records and inference payments.

Thin reads and writes over `ProviderDirectory` and `InferencePayments`
through a `ChainClient`; the decisions that use them live in the roles.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_utils import to_checksum_address

from agents.transport.keys import public_from_raw

ZERO_ADDRESS = "0x" + "00" * 20


@dataclass(frozen=True)
class EndpointRecord:
    """Where an account's transport serves, and the key it serves with (Z85)."""

    account: str
    endpoint: str
    key: bytes


def publish_endpoint(client, endpoint: str, public_raw: bytes) -> None:
    """Publish the caller's endpoint and transport public key (sent by its own key)."""
    current = record_of(client, client.address)
    if (
        current is not None
        and current.endpoint == endpoint
        and current.key == public_from_raw(public_raw)
    ):
        return
    client.send("ProviderDirectory", "publish", endpoint, public_raw)


def record_of(client, account: str) -> EndpointRecord | None:
    """The endpoint record of `account`, or None if it has published none."""
    endpoint, key, _ = client.call("ProviderDirectory", "recordOf", to_checksum_address(account))
    if not endpoint or int.from_bytes(key, "big") == 0:
        return None
    return EndpointRecord(to_checksum_address(account), endpoint, public_from_raw(bytes(key)))


def owner_of_key(client, public_raw: bytes) -> str | None:
    """The account a transport key is bound to, or None."""
    who = client.call("ProviderDirectory", "ownerOfKey", public_raw)
    return None if int(who, 16) == 0 else to_checksum_address(who)


@dataclass(frozen=True)
class Payment:
    """An inference payment as the chain holds it."""

    payer: str
    model_id: int
    tokens: int
    fee: int

    @property
    def exists(self) -> bool:
        return int(self.payer, 16) != 0


def payment_of(client, request_id: bytes) -> Payment:
    """The on-chain payment of `request_id` (payer zero when unpaid)."""
    payer, model, tokens, fee = client.call("InferencePayments", "paymentOf", request_id)
    return Payment(to_checksum_address(payer), int(model), int(tokens), int(fee))


def price_of(client, model_id: int) -> int:
    """Price per generated token of `model_id`, in TSR wei."""
    return int(client.call("InferencePayments", "priceOf", model_id))


def pay_for_inference(client, model_id: int, request_id: bytes, tokens: int) -> int:
    """Approve and pay for `tokens` tokens of `model_id` under `request_id`; the fee paid."""
    fee = tokens * price_of(client, model_id)
    spender = client.deployment.address("InferencePayments")
    if fee and client.call("TesseraToken", "allowance", client.address, spender) < fee:
        client.send("TesseraToken", "approve", spender, fee)
    # The quoted fee is the cap: a price raised before this is mined reverts the payment.
    client.send("InferencePayments", "pay", model_id, request_id, tokens, fee)
    return fee
