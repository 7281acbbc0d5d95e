"""GGUFFormat on every recorded GGUF listing (golden), and its rules on purpose-built listings."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import write_gguf
from modelformats.errors import InvalidRequestError, QuantNotFoundError, TokenizerSourceError
from modelformats.formats.base import JoinPlan, SelectionContext
from modelformats.formats.gguf import GGUFFormat
from modelformats.gguf.header import read_header
from modelformats.gguf.source import STANDARD_TOKENIZER_FILES, sibling_candidates
from modelformats.listing import RepoFile, RepoListing, load_listing
from modelformats.sources.recorded import RecordedSource

LISTINGS = Path(__file__).resolve().parents[1] / "data" / "listings"
FMT = GGUFFormat()

TARGET = "DavidAU/Llama-3.2-8X3B-MOE-Dark-Champion-Instruct-uncensored-abliterated-18.4B-GGUF"
TARGET_BASE = "DavidAU/Llama-3.2-8X3B-MOE-Dark-Champion-Instruct-uncensored-abliterated-18.4B"
TARGET_Q8 = "L3.2-8X3B-MOE-Dark-Champion-Inst-18.4B-uncen-ablit_D_AU-Q8_0.gguf"
STANDARD = list(STANDARD_TOKENIZER_FILES)


@pytest.fixture(scope="module")
def source() -> RecordedSource:
    return RecordedSource.from_paths([LISTINGS])


def _listing(repo_id: str) -> RepoListing:
    return load_listing(LISTINGS / (repo_id.replace("/", "__") + ".json"))


def _select(source, repo_id, **context):
    listing = _listing(repo_id)
    detection = FMT.detect(listing)
    assert detection is not None
    return FMT.select_files(listing, detection, SelectionContext(source=source, **context))


def _no_source_error(repo: str, first: str) -> str:
    sibling = repo.removesuffix("-GGUF")
    return (
        f"No tokenizer/config source for the GGUF repo {repo!r}: {first}; its card names no base_model; no "
        "GGUF "
        f"header with general.base_model keys was read; {sibling} is this repo's name without the GGUF "
        "suffix, "
        "but no such repo was found. Without one, vLLM builds the tokenizer from GGUF metadata, which is "
        "slow "
        'and fails for many models ("TypeError: not a string" when tokenizer files are missing, '
        "SentencePiece "
        "load errors). Pass --tokenizer-from REPO, naming the original model the GGUF was converted from."
    )


# --- detection -----------------------------------------------------------------------------------------


def test_detects_every_gguf_fixture_and_nothing_else(source):
    found = {listing.repo_id for listing in source if FMT.detect(listing) is not None}
    assert found == {
        TARGET,
        "DavidAU/Llama-3.2-4X3B-MOE-Ultra-Instruct-10B-GGUF",
        "TheBloke/Mistral-7B-Instruct-v0.2-GGUF",
        "bartowski/Meta-Llama-3.1-8B-Instruct-GGUF",
        "ggml-org/gemma-3-27b-it-GGUF",
        "kbang2021/unsloth-Meta-Llama-3.1-8B-Instruct-bnb-4bit",
        "mradermacher/Llama-3-70Bx2-MOE-GGUF",
        "unsloth/DeepSeek-R1-GGUF",
        "unsloth/gemma-3-1b-it-GGUF",
    }


def test_side_files_alone_are_not_a_model():
    listing = RepoListing(repo_id="o/r", files=(RepoFile(path="mmproj-f16.gguf"), RepoFile(path="x.imatrix")))
    assert FMT.detect(listing) is None


def test_detection_evidence():
    d = FMT.detect(_listing("ggml-org/gemma-3-27b-it-GGUF"))
    assert d is not None
    assert d.evidence == (
        "4 GGUF file(s) in 3 quant unit(s): F16, Q4_K_M, Q8_0",
        "1 projector file(s) set aside",
    )
    assert d.quantization == "gguf"


# --- golden: one per recorded GGUF listing ----------------------------------------------------------------


def test_target(source):
    sel = _select(source, TARGET)
    assert sel.quant == "Q8_0"
    assert sel.files == sel.weight_files == (TARGET_Q8,)
    assert sel.allow_patterns == (TARGET_Q8,)
    assert sel.model_file == TARGET_Q8
    # 18,404,944,896 parameters x 8.5 bits (Q8_0: 34 bytes per 32 weights) / 8.
    assert sel.download_bytes == 19_555_253_952
    assert round(sel.download_bytes / 1e9, 1) == 19.6
    assert sel.bytes_estimated is True
    assert sel.bytes_basis == (
        f"estimate: 18,404,944,896 parameters (the safetensors summary of {TARGET_BASE}) x 8.5 bits per "
        "weight (Q8_0, the quant's main tensor type) / 8"
    )
    assert sel.tokenizer is not None
    assert sel.tokenizer.to_dict() == {
        "repo_id": TARGET_BASE,
        "revision": None,
        "files": ["config.json"],
        "allow_patterns": ["config.json", *(n for n in STANDARD if n != "config.json")],
        "reason": f"{TARGET_BASE} is this repo's name without the GGUF suffix, and the listing source "
        "confirms "
        "that it exists",
    }
    assert sel.joins == ()
    assert (sel.layout, sel.base_repo, sel.needs_projector) == ("single", TARGET_BASE, False)
    assert sel.details == {
        "quant_name": "Q8_0",
        "tensor_type": "Q8_0",
        "bits_per_weight": 8.5,
        "shards": 1,
        "tokenizer_rule": "sibling",
        "projectors": [],
    }
    assert {e.reason: len(e.paths) for e in sel.excluded} == {
        "other quants, not chosen": 8,
        "unknown quant tag (not in the gguf vocabulary); never chosen": 1,
    }
    assert sel.notes[:3] == (
        f"Chose Q8_0 ({TARGET_Q8}): the first of the default order Q8_0 > Q6_K > Q5_K_M > Q4_K_M present.",
        "Quant tags were read case-insensitively: Q2_k -> Q2_K, Q3_k_s -> Q3_K_S, Q4_k_m -> Q4_K_M, "
        "Q4_k_s -> Q4_K_S, Q5_k_s -> Q5_K_S, Q6_k -> Q6_K, q5_k_m -> Q5_K_M.",
        "Not chosen: Q4_0_4_4 — not a quant type of gguf 0.19.0's GGMLQuantizationType / LlamaFileType (ARM "
        "repacks such as Q4_0_4_4 are not), so no engine here is known to load it.",
    )


def test_target_exact_quant_and_errors(source):
    sel = _select(source, TARGET, quant="q5_k_m")
    assert sel.quant == "Q5_K_M"
    assert sel.files == ("L3.2-8X3B-MOE-Dark-Champion-Inst-18.4B-uncen-ablit_D_AU-q5_k_m.gguf",)
    assert sel.download_bytes == round(18_404_944_896 * 5.5 / 8)
    with pytest.raises(QuantNotFoundError) as err:
        _select(source, TARGET, quant="Q5_0")
    assert str(err.value) == (
        f"No GGUF file matches quant Q5_0 in {TARGET!r} (exact match on the quant name, case-insensitive); "
        "available: Q8_0, Q6_K, Q5_K_M, Q5_K_S, Q4_K_M, Q4_K_S, IQ4_XS, Q3_K_S, Q2_K. Pass --quant or "
        "--quant-order."
    )
    with pytest.raises(QuantNotFoundError) as err:
        _select(source, TARGET, quant="Q4_0_4_4")
    assert str(err.value) == (
        f"No GGUF file matches quant Q4_0_4_4 in {TARGET!r} "
        "(L3.2-8X3B-MOE-Dark-Champion-Inst-18.4B-uncen-ablit_D_AU-Q4_0_4_4.gguf is tagged Q4_0_4_4, which is "
        "not a quant type of gguf 0.19.0's GGMLQuantizationType / LlamaFileType, so it is never chosen); "
        "available: Q8_0, Q6_K, Q5_K_M, Q5_K_S, Q4_K_M, Q4_K_S, IQ4_XS, Q3_K_S, Q2_K. Pass --quant or "
        "--quant-order."
    )
    with pytest.raises(InvalidRequestError) as err2:
        _select(source, TARGET, quant="Q9_9")
    assert str(err2.value) == (
        "--quant 'Q9_9' is not a GGUF quant name: not in gguf 0.19.0's GGMLQuantizationType / LlamaFileType "
        "(with an optional UD-/i1- prefix or _L/_XL suffix). Use a name such as Q8_0, Q4_K_M, IQ4_XS or "
        "UD-Q4_K_XL."
    )


def test_target_engine_refusal(source):
    refused = {"Q8_0": "no Q8_0 kernel in this engine (example)"}
    sel = _select(source, TARGET, refuse_quant=refused.get)
    assert sel.quant == "Q6_K"
    assert (
        f"Not chosen: Q8_0 ({TARGET_Q8}) — refused by the engine: Q8_0: no Q8_0 kernel in this engine "
        "(example)." in sel.notes
    )
    assert ("refused by the engine (Q8_0: no Q8_0 kernel in this engine (example))", (TARGET_Q8,)) in [
        (e.reason, e.paths) for e in sel.excluded
    ]
    with pytest.raises(QuantNotFoundError) as err:
        _select(source, TARGET, refuse_quant=lambda t: "nothing loads")
    assert str(err.value).startswith(
        f"No GGUF file matches quant any in {TARGET!r} (no complete unit with a known quant the engine "
        "loads; "
        "IQ4_XS: refused (IQ4_XS: nothing loads);"
    )


def test_target_quant_order(source):
    sel = _select(source, TARGET, quant_order=("Q4_K_M", "Q8_0"))
    assert sel.quant == "Q4_K_M"
    assert sel.notes[0].endswith("the first of --quant-order Q4_K_M > Q8_0 present.")
    # Nothing of the order present: the loadable quant with the most bits per weight.
    sel = _select(source, TARGET, quant_order=("Q5_0",))
    assert sel.quant == "Q8_0"
    assert "none of --quant-order Q5_0 is available" in sel.notes[0]


def test_davidau_4x3b(source):
    repo = "DavidAU/Llama-3.2-4X3B-MOE-Ultra-Instruct-10B-GGUF"
    with pytest.raises(TokenizerSourceError) as err:
        _select(source, repo)
    assert str(err.value) == _no_source_error(repo, "it has no tokenizer files")
    sel = _select(source, repo, tokenizer_from="DavidAU/Llama-3.2-4X3B-MOE-Ultra-Instruct-10B")
    assert sel.quant == "Q8_0"
    assert sel.files == ("Llama-3.2-4X3B-MOE-Ultra-Instruct-10B-D_AU-Q8_0.gguf",)
    # Q8_0 has no size; the parameters are inferred from Q6_K's 8.17 GB at 6.5625 bits per weight.
    assert sel.download_bytes == 10_582_095_238
    assert sel.bytes_basis == (
        "estimate: 9,959,619,048 parameters (inferred from Q6_K's 8,170,000,000 bytes at 6.5625 bits per "
        "weight) "
        "x 8.5 bits per weight (Q8_0, the quant's main tensor type) / 8"
    )
    assert sel.tokenizer is not None and sel.tokenizer.allow_patterns == tuple(STANDARD)
    unknown = next(e for e in sel.excluded if e.reason.startswith("unknown quant tag"))
    assert unknown.paths == (
        "Llama-3.2-4X3B-MOE-Ultra-Instruct-10B-D_AU-Q4_0_4_4.gguf",
        "Llama-3.2-4X3B-MOE-Ultra-Instruct-10B-D_AU-Q4_0_4_8.gguf",
    )


def test_thebloke_stub_config_and_card_base_model(source):
    sel = _select(source, "TheBloke/Mistral-7B-Instruct-v0.2-GGUF")
    assert sel.quant == "Q4_K_M"  # Q5_K_M and above are not in the (partial) listing
    assert sel.files == ("mistral-7b-instruct-v0.2.Q4_K_M.gguf",)
    assert (sel.download_bytes, sel.bytes_estimated) == (4_370_000_000, True)
    assert sel.bytes_basis == "listing sizes (Hub display, rounded to ±0.5 %)"
    assert sel.tokenizer is not None
    assert sel.tokenizer.repo_id == "mistralai/Mistral-7B-Instruct-v0.2"
    assert sel.tokenizer.files == ()
    assert sel.tokenizer.allow_patterns == tuple(STANDARD)
    assert sel.tokenizer.reason == "the model card's base_model names mistralai/Mistral-7B-Instruct-v0.2"
    # The 31-byte stub config.json is not fetched.
    rest = next(e for e in sel.excluded if e.reason.startswith("not needed"))
    assert rest.paths == (".gitattributes", "README.md", "config.json")


def test_bartowski(source):
    repo = "bartowski/Meta-Llama-3.1-8B-Instruct-GGUF"
    sel = _select(source, repo)
    assert (sel.quant, sel.files, sel.download_bytes) == (
        "Q8_0",
        ("Meta-Llama-3.1-8B-Instruct-Q8_0.gguf",),
        8_539_999_999,
    )
    assert sel.tokenizer is not None and sel.tokenizer.repo_id == "meta-llama/Meta-Llama-3.1-8B-Instruct"
    imatrix = next(e for e in sel.excluded if "imatrix" in e.reason)
    assert imatrix.paths == ("Meta-Llama-3.1-8B-Instruct.imatrix",)
    # Q6_K is exactly Q6_K, not bartowski's Q6_K_L; that one is asked for by its own name.
    assert _select(source, repo, quant="Q6_K").files == ("Meta-Llama-3.1-8B-Instruct-Q6_K.gguf",)
    assert _select(source, repo, quant="q6_k_l").files == ("Meta-Llama-3.1-8B-Instruct-Q6_K_L.gguf",)
    assert _select(source, repo, quant_order=("Q3_K_M",)).quant == "BF16"


def test_ggml_org_gemma_split_and_projector(source):
    repo = "ggml-org/gemma-3-27b-it-GGUF"
    with pytest.raises(TokenizerSourceError) as err:
        _select(source, repo)
    assert str(err.value) == _no_source_error(repo, "it has no tokenizer files")
    sel = _select(source, repo, tokenizer_from="google/gemma-3-27b-it")
    assert (sel.quant, sel.files, sel.download_bytes) == (
        "Q8_0",
        ("gemma-3-27b-it-Q8_0.gguf",),
        28_700_000_000,
    )
    projector = next(e for e in sel.excluded if e.reason.startswith("multimodal projector"))
    assert projector.paths == ("mmproj-model-f16.gguf",)
    assert sel.details["projectors"] == ["mmproj-model-f16.gguf"]
    assert "Projector mmproj-model-f16.gguf is not fetched: the plan serves the language model." in sel.notes
    f16 = _select(source, repo, tokenizer_from="google/gemma-3-27b-it", quant="F16")
    assert f16.files == ("gemma-3-27b-it-f16-00001-of-00002.gguf", "gemma-3-27b-it-f16-00002-of-00002.gguf")
    assert f16.model_file == "gemma-3-27b-it-f16-00001-of-00002.gguf"
    assert (f16.layout, f16.details["shards"], f16.download_bytes) == ("split", 2, 54_000_000_000)


def test_unsloth_deepseek_subfolders(source):
    repo = "unsloth/DeepSeek-R1-GGUF"
    with pytest.raises(TokenizerSourceError) as err:
        _select(source, repo)
    assert str(err.value) == _no_source_error(
        repo,
        "it has a config.json but no tokenizer file (tokenizer.json, tokenizer.model, vocab.json, vocab.txt or "
        "spiece.model)",
    )
    sel = _select(source, repo, tokenizer_from="deepseek-ai/DeepSeek-R1")
    # Q8_0's folder lists shards 1-9 of 15 only: incomplete, never chosen; Q6_K and Q5_K_M are not listed.
    assert sel.quant == "Q4_K_M"
    assert sel.files == tuple(f"DeepSeek-R1-Q4_K_M/DeepSeek-R1-Q4_K_M-0000{i}-of-00009.gguf" for i in range(1, 10))
    assert sel.model_file == "DeepSeek-R1-Q4_K_M/DeepSeek-R1-Q4_K_M-00001-of-00009.gguf"
    assert sel.download_bytes == 404_300_000_000
    assert sel.layout == "split"
    assert (
        "Not chosen: Q8_0 (DeepSeek-R1-Q8_0/DeepSeek-R1.Q8_0-00001-of-00015.gguf) is incomplete — 6 of its "
        "files "
        "are missing from the listing (first: DeepSeek-R1-Q8_0/DeepSeek-R1.Q8_0-00010-of-00015.gguf); a "
        "shard "
        "set is all or nothing."
    ) in sel.notes
    with pytest.raises(QuantNotFoundError) as qerr:
        _select(source, repo, tokenizer_from="deepseek-ai/DeepSeek-R1", quant="Q8_0")
    assert str(qerr.value) == (
        f"No GGUF file matches quant Q8_0 in {repo!r} "
        "(DeepSeek-R1-Q8_0/DeepSeek-R1.Q8_0-00001-of-00015.gguf is "
        "incomplete: 6 of its files are not in the listing); available: Q4_K_M, Q3_K_M, UD-Q2_K_XL, "
        "UD-IQ2_XXS, "
        "UD-IQ1_S. Pass --quant or --quant-order."
    )
    ud = _select(source, repo, tokenizer_from="deepseek-ai/DeepSeek-R1", quant="UD-Q2_K_XL")
    assert ud.model_file == "DeepSeek-R1-UD-Q2_K_XL/DeepSeek-R1-UD-Q2_K_XL-00001-of-00005.gguf"
    assert len(ud.files) == 5


def test_mradermacher_parts(source):
    repo = "mradermacher/Llama-3-70Bx2-MOE-GGUF"
    with pytest.raises(TokenizerSourceError):
        _select(source, repo)
    sel = _select(source, repo, tokenizer_from="cloudyu/Llama-3-70Bx2-MOE")
    parts = tuple(f"Llama-3-70Bx2-MOE.Q8_0.gguf.part{i}of3" for i in (1, 2, 3))
    assert (sel.quant, sel.files, sel.model_file) == ("Q8_0", parts, "Llama-3-70Bx2-MOE.Q8_0.gguf")
    # Display sizes are rounded, so they cannot verify the join: expected_bytes stays unknown.
    assert sel.joins == (JoinPlan(output="Llama-3-70Bx2-MOE.Q8_0.gguf", parts=tuple(parts), expected_bytes=None),)
    assert sel.download_bytes == 134_900_000_000
    assert sel.layout == "parts"
    assert (
        "Q8_0 is stored as 3 raw byte parts; after download they are joined, in order, into "
        "Llama-3-70Bx2-MOE.Q8_0.gguf (no engine loads .partXofY pieces)."
    ) in sel.notes


def test_unsloth_gemma_1b(source):
    repo = "unsloth/gemma-3-1b-it-GGUF"
    with pytest.raises(TokenizerSourceError):
        _select(source, repo)
    tok = "google/gemma-3-1b-it"
    sel = _select(source, repo, tokenizer_from=tok)
    assert (sel.quant, sel.files, sel.download_bytes) == ("Q8_0", ("gemma-3-1b-it-Q8_0.gguf",), 1_050_000_000)
    assert next(e for e in sel.excluded if "imatrix" in e.reason).paths == ("imatrix_unsloth.dat",)
    assert _select(source, repo, tokenizer_from=tok, quant_order=("UD-Q4_K_XL",)).quant == "UD-Q4_K_XL"
    # Without the prefix, a name that only one file carries still matches.
    assert _select(source, repo, tokenizer_from=tok, quant="Q4_K_XL").quant == "UD-Q4_K_XL"
    assert _select(source, repo, tokenizer_from=tok, quant="bf16").files == ("gemma-3-1b-it-BF16.gguf",)
    refuse = {"BF16": "refused (example)", "Q8_0": "refused (example)"}.get
    sel = _select(source, repo, tokenizer_from=tok, quant_order=("IQ4_XS",), refuse_quant=refuse)
    assert sel.quant == "Q6_K"


def test_kbang_ggufs_beside_a_lora_adapter(source):
    repo = "kbang2021/unsloth-Meta-Llama-3.1-8B-Instruct-bnb-4bit"
    sel = _select(source, repo)
    assert sel.quant == "Q5_K_M"
    # The repo carries tokenizer files; its config.json was not read, so it is the last-resort source.
    assert sel.tokenizer is None
    assert sel.details["tokenizer_rule"] == "self"
    assert sel.files == (
        "unsloth.Q5_K_M.gguf",
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
    )
    assert sel.weight_files == ("unsloth.Q5_K_M.gguf",)
    assert sel.download_bytes == 5_730_000_000
    assert sel.bytes_basis == (
        "listing sizes (Hub display, rounded to ±0.5 %); 2 small tokenizer/config file(s) of unknown size not counted"
    )
    rest = next(e for e in sel.excluded if e.reason.startswith("not needed"))
    assert rest.paths == (".gitattributes", "README.md", "adapter_config.json", "adapter_model.safetensors")


# --- tokenizer sources and sizes on purpose-built listings --------------------------------------------------


def _gguf_listing(repo_id="me/Model-GGUF", *, files=(), **kwargs) -> RepoListing:
    base = (RepoFile(path="model-Q8_0.gguf", size=None), RepoFile(path="model-Q4_K_M.gguf", size=None))
    return RepoListing(repo_id=repo_id, files=base + tuple(files), **kwargs)


def test_header_base_model_keys_and_parameters(tiny_llama):
    header = read_header(tiny_llama).to_dict()
    listing = _gguf_listing(gguf_headers={"model-Q4_K_M.gguf": header})
    detection = FMT.detect(listing)
    assert detection is not None
    sel = FMT.select_files(listing, detection, SelectionContext())
    assert sel.tokenizer is not None
    assert sel.tokenizer.repo_id == "meta-llama/Llama-3.2-1B-Instruct"
    assert sel.details["tokenizer_rule"] == "header"
    params = header["parameter_count"]
    assert sel.download_bytes == round(params * 8.5 / 8)
    assert sel.bytes_basis.startswith(f"estimate: {params:,} parameters (the GGUF header of model-Q4_K_M.gguf)")


def test_hub_gguf_summary_is_a_parameter_basis():
    listing = _gguf_listing(base_models=("me/Model",), gguf={"total": 1_000_000_000, "architecture": "llama"})
    detection = FMT.detect(listing)
    assert detection is not None
    sel = FMT.select_files(listing, detection, SelectionContext())
    assert sel.download_bytes == 1_062_500_000
    assert "the Hub's gguf summary of me/Model-GGUF" in sel.bytes_basis


def test_own_tokenizer_with_real_config_is_used_first():
    own = (RepoFile(path="config.json", size=900), RepoFile(path="tokenizer.json", size=9_000_000))
    listing = _gguf_listing(files=own, base_models=("someone/Base",))
    detection = FMT.detect(listing)
    assert detection is not None
    sel = FMT.select_files(listing, detection, SelectionContext())
    assert sel.tokenizer is None
    assert sel.files == ("model-Q8_0.gguf", "config.json", "tokenizer.json")


def test_stub_config_is_not_a_source():
    stub = (RepoFile(path="config.json", size=31), RepoFile(path="tokenizer.json", size=9_000_000))
    listing = _gguf_listing("me/Model", files=stub)
    detection = FMT.detect(listing)
    assert detection is not None
    with pytest.raises(TokenizerSourceError) as err:
        FMT.select_files(listing, detection, SelectionContext())
    assert str(err.value).startswith(
        "No tokenizer/config source for the GGUF repo 'me/Model': its config.json is stub; its card names no "
        "base_model; no GGUF header with general.base_model keys was read; its name has no -GGUF suffix to "
        "strip."
    )


def test_base_model_without_tokenizer_is_passed_over():
    gguf_base = RepoListing(repo_id="other/Quantized", files=(RepoFile(path="x-Q8_0.gguf"),))
    real = RepoListing(
        repo_id="me/Model",
        files=(RepoFile(path="config.json", size=700), RepoFile(path="tokenizer.json", size=10)),
    )
    listing = _gguf_listing(base_models=("other/Quantized",))
    detection = FMT.detect(listing)
    assert detection is not None
    sel = FMT.select_files(listing, detection, SelectionContext(source=RecordedSource([gguf_base, real])))
    assert sel.tokenizer is not None
    assert sel.tokenizer.repo_id == "me/Model"
    assert sel.tokenizer.files == ("config.json", "tokenizer.json")
    assert sel.tokenizer.allow_patterns == ("config.json", "tokenizer.json")
    assert sel.tokenizer.download_bytes == 710
    assert (
        "the model card's base_model names other/Quantized, but it has no tokenizer file (tokenizer.json, "
        "tokenizer.model, vocab.json, vocab.txt or spiece.model)" in sel.notes
    )


def test_sibling_candidates():
    assert sibling_candidates("o/Qwen2.5-7B-Instruct-GGUF") == ("o/Qwen2.5-7B-Instruct",)
    assert sibling_candidates("o/Model-i1-GGUF") == ("o/Model-i1", "o/Model")
    assert sibling_candidates("o/Llama-3.2-1B-Instruct-Q4_K_M-GGUF") == (
        "o/Llama-3.2-1B-Instruct-Q4_K_M",
        "o/Llama-3.2-1B-Instruct",
    )
    assert sibling_candidates("o/model_gguf") == ("o/model",)
    assert sibling_candidates("o/Model") == ()


def test_ambiguous_quant_asks_for_the_label():
    files = (RepoFile(path="m.i1-IQ4_XS.gguf"), RepoFile(path="m-UD-IQ4_XS.gguf"))
    listing = RepoListing(repo_id="o/m-GGUF", files=files, base_models=("o/m",))
    detection = FMT.detect(listing)
    assert detection is not None
    with pytest.raises(InvalidRequestError) as err:
        FMT.select_files(listing, detection, SelectionContext(quant="IQ4_XS"))
    assert str(err.value) == (
        "Quant IQ4_XS matches several files in 'o/m-GGUF': I1-IQ4_XS, UD-IQ4_XS. Pass the full label with --quant."
    )
    sel = FMT.select_files(listing, detection, SelectionContext(quant="i1-IQ4_XS"))
    assert sel.files == ("m.i1-IQ4_XS.gguf",)


def test_single_gguf_is_chosen_whatever_its_quant():
    listing = RepoListing(repo_id="o/m-GGUF", files=(RepoFile(path="m-IQ2_XXS.gguf", size=10),), base_models=("o/m",))
    detection = FMT.detect(listing)
    assert detection is not None
    sel = FMT.select_files(listing, detection, SelectionContext())
    assert sel.quant == "IQ2_XXS"
    assert sel.notes[0] == "Chose IQ2_XXS (m-IQ2_XXS.gguf): the only GGUF in the repo."


def test_exact_join_sizes_verify():
    files = tuple(RepoFile(path=f"m.Q8_0.gguf.part{i}of2", size=100, size_exact=True) for i in (1, 2))
    listing = RepoListing(repo_id="o/m-GGUF", files=files, base_models=("o/m",))
    detection = FMT.detect(listing)
    assert detection is not None
    sel = FMT.select_files(listing, detection, SelectionContext())
    assert sel.joins[0].expected_bytes == 200
    assert (sel.download_bytes, sel.bytes_estimated, sel.bytes_basis) == (200, False, "listing sizes")


def test_untagged_file_takes_its_quant_from_the_header(tiny_llama):
    header = read_header(tiny_llama).to_dict()
    files = (RepoFile(path="model.gguf", size=1000, size_exact=True),)
    listing = RepoListing(repo_id="o/m-GGUF", files=files, base_models=("o/m",), gguf_headers={"model.gguf": header})
    detection = FMT.detect(listing)
    assert detection is not None
    sel = FMT.select_files(listing, detection, SelectionContext())
    assert (sel.quant, sel.model_file, sel.details["tensor_type"]) == ("Q8_0", "model.gguf", "Q8_0")


def test_untagged_file_without_header_is_not_guessed():
    listing = RepoListing(repo_id="o/m-GGUF", files=(RepoFile(path="model.gguf", size=1000),), base_models=("o/m",))
    detection = FMT.detect(listing)
    assert detection is not None
    with pytest.raises(QuantNotFoundError) as err:
        FMT.select_files(listing, detection, SelectionContext())
    assert str(err.value) == (
        "No GGUF file matches quant any in 'o/m-GGUF' (no complete unit with a known quant the engine loads; "
        "model.gguf: no quant tag, no header read); available: none. Pass --quant or --quant-order."
    )


def test_an_engine_that_reads_the_gguf_tokenizer_needs_no_tokenizer_source(source):
    # llama.cpp reads the tokenizer and chat template from the GGUF: a repo with no findable base still plans.
    listing = source.fetch("unsloth/gemma-3-1b-it-GGUF")
    fmt = GGUFFormat()
    with pytest.raises(TokenizerSourceError):
        fmt.select_files(listing, fmt.detect(listing), SelectionContext(source=source))
    sel = fmt.select_files(listing, fmt.detect(listing), SelectionContext(source=source, needs_tokenizer=False))
    assert sel.tokenizer is None and sel.files == ("gemma-3-1b-it-Q8_0.gguf",)
    assert sel.base_repo is None and sel.details["tokenizer_rule"] is None
    assert "the engine reads the tokenizer and chat template embedded in the GGUF" in " ".join(sel.notes)


def test_standard_tokenizer_names_are_the_shared_ones():
    from modelformats.naming import CONFIG_FILES, TOKENIZER_FILES

    assert (*CONFIG_FILES, *TOKENIZER_FILES) == STANDARD_TOKENIZER_FILES
    assert {"vocab.json", "merges.txt"} <= set(STANDARD_TOKENIZER_FILES)


def test_byte_level_bpe_base_is_a_tokenizer_source():
    """vocab.json + merges.txt (GPT-2 style BPE) is a tokenizer: such a base repo is not passed over."""
    base = RepoListing(
        repo_id="me/Model",
        files=tuple(RepoFile(path=p, size=100) for p in ("config.json", "vocab.json", "merges.txt")),
    )
    listing = _gguf_listing(base_models=("me/Model",))
    detection = FMT.detect(listing)
    assert detection is not None
    sel = FMT.select_files(listing, detection, SelectionContext(source=RecordedSource([base])))
    assert sel.tokenizer is not None
    assert (sel.tokenizer.repo_id, sel.tokenizer.files) == ("me/Model", ("config.json", "vocab.json", "merges.txt"))


def test_a_split_shard_header_does_not_size_the_model(tmp_path):
    shard = read_header(write_gguf(tmp_path / "model-Q8_0.gguf", split_max_tensors=8)[0]).to_dict()
    listing = _gguf_listing(gguf_headers={"model-Q8_0.gguf": shard}, gguf={"total": 1_000_000_000})
    detection = FMT.detect(listing)
    assert detection is not None
    sel = FMT.select_files(listing, detection, SelectionContext(needs_tokenizer=False))
    assert sel.bytes_basis.startswith("estimate: 1,000,000,000 parameters (the Hub's gguf summary of me/Model-GGUF)")
