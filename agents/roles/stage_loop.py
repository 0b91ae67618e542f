"""One stage's own schedule loop over the transport: no central driver.

Each provider runs its stage alone: receive activations from upstream,
forward, send downstream; receive gradients from downstream, backward, send
upstream; step (GPipe order, the same as the in-process pipeline, so the
results are bitwise those of every other driver). Nobody holds another
stage's data; each payload is signed by its sender's staked key and checked
by its receiver against the stage's on-chain provider.

Attempts: a round runs under an attempt number (milliseconds of the wall
clock when some stage (re)started it). A stage that loses a peer (timeout)
or starts fresh begins a newer attempt from its checkpoint and tells its
neighbours (RESET); a stage that sees a newer attempt of its round restarts
from the same checkpoint and adopts it. The newest attempt wins everywhere,
and since every attempt starts from the same checkpoint, its result is
bitwise the same: a retried round commits nothing new and loses nothing.

The same loop answers paid inference requests (INFER) with a KV cache per
request, from the stage's last finalized checkpoint.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from agents.errors import TesseraError
from agents.protocol.attestation import (
    AttestationError,
    PayloadContext,
    sign_payload,
    verify_payload,
)
from agents.training.hashing import tensors_hash
from agents.training.worker import StageWorker
from agents.transport.directory import (
    owner_of_key,
    payment_of,
    publish_endpoint,
    record_of,
)
from agents.transport.endpoint import Endpoint, Incoming, PeerTimeout
from agents.transport.frames import FrameError, Header, Kind
from agents.transport.guard import BACKWARD, FORWARD, RoundGuard, Verdict
from agents.transport.inference import RequestLedger, request_signer
from agents.transport.payloads import payload_from_bytes, payload_to_bytes
from agents.transport.signed import PayloadConflict, SignedPayloads

log = logging.getLogger("agents.transport")
_WORKER_TAKES_ATTESTATION = "attestation" in inspect.signature(StageWorker.forward).parameters
MAX_SESSIONS = 16


@dataclass(frozen=True)
class TransportOptions:
    """How a provider serves its stage over the transport.

    `bind` is the local ZeroMQ address (e.g. "tcp://0.0.0.0:7100"); `advertise`
    the address published on-chain for peers (default: what was bound).
    """

    key_path: Path
    bind: str = "tcp://127.0.0.1:0"
    advertise: str | None = None
    timeout: float = 30.0
    serve_seconds: float = 1.0


class Restart(Exception):
    """A newer attempt of this round arrived: restart from the checkpoint under it."""

    def __init__(self, attempt: int, message: Incoming | None) -> None:
        super().__init__(f"restart under attempt {attempt}")
        self.attempt = attempt
        self.message = message


class RoundOver(Exception):
    """The chain moved past this round; `message` is the first one of the next."""

    def __init__(self, message: Incoming) -> None:
        super().__init__("the chain moved to a later round")
        self.message = message


def new_attempt() -> int:
    """A fresh attempt number, newer than any this machine made before."""
    return time.time_ns() // 1_000_000


def _h32(hex_hash: str) -> bytes:
    return bytes.fromhex(hex_hash.removeprefix("0x"))


class ChainPeerView:
    """Discovery from the chain: stage providers (JobMarket), records (ProviderDirectory),
    payments (InferencePayments). What a provider uses."""

    def __init__(self, protocol, job_id: int) -> None:
        self.p = protocol
        self.client = protocol.client
        self.job_id = job_id
        self.chain_id = self.client.chain_id
        self.job_market = self.client.deployment.address("JobMarket")

    @property
    def payments(self) -> str:
        return self.client.deployment.address("InferencePayments")

    def stage_provider(self, stage: int) -> str:
        return self.p.stage_provider(self.job_id, stage)

    def record_of(self, account: str):
        return record_of(self.client, account)

    def owner_of_key(self, raw: bytes) -> str | None:
        return owner_of_key(self.client, raw)

    def current_round(self) -> int:
        return self.p.job_state(self.job_id).current_round

    def payment_of(self, request_id: bytes):
        return payment_of(self.client, request_id)

    def publish(self, endpoint: str, raw: bytes) -> None:
        publish_endpoint(self.client, endpoint, raw)


class StaticPeerView:
    """A fixed peer table instead of the chain (bench/links.py inside network namespaces,
    where no chain is reachable). Serves no inference: nothing is ever paid here."""

    payments = "0x" + "00" * 20

    def __init__(self, *, chain_id: int, job_market: str, providers: dict, records: dict):
        self.chain_id = chain_id
        self.job_market = job_market
        self._providers = providers
        self._records = records

    def stage_provider(self, stage: int) -> str:
        return self._providers.get(stage, "0x" + "00" * 20)

    def record_of(self, account: str):
        from agents.transport.directory import EndpointRecord

        if account not in self._records:
            return None
        endpoint, key = self._records[account]
        return EndpointRecord(account, endpoint, key)

    def owner_of_key(self, raw: bytes) -> str | None:
        return None

    def current_round(self) -> int:
        return -1

    def payment_of(self, request_id: bytes):
        from agents.transport.directory import Payment

        return Payment("0x" + "00" * 20, 0, 0, 0)

    def publish(self, endpoint: str, raw: bytes) -> None:
        pass


class StageLink:
    """A provider's transport session for one stage of one job.

    `view` is where peers are discovered: a `ChainPeerView` (providers), or a
    `StaticPeerView` (a benchmark without a chain).
    """

    def __init__(
        self,
        view,
        job_id: int,
        stage: int,
        num_stages: int,
        *,
        key,
        bind: str,
        advertise: str | None = None,
        timeout: float = 30.0,
        max_bytes: int = 64 * 2**20,
        sign_log: Path | None = None,
    ) -> None:
        self.view = view
        self.job_id = job_id
        self.stage = stage
        self.num_stages = num_stages
        self.key = key
        self.timeout = timeout
        self._key_stage: dict[bytes, int] = {}
        self._stage_key: dict[int, tuple[str, bytes, str]] = {}  # stage -> (who, key, endpoint)
        self.ep = Endpoint(
            key, bind=bind, admit=self._admit, max_bytes=max_bytes, send_timeout=timeout
        )
        self.endpoint = advertise or self.ep.address
        self.guard: RoundGuard | None = None
        self._queues: dict[int, deque] = {FORWARD: deque(), BACKWARD: deque()}
        self.sessions: OrderedDict[bytes, Any] = OrderedDict()
        self.ledger = RequestLedger()
        self._paid: dict[bytes, Any] = {}
        self.engine = None  # (round, StageWorker) serving inference
        self.engine_loader = None  # () -> (label | None, state bytes | None), set by the provider
        self.engine_spec = None
        self.stats = {"refused": 0, "attempts": 0, "restarts": 0, "served_steps": 0}
        self._market = view.job_market
        # Never two different signed payloads for one slot of a round (see agents.transport.signed).
        self.signed = SignedPayloads(sign_log)
        self.received = SignedPayloads(what="received")  # slot -> the payload hash accepted
        self._first_signed: dict[tuple, tuple[bytes, bytes]] = {}  # slot -> (hash, signature)
        # (round, sender stage, step, mb, direction, [(hash, signature), ...]): a neighbour
        # that signed two payloads for one slot; the provider proves it once the round seals.
        self.conflicts: list[tuple] = []

    # ------------------------------------------------------------------ discovery
    def publish(self) -> None:
        """Put this endpoint and transport key on-chain under the provider's staked key."""
        self.view.publish(self.endpoint, self.key.public_raw)

    def neighbours(self) -> list[int]:
        return [s for s in (self.stage - 1, self.stage + 1) if 0 <= s < self.num_stages]

    def refresh(self) -> bool:
        """Read the neighbours' providers and records from the chain; True if all are known."""
        ok = True
        for s in self.neighbours():
            who = self.view.stage_provider(s)
            rec = None if int(who, 16) == 0 else self.view.record_of(who)
            if rec is None:
                ok = False
                continue
            known = self._stage_key.get(s)
            if known != (rec.account, rec.key, rec.endpoint):
                if known is not None:
                    self._key_stage.pop(known[1], None)
                self._stage_key[s] = (rec.account, rec.key, rec.endpoint)
                self._key_stage[rec.key] = s
                self.ep.connect(f"stage{s}", rec.endpoint, rec.key)
        return ok

    def provider_of(self, stage: int) -> str:
        return self._stage_key[stage][0]

    def _admit(self, public: bytes) -> str | None:
        """ZAP policy: a neighbour's current on-chain key, or a key an account published."""
        if public in self._key_stage:
            return f"stage {self._key_stage[public]} provider"
        from zmq.utils import z85

        owner = self.view.owner_of_key(z85.decode(public))
        return f"client {owner}" if owner else None

    # ------------------------------------------------------------------ messages
    def _ctx(self, round_: int, stage: int, step: int, mb: int, direction: int):
        return PayloadContext(
            chain_id=self.view.chain_id,
            job_market=self._market,
            job_id=self.job_id,
            round=round_,
            stage=stage,
            step=step,
            micro_batch=mb,
            direction=direction,
        )

    def _send_data(self, private_key, to: int, step: int, mb: int, direction: int, payload):
        g = self.guard
        ph = _h32(tensors_hash(payload))
        self.signed.admit(g.round, step, mb, direction, ph)  # PayloadConflict: nothing sent
        sig = sign_payload(private_key, self._ctx(g.round, self.stage, step, mb, direction), ph)
        h = Header(
            Kind.DATA,
            self.job_id,
            g.round,
            g.attempt,
            self.stage,
            step,
            mb,
            direction,
            payload_hash=ph,
            signature=sig,
        )
        self.ep.send(f"stage{to}", h, payload_to_bytes(payload))

    def _reset_neighbours(self) -> None:
        g = self.guard
        for s in self.neighbours():
            if not self.ep.connected(f"stage{s}"):
                continue
            h = Header(Kind.RESET, self.job_id, g.round, g.attempt, self.stage)
            # A neighbour that is down learns the attempt from the first payload.
            with contextlib.suppress(PeerTimeout):
                self.ep.send(f"stage{s}", h, timeout=0.5)

    def refuse(self, reason: str) -> None:
        self.stats["refused"] += 1
        self.ep.refuse(reason)

    def _verified(self, m: Incoming) -> tuple[dict, bytes] | None:
        """The payload of a DATA message if its hash and its sender's signature check out."""
        h = m.header
        try:
            payload = payload_from_bytes(m.payload)
        except FrameError as exc:
            self.refuse(f"{h.describe()}: {exc}")
            return None
        if _h32(tensors_hash(payload)) != h.payload_hash:
            self.refuse(f"{h.describe()}: payload does not match its signed hash")
            return None
        ctx = self._ctx(h.round, h.stage, h.step, h.micro_batch, h.direction)
        try:
            verify_payload(ctx, h.payload_hash, h.signature, self.provider_of(h.stage))
        except AttestationError as exc:
            self.refuse(f"{h.describe()}: {exc}")
            return None
        return payload, h.signature

    def pump(self, timeout: float, *, training: bool) -> None:
        """Handle the next message (or return after `timeout`).

        Accepted payloads go to their stream's queue; a newer attempt raises
        Restart, a later round the chain confirms raises RoundOver.
        """
        m = self.ep.recv(timeout)
        if m is None:
            if training:
                raise PeerTimeout(f"stage {self.stage}: no message for {timeout:.0f}s")
            return
        h = m.header
        if h.kind is Kind.INFER:
            self._serve_infer(m)
            return
        sender = self._key_stage.get(m.peer_key)
        if sender is None:
            self.refuse(f"{h.describe()}: from {m.peer}, not a neighbouring stage's provider")
            return
        g = self.guard
        if g is None:
            return
        d = g.check(h, sender)
        if d.verdict is Verdict.IGNORE:
            return
        if d.verdict is Verdict.REFUSE:
            self.refuse(d.reason)
            return
        if d.verdict is Verdict.FUTURE:
            if self.view.current_round() >= h.round:
                raise RoundOver(m)
            self.refuse(d.reason + " (the chain has not opened it)")
            return
        if h.kind is Kind.DATA and self._verified(m) is None:
            return
        if d.verdict is Verdict.ADOPT:
            raise Restart(h.attempt, m if h.kind is Kind.DATA else None)
        self._accept(m)

    def _accept(self, m: Incoming) -> None:
        verified = self._verified(m)
        if verified is None:
            return
        h = m.header
        slot = (h.round, h.step, h.micro_batch, h.direction)
        try:  # the same slot's payload as in every earlier attempt of the round, or nothing
            self.received.admit(*slot, h.payload_hash)
        except PayloadConflict as exc:
            self.refuse(f"{h.describe()}: {exc}")
            first = self._first_signed.get(slot)
            if first is not None:  # two signatures of one key over two payloads: evidence
                pair = [first, (h.payload_hash, bytes(h.signature))]
                self.conflicts.append((h.round, h.stage, h.step, h.micro_batch, h.direction, pair))
            return
        if slot not in self._first_signed:
            if any(k[0] != h.round for k in self._first_signed):
                self._first_signed = {
                    k: v for k, v in self._first_signed.items() if k[0] == h.round
                }
            self._first_signed[slot] = (h.payload_hash, bytes(h.signature))
        q = self._queues[m.header.direction]
        if len(q) > self.guard.micro_batches + 1:
            self.refuse(f"{m.header.describe()}: more payloads ahead than a step holds")
            return
        self.guard.accepted(m.header)
        q.append(verified)

    def _next(self, direction: int) -> tuple[dict, bytes]:
        q = self._queues[direction]
        while not q:
            self.pump(self.timeout, training=True)
        return q.popleft()

    # ------------------------------------------------------------------ training
    def train_round(
        self, host, private_key, round_: int, attempt: int, first: Incoming | None = None
    ):
        """Run `round_` of this stage under `attempt` from its prepared checkpoint.

        Raises Restart (a newer attempt), RoundOver or PeerTimeout; returns the
        StageRoundResult (state included) when the round is done.
        """
        if self.guard is None:
            t = host.worker.spec.training
            self.guard = RoundGuard(
                self.job_id, self.stage, self.num_stages, t.steps_per_round, t.micro_batches
            )
        self.stats["attempts"] += 1
        self.guard.begin(round_, attempt)
        self._queues = {FORWARD: deque(), BACKWARD: deque()}
        host.begin_round(self.job_id, round_)
        self._reset_neighbours()
        if first is not None:
            d = self.guard.check(first.header, self._key_stage.get(first.peer_key, -1))
            if d.verdict is Verdict.ACCEPT:
                self._accept(first)
        w = host.worker
        t = w.spec.training
        for step in range(t.steps_per_round):
            for mb in range(t.micro_batches):
                kw: dict[str, Any] = {}
                x = None
                if not w.is_first:
                    x, sig = self._next(FORWARD)
                    if _WORKER_TAKES_ATTESTATION:
                        kw["attestation"] = sig
                out = w.forward(step, mb, x, **kw)
                if not w.is_last:
                    self._send_data(private_key, self.stage + 1, step, mb, FORWARD, out)
            for mb in range(t.micro_batches):
                kw = {}
                g = None
                if not w.is_last:
                    g, sig = self._next(BACKWARD)
                    if _WORKER_TAKES_ATTESTATION:
                        kw["attestation"] = sig
                gout = w.backward(step, mb, g, **kw)
                if not w.is_first:
                    self._send_data(private_key, self.stage - 1, step, mb, BACKWARD, gout)
            w.step(step)
        return host.end_round_full()

    # ------------------------------------------------------------------ inference
    def _reply(self, m: Incoming, kind: Kind, payload: bytes, ph: bytes = b"\x00" * 32) -> None:
        h = Header(
            kind,
            self.job_id,
            0,
            0,
            self.stage,
            m.header.step,
            request_id=m.header.request_id,
            payload_hash=ph,
        )
        try:
            self.ep.reply(m.routing_id, h, payload)
        except PeerTimeout as exc:
            log.warning("transport: inference reply lost: %s", exc)

    def _serve_infer(self, m: Incoming) -> None:
        reason = self._infer_refusal(m)
        if reason is not None:
            self.refuse(reason)
            self._reply(m, Kind.REFUSED, reason.encode())
            return
        h = m.header
        _label, worker = self.engine
        try:
            x = unflatten(payload_from_bytes(m.payload))
            if h.step == 0:
                self.sessions.pop(h.request_id, None)
            from agents.training.kvcache import KVCache

            cache = self.sessions.get(h.request_id)
            if cache is None:
                if h.step != 0:
                    raise TesseraError(f"no decoding session at position {h.step}; restart at 0")
                cache = KVCache()
                self.sessions[h.request_id] = cache
                while len(self.sessions) > MAX_SESSIONS:
                    self.sessions.popitem(last=False)
            self.sessions.move_to_end(h.request_id)
            if cache.length != h.step:
                raise TesseraError(f"session is at position {cache.length}, not {h.step}")
            # The boundary codec the model was trained with, also here.
            if worker.is_first:
                inp, positions = x["tokens"], int(x["tokens"].shape[1])
            else:
                inp, positions = x["x"], int(x["shape"][0])
            out = worker.infer_cached(inp, cache)
        except (TesseraError, ValueError, FrameError, KeyError, RuntimeError) as exc:
            reason = f"inference request 0x{h.request_id.hex()[:12]}: {exc}"
            self.refuse(reason)
            self._reply(m, Kind.REFUSED, reason.encode())
            return
        self.ledger.record(h.request_id)
        self.stats["served_steps"] += 1
        if worker.is_last:
            reply = {"logits": out.to("cpu")}
        else:
            reply = {"x": out, "shape": torch.tensor([positions])}
        reply = _flatten(reply)
        self._reply(m, Kind.REPLY, payload_to_bytes(reply), _h32(tensors_hash(reply)))

    def _infer_refusal(self, m: Incoming) -> str | None:
        """Why an INFER may not be served (None: serve it). Payment first, always."""
        h = m.header
        rid = "0x" + h.request_id.hex()
        if h.job_id != self.job_id or h.stage != self.stage:
            return (
                f"request {rid} is for job {h.job_id} stage {h.stage}, this is stage {self.stage}"
            )
        pay = self._paid.get(h.request_id) or self.view.payment_of(h.request_id)
        if pay.exists:  # a payment never changes once made: read the chain once
            self._paid[h.request_id] = pay
        if not pay.exists:
            return f"request {rid} is not paid on-chain: pay InferencePayments first"
        if pay.model_id != self.job_id:
            return f"request {rid} paid for model {pay.model_id}, not {self.job_id}"
        try:
            ph = _h32(tensors_hash(payload_from_bytes(m.payload)))
            args = (self.view.chain_id, self.view.payments)
            signer = request_signer(h.signature, *args, h.request_id, self.stage, h.step, ph)
        except Exception as exc:
            return f"request {rid}: bad request signature ({str(exc)[:60]})"
        if signer != pay.payer:
            return f"request {rid} is signed by {signer}, but {pay.payer} paid for it"
        over = self.ledger.admit(h.request_id, pay.tokens)
        if over is not None:
            return over
        if self.engine is None and self.engine_loader is not None:
            label, state = self.engine_loader()
            if label is not None:
                spec = self.engine_spec
                self.engine = (label, StageWorker(spec, self.stage, store=None, state=state))
        if self.engine is None:
            return f"stage {self.stage} has no finalized checkpoint to serve yet"
        return None

    def close(self) -> None:
        self.ep.close()


def _flatten(payload: dict) -> dict[str, torch.Tensor]:
    """{"x": {"q":…, "scale":…}} -> {"x.q":…, "x.scale":…} (safetensors is flat)."""
    out = {}
    for k, v in payload.items():
        if isinstance(v, dict):
            out.update({f"{k}.{kk}": vv for kk, vv in v.items()})
        else:
            out[k] = v
    return out


def unflatten(payload: dict[str, torch.Tensor]) -> dict:
    """The inverse of `_flatten`."""
    out: dict[str, Any] = {}
    for k, v in payload.items():
        head, _, tail = k.partition(".")
        if tail:
            out.setdefault(head, {})[tail] = v
        else:
            out[k] = v
    return out
