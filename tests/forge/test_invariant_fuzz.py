"""The forge invariant campaign (tests/forge/*.t.sol), CI profile, as part of `make test`.

Forge calls random actions of every protocol party, malicious ones included, and checks every
invariant after every call (see tests/forge/ProtocolInvariants.t.sol). This test fails when
forge fails (an invariant broke, or the suite did not compile) or when the campaign made fewer
calls than the CI profile promises.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "fuzz.py"
CI_MIN_CALLS = 20_000


def _load():
    spec = importlib.util.spec_from_file_location("tessera_fuzz_script", _SCRIPT)
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up in sys.modules.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_invariants_hold_for_ci_profile():
    """Every invariant holds over >= 20,000 random calls; prints forge's call/revert summary."""
    fuzz = _load()
    result = fuzz.run_fuzz("default", echo=False)
    print(result.output[-6000:])
    print(result.summary("ci"))
    assert result.returncode == 0, result.summary("ci") + "\n" + result.output[-4000:]
    assert result.campaigns, "forge ran no invariant campaign"
    assert result.calls >= CI_MIN_CALLS, result.summary("ci")
    assert all(c.passed for c in result.campaigns)
