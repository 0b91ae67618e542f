"""Providers across operators: one OS process each, no shared Ray, talking over the transport.

One job is shared by every scenario (suite time): three providers in three
processes train it over ZeroMQ CURVE on the local anvil; the stage-1
provider is SIGKILLed in the middle of round 1 and started again. Then the
finished stages are attacked over the transport (wrong key, forged
signature, replay, another round, every message kind asking for anything)
and serve inference that is refused unpaid and served paid.
"""

from __future__ import annotations

import time

import pytest
import torch
from integration_helpers import EVERYONE, OWNER, PAYER, PROVIDERS, terms, tiny_spec

from agents.chain.protocol import JobStatus
from agents.lineage import build_dataset, load_document
from agents.lineage.documents import RoundRecord
from agents.protocol.attestation import PayloadContext, sign_payload
from agents.roles.localnet import local_net, start_job
from agents.training.hashing import tensors_hash
from agents.training.pipeline import InProcessPipeline
from agents.training.worker import StageWorker
from agents.transport.endpoint import Endpoint, PeerTimeout
from agents.transport.frames import Header, Kind
from agents.transport.keys import TransportKey, load_or_create_key
from agents.transport.payloads import payload_to_bytes

ROUNDS = 2
STAGES = 3


def _spec(dataset):
    spec = tiny_spec(dataset, STAGES, compression="int8")
    # Long enough rounds that a kill lands inside one.
    return spec.model_copy(
        update={"training": spec.training.model_copy(update={"steps_per_round": 8})}
    )


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    """The shared job, run to completion with a provider killed mid-round."""
    out = tmp_path_factory.mktemp("transport")
    with local_net(out) as net:
        net.fund(EVERYONE)
        corpus = out / "corpus.txt"
        corpus.write_text("".join(f"def f{i}(x):\n    return x * {i}\n" for i in range(2000)))
        dataset, _ = build_dataset(
            net.store, corpus, name="t", source="generated", license="CC0-1.0", shard_size=16_384
        )
        spec = _spec(dataset)
        run = start_job(
            net,
            spec,
            terms(ROUNDS, challenge_window=8),
            owner_index=OWNER,
            provider_indices=PROVIDERS[:STAGES],
            validator_indices=[],
            transport=True,
            peer_timeout=8,
        )
        p = run.owner.protocol
        victim = run.providers[1]
        killed_at = None
        try:
            deadline = time.monotonic() + 400
            while p.job_state(run.job_id).status != JobStatus.COMPLETED:
                assert time.monotonic() < deadline, "job did not complete"
                state = p.job_state(run.job_id)
                run.owner.tick(run.job_id, net.deployment.block)
                if killed_at is None and state.current_round == 1:
                    snap = victim.snapshot()
                    if (snap.get("transport") or {}).get("round") == 1:
                        # Just into the round (8 steps over the transport take over a second
                        # even on a fast machine): a later kill could land after the commit.
                        time.sleep(0.2)
                        committed = p.commitment(run.job_id, 1, 1).exists
                        victim.kill()
                        killed_at = {"committed_before_kill": committed}
                        victim.start()
                time.sleep(0.5)
            yield {"net": net, "run": run, "spec": spec, "killed": killed_at, "p": p}
        except BaseException:
            for proc in run.providers:
                print(f"--- stage {proc.stage} log ---\n{proc.log_text()[-3000:]}")
            raise
        finally:
            run.stop()


def _events(p, name, job_id, block):
    return [e for e in p.client.events("JobMarket", name, block) if int(e.args["jobId"]) == job_id]


def test_three_processes_finish_the_job_over_the_transport_and_are_paid(job):
    net, run, p = job["net"], job["run"], job["p"]
    assert job["killed"] is not None and not job["killed"]["committed_before_kill"]
    paid = {e.args["provider"] for e in _events(p, "StagePaid", run.job_id, net.deployment.block)}
    assert paid == {net.address(i) for i in PROVIDERS[:STAGES]}
    pids = {proc.proc.pid for proc in run.providers}
    assert len(pids) == STAGES  # one OS process per provider
    for proc in run.providers:
        snap = proc.snapshot()
        assert snap["endpoint"].startswith("tcp://127.0.0.1:")
        assert "ray" not in proc.log_text().lower()


