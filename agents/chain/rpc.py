"""An HTTP JSON-RPC provider that survives a flaky endpoint.

Transport failures, HTTP 429/5xx and JSON-RPC rate-limit answers are retried
with exponential backoff. Re-sending a raw transaction is safe: if the first
attempt did reach the node, the retry's "already known" / "nonce too low"
answer is turned back into the transaction hash, computed locally.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import requests
from eth_utils import keccak
from web3 import HTTPProvider
from web3.types import RPCEndpoint, RPCResponse

from agents.chain.errors import RPCUnreachable

log = logging.getLogger(__name__)

_RETRY_RPC_CODES = {-32005, 429, -32603}
_RETRY_MESSAGES = ("rate limit", "too many requests", "header not found", "timeout")
_ALREADY_SENT = ("already known", "nonce too low", "known transaction")


class RetryingHTTPProvider(HTTPProvider):
    """HTTPProvider with bounded retries and backoff on transient failures."""

    def __init__(self, url: str, *, retries: int = 6, backoff: float = 0.25, timeout: float = 20):
        super().__init__(
            url, request_kwargs={"timeout": timeout}, exception_retry_configuration=None
        )
        self.retries = retries
        self.backoff = backoff

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        last_exc: Exception | None = None
        sent_once = False
        for attempt in range(self.retries):
            if attempt:
                time.sleep(min(self.backoff * 2 ** (attempt - 1), 5.0))
            try:
                response = super().make_request(method, params)
            except requests.HTTPError as exc:
                status = exc.response.status_code if exc.response is not None else 0
                if status == 429 or status >= 500:
                    last_exc = exc
                    sent_once = sent_once or method == "eth_sendRawTransaction"
                    continue
                raise
            except (requests.ConnectionError, requests.Timeout, OSError) as exc:
                last_exc = exc
                sent_once = sent_once or method == "eth_sendRawTransaction"
                continue
            error = response.get("error") if isinstance(response, dict) else None
            if error:
                message = str(error.get("message", "")).lower()
                if (
                    method == "eth_sendRawTransaction"
                    and sent_once
                    and any(s in message for s in _ALREADY_SENT)
                ):
                    raw = bytes.fromhex(str(params[0]).removeprefix("0x"))
                    return {
                        "jsonrpc": "2.0",
                        "id": response.get("id"),
                        "result": "0x" + keccak(raw).hex(),
                    }
                if error.get("code") in _RETRY_RPC_CODES and any(
                    s in message for s in _RETRY_MESSAGES
                ):
                    last_exc = RuntimeError(message)
                    continue
            return response
        raise RPCUnreachable(
            f"RPC {self.endpoint_uri} unreachable after {self.retries} tries ({method}): "
            f"{type(last_exc).__name__}: {str(last_exc).splitlines()[0] if last_exc else ''}"
        )
