"""Put this process in the state a job spec fixes, and say what it actually is.

A replay is bitwise identical on CPU only with the same torch build, thread
count, micro-batch split and CPU kernel set (TOOLCHAIN.md). The kernel set is
read by ATen once, at the first dispatched op, from ATEN_CPU_CAPABILITY; so we
set that variable before any tensor work and then check what ATen chose.
"""

from __future__ import annotations

import os
import random

from agents.spec import DeterminismConfig
from agents.training.errors import DeterminismError


def apply_determinism(det: DeterminismConfig) -> DeterminismConfig:
    """Apply `det` to this process; return the settings in force (all fields filled).

    Raises DeterminismError if the torch version or CPU kernel set cannot be
    what the spec names (empty fields in the spec mean "record, don't require").
    """
    previous = os.environ.get("ATEN_CPU_CAPABILITY")
    if det.cpu_capability and det.device == "cpu":
        # Only effective before the first tensor op of the process; checked below.
        os.environ["ATEN_CPU_CAPABILITY"] = det.cpu_capability.lower()
    try:
        import torch

        capability = torch.backends.cpu.get_cpu_capability()
    finally:
        # ATen has read it by now; don't leak it into child processes (Ray
        # workers), which apply their own spec.
        if previous is None:
            os.environ.pop("ATEN_CPU_CAPABILITY", None)
        else:
            os.environ["ATEN_CPU_CAPABILITY"] = previous
    if det.torch_version and torch.__version__ != det.torch_version:
        raise DeterminismError(
            f"spec needs torch {det.torch_version}, this process has {torch.__version__}"
        )
    if (
        det.cpu_capability
        and det.device == "cpu"
        and capability.upper() != det.cpu_capability.upper()
    ):
        raise DeterminismError(
            f"spec needs CPU kernels {det.cpu_capability!r}, this process uses {capability!r} "
            "(set ATEN_CPU_CAPABILITY before torch runs any op)"
        )
    if det.device == "cuda":
        if not torch.cuda.is_available():
            raise DeterminismError("spec needs device 'cuda', none is available")
        # TF32 off and deterministic cuBLAS: same-platform replays are bitwise.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.use_deterministic_algorithms(True)
    torch.set_num_threads(det.num_threads)
    torch.manual_seed(det.seed)
    random.seed(det.seed)
    return DeterminismConfig(
        seed=det.seed,
        num_threads=torch.get_num_threads(),
        torch_version=torch.__version__,
        cpu_capability=capability,
        device=det.device,
    )
