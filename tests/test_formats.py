"""Every built-in non-GGUF format passes the shared contract, on real recorded listings and on
small listings that carry the config.json the recordings lack."""

from __future__ import annotations

from pathlib import Path

import pytest

from contract import FormatContract
from modelformats.errors import IncompleteUploadError, UnservableFormatError
from modelformats.formats.base import SelectionContext
from modelformats.formats.hf import (
    AWQFormat,
    BitsAndBytesFormat,
    CompressedTensorsFormat,
    FP8Format,
    GPTQFormat,
    PyTorchBinFormat,
    SafeTensorsFormat,
)
from modelformats.formats.unservable import (
    EXL2Format,
    LoraAdapterFormat,
    MetaConsolidatedFormat,
    MLXFormat,
    ONNXFormat,
)
from modelformats.listing import RepoFile, RepoListing, load_listing

LISTINGS = Path(__file__).parent / "data" / "listings"


def fixture(name: str) -> RepoListing:
    return load_listing(LISTINGS / f"{name}.json")


def synthetic(repo_id: str, paths: list[str], *, config: dict | None = None, **kw) -> RepoListing:
    """A listing that states its config.json; for cases the recordings do not carry."""
    return RepoListing(repo_id=repo_id, files=tuple(RepoFile(path=p, size=1000) for p in paths), config=config, **kw)


def quantized(method: str, **extra) -> dict:
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "quantization_config": {"quant_method": method, **extra},
    }


HF_FILES = ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "README.md"]


class TestSafeTensors(FormatContract):
    fmt = SafeTensorsFormat()
    claims = (
        fixture("DavidAU__Llama-3.2-8X3B-MOE-Dark-Champion-Instruct-uncensored-abliterated-18.4B"),
        fixture("mistralai__Mistral-Nemo-Instruct-2407"),
        fixture("model-hub__Mixtral-8x7B-v0.1"),
        fixture("deepseek-ai__DeepSeek-V2-Lite"),
        synthetic("a/single", HF_FILES, config={"model_type": "llama"}),
    )
    rejects = (fixture("lmsys__vicuna-7b-v1.5"), fixture("unsloth__gemma-3-1b-it-GGUF"))

    def test_duplicate_native_weights_are_excluded(self):
        listing = fixture("model-hub__Mixtral-8x7B-v0.1")
        d = self.fmt.detect(listing)
        sel = self.fmt.select_files(listing, d, SelectionContext())
        assert [f for f in sel.files if f.endswith(".safetensors")] == [
            f"model-{i:05d}-of-00019.safetensors" for i in range(1, 20)
        ]
        excluded = {e.reason: e.paths for e in sel.excluded}
        assert excluded["Mistral/Meta-native duplicate weights"] == tuple(f"consolidated.0{i}.pt" for i in range(8))

    def test_mistral_consolidated_safetensors_is_not_fetched_next_to_hf_shards(self):
        listing = fixture("mistralai__Mistral-Nemo-Instruct-2407")
        sel = self.fmt.select_files(listing, self.fmt.detect(listing), SelectionContext())
        assert "consolidated.safetensors" not in sel.files
        assert "tekken.json" not in sel.files  # tokenizer.json is there; tekken.json is Mistral-mode only
        assert sel.download_bytes is None
        assert sel.bytes_basis == "unknown: the listing has no sizes and no parameter counts"

    def test_partial_listing_requests_standard_tokenizer_names(self):
        listing = fixture("DavidAU__Llama-3.2-8X3B-MOE-Dark-Champion-Instruct-uncensored-abliterated-18.4B")
        sel = self.fmt.select_files(listing, self.fmt.detect(listing), SelectionContext())
        assert "tokenizer.json" in sel.allow_patterns and "tokenizer.json" not in sel.files
        assert any("partial" in n for n in sel.notes)

    def test_six_digit_shard_totals(self):
        listing = fixture("deepseek-ai__DeepSeek-V2-Lite")
        sel = self.fmt.select_files(listing, self.fmt.detect(listing), SelectionContext())
        assert "model-00004-of-000004.safetensors" in sel.files

    def test_incomplete_upload_is_an_error_not_a_plan(self):
        listing = fixture("Yasar-02__LLAMA-3.1-8b-Instruct")
        with pytest.raises(IncompleteUploadError) as exc:
            self.fmt.select_files(listing, self.fmt.detect(listing), SelectionContext())
        assert str(exc.value) == (
            "Incomplete upload in 'Yasar-02/LLAMA-3.1-8b-Instruct': the shard name "
            "'model-00001-of-00004.safetensors' names 3 file(s) that are not in the repo: "
            "model-00002-of-00004.safetensors, model-00003-of-00004.safetensors, "
            "model-00004-of-00004.safetensors. Wait for the upload to finish or pin a --revision that has all shards."
        )

    def test_index_naming_missing_shards_is_an_error(self):
        listing = synthetic(
            "a/indexed",
            ["config.json", "model-a.safetensors", "model.safetensors.index.json"],
            index_shards={"model.safetensors.index.json": ("model-a.safetensors", "model-b.safetensors")},
        )
        with pytest.raises(IncompleteUploadError, match=r"the index 'model.safetensors.index.json' names 1 file"):
            self.fmt.select_files(listing, self.fmt.detect(listing), SelectionContext())

    def test_pickles_next_to_safetensors_are_named_for_what_they_are(self):
        listing = synthetic(
            "a/st", [*HF_FILES, "pytorch_model.bin", "training_args.bin", "adapter_model.bin"], config={}
        )
        sel = self.fmt.select_files(listing, self.fmt.detect(listing), SelectionContext())
        excluded = {e.reason: e.paths for e in sel.excluded}
        assert excluded["duplicate PyTorch pickle weights (safetensors chosen)"] == ("pytorch_model.bin",)
        assert excluded["training state, not weights"] == ("training_args.bin",)
        assert excluded["LoRA adapter files"] == ("adapter_model.bin",)

    def test_custom_code_without_config_says_remote_code_stays_off(self):
        listing = synthetic("a/code", ["config.json", "model.safetensors", "tokenizer.json", "modeling_x.py"])
        sel = self.fmt.select_files(listing, self.fmt.detect(listing), SelectionContext())
        assert "modeling_x.py" in sel.files
        assert sel.notes == (
            "config.json was not read, so the 1 custom-code file(s) at the repo root are fetched in case its "
            "auto_map needs them, but the plan does not pass --trust-remote-code (only an auto_map seen in "
            "config.json turns it on). If config.json has an auto_map, re-plan online, or from a recording that "
            "includes config.json, to get it.",
        )


