"""examples/gpu_validation/validate_gguf_on_vllm.py: importable without GPU packages; its verdict logic."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[1] / "examples" / "gpu_validation" / "validate_gguf_on_vllm.py"

# Importing the script must not touch any GPU-side package, installed or not.
_BLOCKED_IMPORT = f"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {{"vllm", "torch", "llama_cpp", "transformers", "numpy"}}:
            raise ImportError(f"blocked: {{name}}")
sys.meta_path.insert(0, Block())
import importlib.util
spec = importlib.util.spec_from_file_location("validate", {str(SCRIPT)!r})
module = importlib.util.module_from_spec(spec)
sys.modules["validate"] = module
spec.loader.exec_module(module)
print(module.PROMPTS[1])
"""


def _load():
    spec = importlib.util.spec_from_file_location("validate_gguf_on_vllm", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


validate = _load()


def test_import_needs_no_gpu_packages():
    command = [sys.executable, "-c", _BLOCKED_IMPORT]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    assert (done.returncode, done.stdout, done.stderr) == (0, "What is a Mixture of Experts model?\n", "")


def test_help_runs_without_gpu_packages():
    command = [sys.executable, str(SCRIPT), "--help"]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    assert done.returncode == 0
    assert "--hf-config" in done.stdout


def _run(tokens, tops=None):
    tops = tops or [{t: -0.1} for t in tokens]
    return validate.Run(tokens=tokens, top_logprobs=tops, text=" ".join(map(str, tokens)))


def test_identical_runs_pass():
    verdict = validate.compare_runs("p", _run([5, 6, 7]), _run([5, 6, 7]))
    assert (verdict.ok, verdict.agreeing_tokens, verdict.reason) == (True, 3, "all 3 greedy tokens identical")


def test_late_near_tie_passes():
    tie = [{1: -0.1}, {2: -0.1}, {3: -0.1}, {4: -0.1}, {9: -0.70, 8: -0.72}]
    vllm = _run([1, 2, 3, 4, 9], tie)
    llama_cpp = _run([1, 2, 3, 4, 8], [*tie[:4], {8: -0.69, 9: -0.71}])
    verdict = validate.compare_runs("p", vllm, llama_cpp)
    assert (verdict.ok, verdict.reason) == (
        True,
        "first 4 tokens identical, then a near tie (0.02 nats between the choices)",
    )


@pytest.mark.parametrize(
    ("vllm_tops", "reason"),
    [
        ([{7: -0.01, 3: -6.0}], "tokens differ at position 0 (7 vs 3, 5.99 nats apart)"),
        ([{7: -0.01}], "tokens differ at position 0 (7 vs 3, each outside the other's top candidates)"),
    ],
)
def test_early_confident_divergence_fails(vllm_tops, reason):
    verdict = validate.compare_runs("p", _run([7], vllm_tops), _run([3], [{3: -0.02}]))
    assert (verdict.ok, verdict.agreeing_tokens, verdict.reason) == (False, 0, reason)


def test_no_tokens_fails():
    verdict = validate.compare_runs("p", _run([]), _run([1]))
    assert (verdict.ok, verdict.reason) == (False, "an engine generated no tokens")
