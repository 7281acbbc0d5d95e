"""FormatRegistry: validation at registration, unique priorities, read-only views, entry points."""

from __future__ import annotations

import sys
import textwrap

import pytest

from modelformats.errors import DuplicateRegistrationError, NoWeightsError, RegistrationError
from modelformats.formats.base import Detection, ServingFacts
from modelformats.formats.hf import AWQFormat, SafeTensorsFormat
from modelformats.listing import RepoFile, RepoListing
from modelformats.registry import FormatRegistry, default_registry, disabled_from_env


class FakeFormat:
    """A strategy without inheritance: the protocol is structural."""

    name = "fake"
    priority = 7
    description = "a fake format"
    serving = ServingFacts()

    def detect(self, listing):
        if listing.has("weights.fake"):
            return Detection(format=self.name, evidence=("weights.fake present",))
        return None

    def select_files(self, listing, detection, context):
        raise NotImplementedError


def test_register_and_read_only_view():
    registry = FormatRegistry([SafeTensorsFormat()])
    registry.register(FakeFormat())
    assert list(registry.formats) == ["safetensors", "fake"]  # highest priority first
    with pytest.raises(TypeError):
        registry.formats["x"] = FakeFormat()  # type: ignore[index]


def test_duplicates_are_refused_unless_replaced():
    registry = FormatRegistry([FakeFormat()])
    with pytest.raises(DuplicateRegistrationError) as exc:
        registry.register(FakeFormat())
    assert str(exc.value) == "A format named 'fake' is already registered; pass replace=True to replace it."
    registry.register(FakeFormat(), replace=True)


def test_equal_priorities_are_refused():
    class Other(FakeFormat):
        name = "other"

    registry = FormatRegistry([FakeFormat()])
    with pytest.raises(RegistrationError) as exc:
        registry.register(Other())
    assert str(exc.value) == (
        "Format 'other' has priority 7, already used by 'fake'; priorities decide conflicts and must be unique. "
        "Pick another priority."
    )


def test_invalid_strategies_are_refused_with_every_problem():
    class Broken:
        name = "Bad Name"
        priority = "high"

        def detect(self):
            return None

    with pytest.raises(RegistrationError) as exc:
        FormatRegistry().register(Broken())  # type: ignore[arg-type]
    message = str(exc.value)
    assert "name must be a lower-case identifier like 'safetensors', got 'Bad Name'" in message
    assert "priority must be an int, got 'high'" in message
    assert "description must be a string" in message
    assert "detect() must take 1 positional argument(s), takes 0" in message
    assert "has no callable select_files()" in message
    assert (
        "serving must be a ServingFacts (the engines, vLLM quantization and floor of the format), got None" in message
    )


def test_detect_keeps_every_claim_and_the_rule():
    listing = RepoListing(
        repo_id="a/b",
        files=(RepoFile(path="model.safetensors"), RepoFile(path="config.json")),
        tags=("awq",),
    )
    result = FormatRegistry([SafeTensorsFormat(), AWQFormat()]).detect(listing)
    assert result.detection.format == "awq"
    assert [c.format for c in result.candidates] == ["awq", "safetensors"]
    assert result.rule == "'awq' has the highest priority among ['awq', 'safetensors']"


def test_no_weights_lists_what_was_found():
    listing = RepoListing(repo_id="a/b", files=(RepoFile(path="README.md"), RepoFile(path="data.csv")))
    with pytest.raises(NoWeightsError) as exc:
        FormatRegistry([SafeTensorsFormat()]).detect(listing)
    assert str(exc.value) == (
        "No model weights found in 'a/b'. Files seen: README.md, data.csv. Expected one of: *.safetensors, "
        "pytorch_model*.bin, *.gguf. If this is a dataset or a Space, it cannot be served."
    )


def test_disabled_formats_are_skipped_and_unknown_ones_refused():
    listing = RepoListing(repo_id="a/b", files=(RepoFile(path="model.safetensors"),), tags=("awq",))
    registry = FormatRegistry([SafeTensorsFormat(), AWQFormat()])
    assert registry.detect(listing, disabled=["awq"]).detection.format == "safetensors"
    with pytest.raises(RegistrationError, match=r"Cannot disable unknown format\(s\) \['nope'\]"):
        registry.copy(without=["nope"])


def test_disable_env_parsing():
    assert disabled_from_env({"MODELFORMATS_DISABLE": " GGUF, exl2 ,,"}) == ("exl2", "gguf")
    assert disabled_from_env({}) == ()


def test_third_party_formats_register_through_entry_points(tmp_path, monkeypatch):
    pkg = tmp_path / "thirdparty_fmt.py"
    pkg.write_text(
        textwrap.dedent(
            """
            from modelformats.formats.base import Detection, ServingFacts

            class TensorizerFormat:
                name = "tensorizer"
                priority = 3
                description = "CoreWeave tensorizer streams"
                serving = ServingFacts()

                def detect(self, listing):
                    hits = [p for p in listing.paths if p.endswith(".tensors")]
                    return Detection(format=self.name, evidence=tuple(hits)) if hits else None

                def select_files(self, listing, detection, context):
                    raise NotImplementedError
            """
        )
    )
    dist = tmp_path / "thirdparty_fmt-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: thirdparty-fmt\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[modelformats.formats]\ntensorizer = thirdparty_fmt:TensorizerFormat\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = FormatRegistry()
    assert registry.load_entry_points() == ["tensorizer"]
    listing = RepoListing(repo_id="a/b", files=(RepoFile(path="model.tensors"),))
    assert registry.detect(listing).detection.format == "tensorizer"
    sys.modules.pop("thirdparty_fmt", None)


def test_default_registry_has_every_builtin_format():
    assert set(default_registry().formats) >= {
        "safetensors", "pytorch", "gptq", "awq", "fp8", "compressed-tensors", "bitsandbytes", "gguf",
        "exl2", "mlx", "onnx", "meta-consolidated", "lora-adapter",
    }  # fmt: skip