class TestPyTorchBin(FormatContract):
    fmt = PyTorchBinFormat()
    claims = (fixture("lmsys__vicuna-7b-v1.5"),)
    rejects = (fixture("Qwen__Qwen2.5-7B-Instruct-AWQ"),)

    def test_training_state_is_not_called_duplicate_weights(self):
        listing = synthetic("a/bin", ["config.json", "pytorch_model.bin", "tokenizer.json", "training_args.bin"])
        sel = self.fmt.select_files(listing, self.fmt.detect(listing), SelectionContext())
        assert sel.weight_files == ("pytorch_model.bin",)
        assert {e.reason: e.paths for e in sel.excluded} == {"training state, not weights": ("training_args.bin",)}

    def test_bin_shards_index_and_sentencepiece_tokenizer(self):
        listing = fixture("lmsys__vicuna-7b-v1.5")
        sel = self.fmt.select_files(listing, self.fmt.detect(listing), SelectionContext())
        assert sel.files == (
            "pytorch_model-00001-of-00002.bin",
            "pytorch_model-00002-of-00002.bin",
            "pytorch_model.bin.index.json",
            "config.json",
            "generation_config.json",
            "tokenizer_config.json",
            "special_tokens_map.json",
            "tokenizer.model",
        )
        assert sel.download_bytes == 9_980_000_000 + 3_500_000_000 + 26_800 + 500_000
        assert sel.bytes_basis == (
            "listing sizes (rounded Hub display sizes, ±0.5 %); 4 small file(s) of unknown size not counted"
        )


class TestGPTQ(FormatContract):
    fmt = GPTQFormat()
    claims = (
        fixture("TheBloke__Llama-2-7B-Chat-GPTQ"),
        synthetic("a/gptq", HF_FILES, config=quantized("gptq", bits=4, group_size=128)),
    )
    rejects = (
        fixture("Qwen__Qwen2.5-7B-Instruct-AWQ"),
        synthetic("a/awq-cfg", [*HF_FILES, "quantize_config.json"], config=quantized("awq")),
    )

    def test_evidence_names_the_side_file(self):
        d = self.fmt.detect(fixture("TheBloke__Llama-2-7B-Chat-GPTQ"))
        assert d.evidence[0] == "quantize_config.json present (written by gptq tooling)"
        assert d.quantization == "gptq"


class TestAWQ(FormatContract):
    fmt = AWQFormat()
    claims = (fixture("Qwen__Qwen2.5-7B-Instruct-AWQ"), synthetic("a/awq", HF_FILES, config=quantized("awq")))
    rejects = (fixture("TheBloke__Llama-2-7B-Chat-GPTQ"),)


class TestCompressedTensors(FormatContract):
    fmt = CompressedTensorsFormat()
    claims = (
        fixture("neuralmagic__Meta-Llama-3.1-8B-Instruct-FP8"),
        synthetic("a/ct", HF_FILES, config=quantized("compressed-tensors")),
    )
    rejects = (synthetic("a/fp8", HF_FILES, config=quantized("fp8")),)