def test_a_killed_provider_comes_back_and_nothing_is_lost_or_committed_twice(job):
    net, run, p, spec = job["net"], job["run"], job["p"], job["spec"]
    commits = _events(p, "RoundCommitted", run.job_id, net.deployment.block)
    per_slot = {}
    for e in commits:
        key = (int(e.args["round"]), int(e.args["stage"]))
        per_slot[key] = per_slot.get(key, 0) + 1
    assert per_slot == {(r, s): 1 for r in range(ROUNDS) for s in range(STAGES)}
    # Bitwise: round 1 replayed in one process from round 0's checkpoints computes exactly
    # what the retried round over the transport committed (every hash of every leaf);
    # only the transport's leaves carry the senders' payload signatures.
    workers = []
    for s in range(STAGES):
        rec = load_document(net.store, p.commitment(run.job_id, 0, s).record_cid, RoundRecord)
        workers.append(
            StageWorker(spec, s, store=net.store, state=net.store.cat(rec.new_checkpoint))
        )
    results = InProcessPipeline(workers).train_round(run.job_id, 1)
    signed = {"input_attestation", "grad_in_attestation"}
    zero = "0x" + "00" * 32
    for s, res in enumerate(results):
        rec = load_document(net.store, p.commitment(run.job_id, 1, s).record_cid, RoundRecord)
        assert p.commitment(run.job_id, 1, s).trace_root.lower() == rec.trace_root.lower()
        for mine, theirs in zip(res.leaves, rec.leaves, strict=True):
            assert mine.model_dump(exclude=signed) == theirs.model_dump(exclude=signed)
            assert (theirs.input_attestation != zero) == (s > 0)
            assert (theirs.grad_in_attestation != zero) == (s < STAGES - 1)
        assert rec.leaves[-1].params_after == res.state_hash
    assert job["killed"] == {"committed_before_kill": False}  # the kill hit a round in flight
    assert run.providers[1].snapshot()["transport"]["attempts"] >= 1


@pytest.fixture(scope="module")
def probe(job):
    """A connection into stage 1 made with stage 0's own transport key (a peer gone bad)."""
    run = job["run"]
    target = run.providers[1]
    stage0_key = load_or_create_key(run.providers[0].dir / "transport-key.json")
    stage1_key = load_or_create_key(target.dir / "transport-key.json")
    ep = Endpoint(stage0_key, send_timeout=5)
    ep.connect("stage1", target.snapshot()["endpoint"], stage1_key.public)
    yield ep, target
    ep.close()


