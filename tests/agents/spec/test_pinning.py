"""A job is posted only with every determinism setting a replay needs pinned."""

import pytest
import torch

from agents.spec import DeterminismConfig, JobSpec, ModelConfig
from agents.spec.pinning import UnpinnedSpecError, open_settings, pin_determinism, require_pinned

CID = "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"


def _spec(**det) -> JobSpec:
    return JobSpec(
        name="p",
        model=ModelConfig(n_layer=2, n_head=2, d_model=16, seq_len=8),
        num_stages=2,
        dataset=CID,
        determinism=DeterminismConfig(**det),
    )


def test_an_open_spec_is_refused_with_one_line_naming_every_open_setting():
    with pytest.raises(UnpinnedSpecError) as exc:
        require_pinned(_spec())
    msg = str(exc.value)
    assert "\n" not in msg
    assert "determinism.torch_version" in msg and "determinism.cpu_capability" in msg


def test_pinning_fills_what_is_open_from_this_process_and_keeps_what_is_set():
    pinned = pin_determinism(_spec(seed=3))
    assert pinned.determinism.torch_version == torch.__version__
    assert pinned.determinism.cpu_capability == torch.backends.cpu.get_cpu_capability()
    assert pinned.determinism.seed == 3
    assert open_settings(pinned) == [] and require_pinned(pinned) is pinned
    kept = pin_determinism(_spec(torch_version="9.9", cpu_capability="AVX2"))
    assert (kept.determinism.torch_version, kept.determinism.cpu_capability) == ("9.9", "AVX2")


def test_cuda_specs_need_no_cpu_kernel_set():
    assert open_settings(_spec(device="cuda", torch_version="2.13.0")) == []


def test_owner_refuses_to_post_an_open_spec():
    from agents.roles.jobfile import TermsInput
    from agents.roles.owner import OwnerAgent

    terms = TermsInput(rounds=1, reward_per_stage_round=1, min_stake=1)
    # Refused before anything is stored or sent: no store, no chain needed.
    with pytest.raises(UnpinnedSpecError):
        OwnerAgent(protocol=None, store=None).post(_spec(), terms)
