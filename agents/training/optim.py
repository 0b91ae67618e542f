"""The optimizer of a stage (and of the one-process baseline), and its per-step rate."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from agents.spec import OptimizerConfig


def build_optimizer(
    params: Iterable[torch.nn.Parameter], cfg: OptimizerConfig
) -> torch.optim.AdamW:
    """AdamW as the spec names it, at the rate of global step 0."""
    # foreach=False: one fixed kernel sequence on every device, so a CPU
    # replay and a CUDA run differ only by arithmetic, never by algorithm.
    return torch.optim.AdamW(
        params,
        lr=cfg.lr_at(0),
        betas=cfg.betas,
        eps=cfg.eps,
        weight_decay=cfg.weight_decay,
        foreach=False,
    )


def set_step_rate(optimizer: torch.optim.Optimizer, cfg: OptimizerConfig, global_step: int) -> None:
    """Set the learning rate the update of `global_step` uses."""
    lr = cfg.lr_at(global_step)
    for group in optimizer.param_groups:
        group["lr"] = lr