def _wait_for_log(proc, text: str, timeout: float = 15.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = proc.log_text()
        if text in log:
            return log
        time.sleep(0.3)
    raise AssertionError(f"{text!r} not in the log of stage {proc.stage}:\n{log[-2000:]}")


def _data(job, *, round_, attempt, signer_index, step=0, mb=0):
    net, run = job["net"], job["run"]
    payload = {"q": torch.zeros(4, 32, 32, dtype=torch.int8), "scale": torch.ones(4, 32, 1)}
    ph = bytes.fromhex(tensors_hash(payload)[2:])
    ctx = PayloadContext(
        net.chain.chain_id,
        net.deployment.address("JobMarket"),
        run.job_id,
        round_,
        0,
        step,
        mb,
        0,
    )
    sig = sign_payload(net.keys[signer_index].key, ctx, ph)
    h = Header(
        Kind.DATA, run.job_id, round_, attempt, 0, step, mb, 0, payload_hash=ph, signature=sig
    )
    return h, payload_to_bytes(payload)


def test_a_peer_with_the_wrong_key_is_refused_and_named(job):
    target = job["run"].providers[1]
    stranger = TransportKey.generate()
    stage1_key = load_or_create_key(target.dir / "transport-key.json")
    ep = Endpoint(stranger, send_timeout=2)
    ep.connect("stage1", target.snapshot()["endpoint"], stage1_key.public)
    with pytest.raises(PeerTimeout):
        ep.send("stage1", Header(Kind.DATA, job["run"].job_id, 0, 1, 0), b"")
    ep.close()
    _wait_for_log(target, f"transport key {stranger.public.decode()}")


def test_forged_replayed_and_other_round_messages_are_refused_and_named(job, probe):
    ep, target = probe
    t = target.snapshot()["transport"]
    last_round, attempt = t["round"], t["attempt"]
    outsider = EVERYONE[-1]  # a funded account that holds no stage
    h, body = _data(job, round_=last_round, attempt=attempt + 1, signer_index=outsider)
    ep.send("stage1", h, body)
    _wait_for_log(target, f"is signed by {job['net'].address(outsider)}")
    h, body = _data(job, round_=last_round, attempt=attempt, signer_index=PROVIDERS[0])
    ep.send("stage1", h, body)
    _wait_for_log(target, "replayed")
    h, body = _data(job, round_=last_round + 5, attempt=attempt, signer_index=PROVIDERS[0])
    ep.send("stage1", h, body)
    _wait_for_log(target, f"message for round {last_round + 5}")
    # None of these moved the stage: it still reports the same finished attempt.
    assert target.snapshot()["transport"]["attempt"] == attempt


def test_no_message_yields_a_stages_weights(job, probe):
    ep, target = probe
    net, p, run = job["net"], job["p"], job["run"]
    rec = load_document(net.store, p.commitment(run.job_id, ROUNDS - 1, 1).record_cid, RoundRecord)
    state = net.store.cat(rec.new_checkpoint)
    from agents.training.checkpoint import state_from_bytes

    tensors = state_from_bytes(state, stage=1).tensors
    needles = [t.numpy().tobytes()[:32] for t in tensors.values() if t.numel() >= 8]
    got = b""
    rid = b"\x07" * 32
    for kind in Kind:
        h = Header(kind, run.job_id, ROUNDS - 1, 1, 1, request_id=rid)
        ep.send("stage1", h, payload_to_bytes({"x": torch.zeros(1)}))
    for raw_kind in (0, 6, 7, 42, 255):  # kinds that do not exist are refused at the frame
        from agents.transport.frames import encode_header

        frame = bytearray(encode_header(Header(Kind.RESET, run.job_id, 0, 0, 0)))
        frame[4] = raw_kind
        ep._peers["stage1"].send(bytes(frame))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        m = ep.recv_from("stage1", 0.5)
        if m is not None:
            assert m.header.kind is Kind.REFUSED  # the only answer anything gets
            got += m.payload
    assert all(n not in got for n in needles)
    _wait_for_log(target, "unknown message kind 42")


def test_inference_is_refused_unpaid_and_served_paid_and_settled(job, capsys):
    from agents.errors import TesseraError
    from agents.roles.gateway import TransportGateway

    net, run = job["net"], job["run"]
    payer = net.protocol(PAYER)
    gw = TransportGateway(payer, net.store, run.job_id, TransportKey.generate(), timeout=20)
    try:
        with pytest.raises(TesseraError, match="is not paid on-chain") as unpaid:
            gw.generate("def ", 4, request_id=b"\x01" * 32)
        assert "\n" not in str(unpaid.value)
        holder = net.protocol(OWNER)
        before = holder.client.call("ModelShares", "claimable", run.job_id, holder.client.address)
        rid, fee = gw.pay(6)
        done = gw.generate("def ", 6, request_id=rid, fee=fee)
        assert len(done.text) == 6 and fee > 0
        after = holder.client.call("ModelShares", "claimable", run.job_id, holder.client.address)
        supply = payer.total_shares(run.job_id)
        share = payer.shares_of(run.job_id, holder.client.address)
        assert abs((after - before) - fee * share // supply) <= 1
        with pytest.raises(TesseraError, match="paid for 6 tokens"):
            gw.generate("def ", 1, request_id=rid)  # the request is used up
        with capsys.disabled():
            print(f"\ninference over the transport: {done.tokens_per_second:.1f} tokens/s")
    finally:
        gw.close()
