"""The single-process baseline: the same model, data and optimizer, no pipeline.

It reads the same seeded micro-batches as stage 0, accumulates the same
1/M-scaled gradients and takes the same AdamW steps, without compression, so
an uncompressed pipeline must track it to float tolerance. Used for
comparison (and by the benchmark), never as evidence in the protocol.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch

from agents.spec import JobSpec
from agents.training.data import DataSource
from agents.training.determinism import apply_determinism
from agents.training.model import GPT
from agents.training.optim import build_optimizer, set_step_rate


@dataclass(frozen=True)
class BaselineRun:
    """Per-step mean losses, the trained model and throughput."""

    losses: list[float]
    model: GPT
    seconds: float
    tokens: int

    @property
    def tokens_per_second(self) -> float:
        """Training tokens processed per wall-clock second."""
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


def train_baseline(
    spec: JobSpec,
    store: Any,
    *,
    job_id: int,
    rounds: int,
    start_round: int = 0,
    device: str | None = None,
) -> BaselineRun:
    """Train `GPT(spec.model)` in one process on the job's data for `rounds` rounds."""
    apply_determinism(spec.determinism.model_copy(update={"device": "cpu"}))
    dev = torch.device(device or spec.determinism.device)
    model = GPT(spec.model, seed=spec.determinism.seed).to(dev)
    optimizer = build_optimizer(model.parameters(), spec.optimizer)
    data = DataSource(spec, store)
    t = spec.training
    losses: list[float] = []
    tokens = 0
    t0 = time.perf_counter()
    for r in range(start_round, start_round + rounds):
        for step in range(t.steps_per_round):
            optimizer.zero_grad(set_to_none=True)
            total = 0.0
            for mb in range(t.micro_batches):
                batch = data.micro_batch(job_id, r, step, mb)
                _, loss = model(batch.tokens.to(dev), batch.targets.to(dev))
                # The same seed as the pipeline's last stage: d(mean loss)/d(loss_mb) = 1/M.
                loss.backward(torch.tensor(1.0 / t.micro_batches, device=dev))
                total += float(loss.detach())
                tokens += batch.tokens.numel()
            set_step_rate(optimizer, spec.optimizer, r * t.steps_per_round + step)
            optimizer.step()
            losses.append(total / t.micro_batches)
    return BaselineRun(losses, model, time.perf_counter() - t0, tokens)
