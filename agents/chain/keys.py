"""Signing keys: from the environment or an encrypted keystore, never from the repo.

Dev accounts (anvil's well-known mnemonic) are only handed out on a local dev
chain; `dev_account` refuses any other chain id.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

from agents.chain.errors import KeyError_

DEV_CHAIN_IDS = frozenset({1337, 31337})
# Anvil/hardhat's public test mnemonic: these keys are known to everyone and
# only ever used on a local dev chain.
DEV_MNEMONIC = "test test test test test test test test test test test junk"


def dev_account(index: int, chain_id: int) -> LocalAccount:
    """The `index`-th account of anvil's dev mnemonic (dev chains only)."""
    if chain_id not in DEV_CHAIN_IDS:
        raise KeyError_(f"dev accounts exist only on local dev chains, not chain id {chain_id}")
    Account.enable_unaudited_hdwallet_features()
    return Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")


def load_account(
    *,
    key_env: str = "TESSERA_PRIVATE_KEY",
    keystore: str | Path | None = None,
    password_env: str = "TESSERA_KEYSTORE_PASSWORD",
) -> LocalAccount:
    """Load the signing key from an encrypted keystore (if given) or an env variable."""
    keystore = keystore or os.environ.get("TESSERA_KEYSTORE")
    if keystore:
        path = Path(keystore).expanduser()
        if not path.exists():
            raise KeyError_(f"keystore {path} does not exist")
        password = os.environ.get(password_env)
        if password is None:
            raise KeyError_(f"keystore {path} needs its password in ${password_env}")
        try:
            key = Account.decrypt(json.loads(path.read_text()), password)
        except ValueError as exc:
            raise KeyError_(f"cannot decrypt keystore {path}: {exc}") from None
        return Account.from_key(key)
    key = os.environ.get(key_env)
    if not key:
        raise KeyError_(f"no signing key: set ${key_env} or pass --keystore (with ${password_env})")
    try:
        return Account.from_key(key)
    except (ValueError, TypeError):
        raise KeyError_(f"${key_env} is not a valid private key") from None
