"""Errors of the chain layer, each reported to the user as one line."""

from agents.errors import TesseraError


class ChainError(TesseraError):
    """Something went wrong talking to the chain."""


class RPCUnreachable(ChainError):
    """The RPC endpoint did not answer (after retries)."""


class RevertError(ChainError):
    """A call or transaction reverted; the message is the decoded custom error."""

    def __init__(self, message: str, *, error_name: str | None = None, args: dict | None = None):
        super().__init__(message)
        self.error_name = error_name
        self.error_args = args or {}


class DeploymentNotFound(ChainError):
    """No deployments/<chainId>.json for the connected chain."""


class KeyError_(ChainError):
    """No usable signing key (environment variable or keystore)."""
