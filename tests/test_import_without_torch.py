"""The core must install and import with numpy and the standard library only."""

from __future__ import annotations

import subprocess
import sys

BLOCK_TORCH = """
import sys

class BlockTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked in this test")
        return None

sys.meta_path.insert(0, BlockTorch())
import safecontrol
import safecontrol.testing
controller = safecontrol.SafeController()
decision = controller.update(kl=0.5, entropy=1.0, reward=0.1)
assert decision.threshold > 0
assert not any(m == "torch" or m.startswith("torch.") for m in sys.modules), "torch got imported"
print("ok")
"""


def test_core_imports_and_runs_with_torch_blocked():
    result = subprocess.run(
        [sys.executable, "-c", BLOCK_TORCH], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_torch_adapter_import_fails_clearly_without_torch():
    code = BLOCK_TORCH.split("import safecontrol\n")[0] + "import safecontrol.torch\n"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "torch" in result.stderr
