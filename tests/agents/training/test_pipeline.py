"""The pipeline: traces chain across stages, matches the baseline, Ray == in-process bitwise."""

from __future__ import annotations

import pytest
import torch

from agents.lineage.documents import RoundRecord
from agents.spec import DeterminismConfig, TrainingConfig
from agents.training.audit import check_boundaries
from agents.training.baseline import train_baseline
from agents.training.checkpoint import state_from_bytes
from agents.training.errors import DeterminismError, PipelineError
from agents.training.hashing import ZERO_HASH
from agents.training.links import LinkClosed
from agents.training.pipeline import InProcessPipeline, RayPipeline
from agents.training.traces import trace_tree
from agents.training.worker import StageWorker


def _records(results, spec_cid: str) -> list[RoundRecord]:
    return [
        r.to_record(
            provider="0x" + "00" * 19 + f"{r.stage + 1:02x}",
            spec=spec_cid,
            new_checkpoint=spec_cid,
        )
        for r in results
    ]


def test_round_traces_chain_stage_to_stage_and_count_every_byte(spec, store):
    workers = [StageWorker(spec, s, store=store) for s in range(3)]
    results = InProcessPipeline(workers).train_round(job_id=4, round=0)
    m, steps = spec.training.micro_batches, spec.training.steps_per_round
    for r in results:
        assert [leaf.index for leaf in r.leaves] == list(range(m * steps))
        assert r.trace_root == trace_tree(r.leaves).root_hex
        # params_after of one step is params_before of the next.
        for a, b in zip(r.leaves[m - 1 :: m], r.leaves[m::m], strict=False):
            assert a.params_after == b.params_before != b.params_after
    assert check_boundaries(_records(results, spec.dataset)) == []
    first, mid, last = results
    assert {leaf.grad_out for leaf in first.leaves} == {ZERO_HASH}
    assert {leaf.data_ref for leaf in mid.leaves} == {ZERO_HASH}
    assert len({leaf.data_ref for leaf in first.leaves}) == m * steps
    # Uncompressed fp32 activations: micro_batch_size * seq_len * d_model * 4 bytes per hop.
    hop = spec.training.micro_batch_size * spec.model.seq_len * spec.model.d_model * 4
    assert first.bytes_sent == first.bytes_received == hop * m * steps
    assert mid.bytes_sent == mid.bytes_received == 2 * hop * m * steps
    assert sum(r.bytes_sent for r in results) == sum(r.bytes_received for r in results)
    assert first.data_shards and set(first.data_shards) == set(last.data_shards)
    assert "loss" in last.metrics and "loss" not in first.metrics


def test_a_mismatched_boundary_is_reported(spec, store):
    workers = [StageWorker(spec, s, store=store) for s in range(3)]
    records = _records(InProcessPipeline(workers).train_round(0, 0), spec.dataset)
    leaves = list(records[1].leaves)
    leaves[2] = leaves[2].model_copy(update={"input": "0x" + "ee" * 32})
    records[1] = records[1].model_copy(update={"leaves": leaves})
    assert check_boundaries(records) == ["leaf 2: stage 0 output != stage 1 input"]


def test_uncompressed_pipeline_tracks_the_single_process_baseline(spec, store):
    workers = [StageWorker(spec, s, store=store) for s in range(3)]
    pipe = InProcessPipeline(workers)
    losses = []
    for r in range(2):
        losses.append(pipe.train_round(job_id=1, round=r)[-1].metrics["loss_last"])
    base = train_baseline(spec, store, job_id=1, rounds=2)
    assert base.losses[-1] == pytest.approx(losses[-1], rel=1e-5)
    params = {n: p for w in workers for n, p in w.module.named_parameters()}
    for n, p in base.model.named_parameters():
        assert torch.allclose(p, params[n], rtol=1e-4, atol=1e-6), n
    assert base.losses[-1] < base.losses[0]  # it learns


def test_calls_out_of_gpipe_order_are_refused(spec, store):
    w = StageWorker(spec, 0, store=store)
    with pytest.raises(PipelineError, match="outside a round"):
        w.forward(0, 0)
    w.begin_round(0, 0)
    with pytest.raises(PipelineError, match="expected forward"):
        w.forward(0, 1)
    w.forward(0, 0)
    with pytest.raises(PipelineError, match="expected forward"):
        w.step(0)
    # Backwards go in micro-batch order, each after its own forward.
    with pytest.raises(PipelineError, match=r"or backward\(step 0, micro_batch 0\)$"):
        w.backward(0, 1)
    with pytest.raises(PipelineError, match="unfinished"):
        w.end_round()
    with pytest.raises(PipelineError, match="stages"):
        InProcessPipeline([StageWorker(spec, 1, store=store)])


def test_a_process_that_cannot_match_the_spec_refuses_to_train(spec_factory, store):
    spec = spec_factory(determinism=DeterminismConfig(seed=1, torch_version="0.0.1"))
    with pytest.raises(DeterminismError, match=r"torch 0\.0\.1"):
        StageWorker(spec, 0, store=store)
    current = torch.backends.cpu.get_cpu_capability()
    other = "default" if current.upper() != "DEFAULT" else "avx2"
    spec = spec_factory(determinism=DeterminismConfig(seed=1, cpu_capability=other))
    with pytest.raises(DeterminismError, match="CPU kernels"):
        StageWorker(spec, 0, store=store)


