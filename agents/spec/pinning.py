"""Determinism settings a job must pin so that a replay can be bitwise (or abstain).

A replay is bitwise on CPU only with the same torch build, kernel set
(`ATEN_CPU_CAPABILITY`), thread count and device (TOOLCHAIN.md). A spec that
leaves one open lets each provider pick its own, and a validator could not
tell a different platform from a cheat. So a job is posted only with every
setting pinned: `pin_determinism` fills what a job file left open from the
poster's own process, `require_pinned` refuses what is still open.
"""

from __future__ import annotations

from agents.errors import TesseraError
from agents.spec.job import JobSpec


class UnpinnedSpecError(TesseraError):
    """A job spec leaves a determinism setting open."""


def open_settings(spec: JobSpec) -> list[str]:
    """The determinism settings `spec` leaves open (empty: fully pinned)."""
    det = spec.determinism
    out = []
    if not det.torch_version:
        out.append("determinism.torch_version")
    if det.device == "cpu" and not det.cpu_capability:
        out.append("determinism.cpu_capability")
    if not spec.audit.cross_platform_rtol > 0:
        out.append("audit.cross_platform_rtol")
    return out


def pin_determinism(spec: JobSpec) -> JobSpec:
    """`spec` with every open setting filled from this process's torch build and kernels."""
    import torch

    det = spec.determinism
    update = {}
    if not det.torch_version:
        update["torch_version"] = torch.__version__
    if det.device == "cpu" and not det.cpu_capability:
        update["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    if not update:
        return spec
    return spec.model_copy(update={"determinism": det.model_copy(update=update)})


def require_pinned(spec: JobSpec) -> JobSpec:
    """`spec` itself if every determinism setting is pinned; else one clear error."""
    missing = open_settings(spec)
    if missing:
        raise UnpinnedSpecError(
            f"job spec leaves {', '.join(missing)} open: a replay could not tell another "
            "platform from a cheat (pin them, or post through `tessera job post`, which fills them)"
        )
    return spec
