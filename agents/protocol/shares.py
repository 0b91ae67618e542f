"""Share arithmetic used to check what the contracts pay."""

from __future__ import annotations


def pro_rata(amount: int, balance: int, supply: int) -> int:
    """`amount` split pro rata: floor(amount * balance / supply)."""
    if supply <= 0:
        raise ValueError("no shares exist")
    return amount * balance // supply


def expected_claims(deposits: list[tuple[int, dict[str, int]]]) -> dict[str, int]:
    """What each holder is owed from deposits made at given share distributions.

    `deposits` is a list of (amount, {holder: balance at deposit time}).
    """
    owed: dict[str, int] = {}
    for amount, balances in deposits:
        supply = sum(balances.values())
        for holder, bal in balances.items():
            owed[holder] = owed.get(holder, 0) + pro_rata(amount, bal, supply)
    return owed
