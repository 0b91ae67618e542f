"""ProviderDirectory (signed endpoint records) and InferencePayments (pay before serve)."""

from __future__ import annotations

import brownie
import pytest

KEY_A = "0x" + "11" * 32
KEY_B = "0x" + "22" * 32


@pytest.fixture(scope="module")
def directory(protocol, ProviderDirectory):
    return ProviderDirectory.at(protocol.record["contracts"]["ProviderDirectory"])


@pytest.fixture(scope="module")
def payments(protocol, InferencePayments):
    return InferencePayments.at(protocol.record["contracts"]["InferencePayments"])


def test_a_record_is_written_by_its_own_key_and_a_key_names_one_account(directory, accounts):
    a, b = accounts[2], accounts[3]
    tx = directory.publish("tcp://10.0.0.1:7100", KEY_A, {"from": a})
    assert tx.events["EndpointPublished"]["account"] == a
    endpoint, key, _ = directory.recordOf(a)
    assert endpoint == "tcp://10.0.0.1:7100" and key == KEY_A
    assert directory.ownerOfKey(KEY_A) == a
    with brownie.reverts():  # TransportKeyTaken: b cannot claim a's key
        directory.publish("tcp://10.0.0.2:7100", KEY_A, {"from": b})
    directory.publish("tcp://10.0.0.1:7200", KEY_B, {"from": a})  # rotate
    assert directory.ownerOfKey(KEY_A) == "0x" + "00" * 20
    assert directory.ownerOfKey(KEY_B) == a
    with brownie.reverts():
        directory.publish("", KEY_A, {"from": b})
    with brownie.reverts():
        directory.publish("tcp://x:1", "0x" + "00" * 32, {"from": b})


def test_payment_goes_to_holders_through_deposit_revenue_once(protocol, payments, accounts):
    deployer, holder, payer = protocol.deployer, accounts[4], accounts[5]
    shares, token = protocol.shares, protocol.token
    shares.grantRole(shares.MINTER_ROLE(), deployer, {"from": deployer})
    shares.mint(holder, 42, 1000, {"from": deployer})
    token.mint(payer, 10**20, {"from": deployer})
    price = payments.priceOf(42)
    assert price == protocol.params["inferencePricePerToken"]
    rid = "0x" + "ab" * 32
    token.approve(payments, 10 * price, {"from": payer})
    before = shares.claimable(42, holder)
    tx = payments.pay(42, rid, 10, 10 * price, {"from": payer})
    assert tx.events["InferencePaid"]["fee"] == 10 * price
    assert shares.claimable(42, holder) - before == 10 * price
    assert token.balanceOf(payments) == 0  # nothing stays in the contract
    paid = payments.paymentOf(rid)
    assert (paid[0], int(paid[1]), int(paid[2]), int(paid[3])) == (payer, 42, 10, 10 * price)
    token.approve(payments, 10 * price, {"from": payer})
    with brownie.reverts():  # RequestAlreadyPaid: one payment buys one request
        payments.pay(42, rid, 10, 10 * price, {"from": payer})
    with brownie.reverts():
        payments.pay(42, "0x" + "cd" * 32, 0, 0, {"from": payer})
    assert payments.paymentOf("0x" + "ef" * 32)[0] == "0x" + "00" * 20
    with brownie.reverts():
        payments.setPrice(42, 1, {"from": payer})  # only the owner prices models


def test_exploit_price_raised_before_a_payment_cannot_overcharge(protocol, payments, accounts):
    """Whoever sets prices (the owner, or the timelock) raised a model's price after the
    client approved a generous allowance and before its payment was mined: the old
    `pay(model, request, tokens)` charged the new price. The client's quoted fee is now
    the cap; the payment reverts and nothing moves."""
    deployer, holder, payer = protocol.deployer, accounts[4], accounts[6]
    shares, token = protocol.shares, protocol.token
    shares.grantRole(shares.MINTER_ROLE(), deployer, {"from": deployer})
    shares.mint(holder, 43, 1000, {"from": deployer})
    token.mint(payer, 10**21, {"from": deployer})
    quoted = 5 * payments.priceOf(43)
    token.approve(payments, 10**21, {"from": payer})
    payments.setPrice(43, 100 * payments.priceOf(43), {"from": deployer})  # the front-run
    before = token.balanceOf(payer)
    with brownie.reverts():  # FeeAboveMax
        payments.pay(43, "0x" + "42" * 32, 5, quoted, {"from": payer})
    assert token.balanceOf(payer) == before
    assert payments.paymentOf("0x" + "42" * 32)[0] == "0x" + "00" * 20