class TestFP8(FormatContract):
    fmt = FP8Format()
    claims = (synthetic("a/fp8", HF_FILES, config=quantized("fp8")),)
    rejects = (synthetic("a/ct", HF_FILES, config=quantized("compressed-tensors")),)


class TestBitsAndBytes(FormatContract):
    fmt = BitsAndBytesFormat()
    claims = (synthetic("a/bnb", HF_FILES, config=quantized("bitsandbytes", load_in_4bit=True)),)
    # The repo *name* says bnb-4bit; its files are a LoRA adapter and GGUFs.
    rejects = (fixture("kbang2021__unsloth-Meta-Llama-3.1-8B-Instruct-bnb-4bit"),)


class TestEXL2(FormatContract):
    fmt = EXL2Format()
    claims = (
        fixture("DrNicefellow__Mistral-Nemo-Instruct-2407-exl2-7bpw-h8"),
        synthetic("a/exl2", [*HF_FILES[:1], "output.safetensors", "measurement.json"]),
    )
    rejects = (fixture("mistralai__Mistral-Nemo-Instruct-2407"),)

    def test_unservable_error_names_reason_and_base_model(self):
        listing = fixture("DrNicefellow__Mistral-Nemo-Instruct-2407-exl2-7bpw-h8")
        with pytest.raises(UnservableFormatError) as exc:
            self.fmt.select_files(listing, self.fmt.detect(listing), SelectionContext())
        assert str(exc.value) == (
            "'DrNicefellow/Mistral-Nemo-Instruct-2407-exl2-7bpw-h8' holds EXL2 (ExLlamaV2) weights, which vLLM "
            "cannot serve: ExLlamaV2's variable-bit-rate quantization has no vLLM kernel or loader. Serve its base "
            "model instead: `modelformats plan mistralai/Mistral-Nemo-Instruct-2407`."
        )


class TestMLX(FormatContract):
    fmt = MLXFormat()
    claims = (
        fixture("mlx-community__Llama-3.1-8B-Instruct"),
        synthetic("a/mlx", HF_FILES, config={"model_type": "llama", "quantization": {"group_size": 64, "bits": 4}}),
    )
    rejects = (fixture("TheBloke__Llama-2-7B-Chat-GPTQ"),)


class TestONNX(FormatContract):
    fmt = ONNXFormat()
    claims = (synthetic("a/onnx", ["config.json", "onnx/model.onnx", "onnx/model.onnx_data", "tokenizer.json"]),)
    rejects = (fixture("lmsys__vicuna-7b-v1.5"),)


class TestMetaConsolidated(FormatContract):
    fmt = MetaConsolidatedFormat()
    claims = (synthetic("a/meta", ["consolidated.00.pth", "params.json", "tokenizer.model"]),)
    rejects = (fixture("lmsys__vicuna-7b-v1.5"),)


class TestLoraAdapter(FormatContract):
    fmt = LoraAdapterFormat()
    claims = (
        synthetic(
            "a/lora",
            ["adapter_config.json", "adapter_model.safetensors", "tokenizer.json"],
            documents={"adapter_config.json": {"base_model_name_or_path": "meta-llama/Llama-3.1-8B"}},
        ),
        fixture("kbang2021__unsloth-Meta-Llama-3.1-8B-Instruct-bnb-4bit"),
    )
    rejects = (fixture("lmsys__vicuna-7b-v1.5"),)

    def test_instead_names_the_base_from_adapter_config(self):
        d = self.fmt.detect(self.claims[0])
        assert d.instead == (
            "Serve the base model 'meta-llama/Llama-3.1-8B' with `--enable-lora --lora-modules adapter=a/lora` "
            "(vLLM loads the adapter at runtime)."
        )


@pytest.mark.parametrize(
    ("paths", "expected"),
    [
        (["tokenizer.json"], True),
        (["tokenizer.model"], True),
        (["vocab.json", "merges.txt"], True),  # byte-level BPE
        (["vocab.txt"], True),  # WordPiece
        (["spiece.model"], True),
        (["tokenizer_config.json", "special_tokens_map.json"], False),  # settings, not a vocabulary
        (["tekken.json"], False),  # Mistral's own format: vLLM needs --tokenizer-mode mistral
        (["sub/tokenizer.json"], False),
    ],
)
def test_has_tokenizer(paths, expected):
    from modelformats.naming import has_tokenizer

    listing = synthetic("a/tok", ["config.json", *paths])
    assert has_tokenizer(listing) is expected
    assert has_tokenizer(listing, "sub") is (paths == ["sub/tokenizer.json"])


def test_vocab_txt_only_repo_gets_no_missing_tokenizer_note():
    listing = synthetic("a/wp", ["config.json", "model.safetensors", "vocab.txt"], config={})
    sel = SafeTensorsFormat().select_files(listing, SafeTensorsFormat().detect(listing), SelectionContext())
    assert sel.notes == ()