def test_ray_pipeline_is_bitwise_identical_to_in_process(
    ray_cluster, spec_factory, store, tmp_path
):
    from agents.training.pipeline import StageActor

    spec = spec_factory(compression="subspace", codec={"rank": 8})
    workers = [StageWorker(spec, s, store=store) for s in range(3)]
    local = InProcessPipeline(workers)
    store_path = tmp_path / "store"  # the same store directory, opened by each actor
    actors = [StageActor.remote(spec, s, store=str(store_path), num_threads=1) for s in range(3)]
    remote = RayPipeline(actors)
    for r in range(2):
        a = local.train_round(job_id=9, round=r)
        b = remote.train_round(job_id=9, round=r)
        for x, y in zip(a, b, strict=True):
            assert x.leaves == y.leaves
            assert x.trace_root == y.trace_root
            assert x.state_bytes == y.state_bytes
            assert (x.bytes_sent, x.bytes_received) == (y.bytes_sent, y.bytes_received)
            assert x.determinism == y.determinism
    # Parameters really moved; the checkpoint holds no codec state (nothing but
    # parameters and optimizer state).
    start = StageWorker(spec, 1, store=store).state_hash()
    assert b[1].state_hash != start
    kinds = {k.split("/")[0] for k in state_from_bytes(b[1].state_bytes).tensors}
    assert kinds == {"param", "optim"}
    assert local.generate(b"Tessera ", 12) == remote.generate(b"Tessera ", 12)
    assert len(remote.generate(b"ab", 5, temperature=1.0, seed=3)) == 7
    for actor in actors:
        ray_cluster.kill(actor)


def test_a_failing_stage_ends_the_round_everywhere_with_its_own_error(
    ray_cluster, spec_factory, store, tmp_path
):
    """The last stage's store lacks the dataset: its error is the one raised, at once;
    the stages waiting on it only saw their links close."""
    import time

    from agents.training.pipeline import StageActor

    spec = spec_factory(training=TrainingConfig(batch_size=4, micro_batches=2, steps_per_round=50))
    stores = [str(tmp_path / "store")] * 2 + [str(tmp_path / "elsewhere")]
    actors = [StageActor.remote(spec, s, store=stores[s], num_threads=1) for s in range(3)]
    pipe = RayPipeline(actors, link_timeout=300)
    t0 = time.monotonic()
    with pytest.raises(Exception) as info:
        pipe.train_round(job_id=1, round=0)
    assert time.monotonic() - t0 < 60  # not the links' 300 s timeout
    assert not isinstance(getattr(info.value, "cause", None), LinkClosed)
    assert spec.dataset in str(info.value)
    # A failed actor refuses to go on from a half-applied round.
    with pytest.raises(Exception, match="restart this actor from a checkpoint"):
        pipe.train_round(job_id=1, round=0)
    for actor in actors:
        ray_cluster.kill(actor)


def test_a_stage_killed_mid_round_fails_the_round_promptly(ray_cluster, spec_factory, tmp_path):
    import threading
    import time

    from agents.training.pipeline import StageActor

    spec = spec_factory(
        training=TrainingConfig(batch_size=4, micro_batches=2, steps_per_round=2000)
    )
    actors = [
        StageActor.remote(spec, s, store=str(tmp_path / "store"), num_threads=1) for s in range(3)
    ]
    pipe = RayPipeline(actors, link_timeout=300)
    pipe._link()
    killer = threading.Timer(3.0, ray_cluster.kill, args=(actors[1],))
    killer.start()
    t0 = time.monotonic()
    with pytest.raises(ray_cluster.exceptions.RayActorError):
        pipe.train_round(job_id=1, round=0)
    assert 3.0 <= time.monotonic() - t0 < 60  # the neighbours saw the link drop, not a timeout
    killer.join()
    for actor in (actors[0], actors[2]):
        ray_cluster.kill(actor)


def test_ray_wire_form_keeps_every_payload_dtype_bit_for_bit():
    """Payloads cross Ray as numpy arrays; numpy lacks bfloat16 (the codec's channel
    scales), so those travel as tagged int16 bits and come back identical."""
    from agents.training.pipeline import from_wire, to_wire

    payload = {
        "q": torch.randint(0, 256, (2, 4, 4), dtype=torch.uint8),
        "scale": torch.tensor([1e-30, 3.0, -0.0, 7.5e-6], dtype=torch.bfloat16),
        "pos": torch.rand(2, 4, 1).to(torch.float16),
        "tokens": torch.randint(0, 256, (2, 4), dtype=torch.uint8),
    }
    back = from_wire(to_wire(payload))
    assert set(back) == set(payload)
    for k, v in payload.items():
        assert back[k].dtype == v.dtype
        assert torch.equal(back[k].view(torch.uint8), v.view(torch.uint8))
    with pytest.raises(PipelineError, match="not an array"):
        from_wire({"q": [1, 2, 3]})
