"""What every route of one plan shares, computed once per plan: its engines, file selections, model traits,
weights specs, GPU decisions and commands (a loadable route sized and given its command: `serve`)."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

from modelformats.engines.base import Engine, RuntimeSpec, WeightsSpec
from modelformats.engines.builtin import build_engine, traits_of
from modelformats.errors import LISTING_UNAVAILABLE, InvalidRequestError, ModelFormatsError, NoFittingGpuError
from modelformats.formats.base import FileSelection, SelectionContext, ServingFacts
from modelformats.listing import ListingSource, RepoListing
from modelformats.options import PlanOptions
from modelformats.planning.route import Route
from modelformats.registry import DetectionResult, FormatRegistry
from modelformats.traits import ModelTraits, merge_traits, traits_from_listing
from modelformats.validate import check_experts_per_token

if TYPE_CHECKING:
    from modelformats.gpu import GpuDecision, GpuPolicy

__all__ = ["PlanSession"]


class PlanSession:
    """One `plan()` call's inputs, the notes its explanation gathers, and the facts its routes share."""

    def __init__(
        self,
        *,
        source: ListingSource,
        options: PlanOptions,
        registry: FormatRegistry,
        full: FormatRegistry,
        disabled: tuple[str, ...],
        policy: GpuPolicy,
    ) -> None:
        self.source = source
        self.policy = policy
        self.options = options
        self.registry = registry
        self.full = full
        self.disabled = disabled
        self.notes: list[str] = []
        self.requested: RepoListing | None = None
        # Facts computed once per plan and shared by every route that needs them.
        self._engine_cache: dict[str, Engine] = {}
        self._selections: dict[tuple[str, str, str, bool], FileSelection | ModelFormatsError] = {}
        self._traits_cache: dict[tuple[str, str | None, str | None, bool], ModelTraits] = {}

    def base_listing(self, listing: RepoListing) -> RepoListing | None:
        from modelformats.gguf.source import find_base_repo

        found = find_base_repo(listing, self.source, explicit=self.options.tokenizer_from)
        if found is None:
            return None
        if found.listing is None:
            self.notes.append(f"The base model {found.repo_id} is not available here ({found.unavailable}).")
        return found.listing

    def engines(self, facts: ServingFacts) -> list[Engine]:
        """The engines the format names (its strategy's facts), narrowed by --engine; built once per plan."""
        want = self.options.engine
        engines: list[Engine] = []
        for kind in facts.engines:
            if kind not in self._engine_cache:
                # Formats name engines (`ENGINE_KINDS`); the planner builds them.
                self._engine_cache[kind] = build_engine(kind, self.options.vllm_version)
            engine = self._engine_cache[kind]
            if want in ("auto", engine.name):
                engines.append(engine)
        return engines

    def select(self, listing: RepoListing, detected: DetectionResult, engine: Engine | None) -> FileSelection:
        """The strategy's selection, once per repo and engine filter (engines of one name and version share
        their quant filter and tokenizer needs, so vLLM with and without the plugin select once). `engine`
        None: for `modelformats convert`, which dequantizes every type the `gguf` package reads (it refuses
        the others by name) and takes the base model's config and tokenizer when there are any (else the GGUF's)."""
        name, version = (engine.name, engine.version) if engine is not None else ("convert", "")
        # convert rebuilds the tokenizer from the GGUF when no base model's files are found.
        needs_tokenizer = engine.needs_tokenizer_files if engine is not None else False
        key = (listing.repo_id.lower(), name, version, needs_tokenizer)
        if key not in self._selections:
            context = SelectionContext(
                source=self.source,
                quant=self.options.quant,
                quant_order=self.options.quant_order,
                tokenizer_from=self.options.tokenizer_from,
                refuse_quant=engine.refuse_gguf_quant if engine is not None else None,
                needs_tokenizer=needs_tokenizer,
                for_conversion=engine is None,
            )
            try:
                self._selections[key] = detected.strategy.select_files(listing, detected.detection, context)
            except ModelFormatsError as exc:
                self._selections[key] = exc
        found = self._selections[key]
        if isinstance(found, ModelFormatsError):
            raise found
        return found

    def traits(self, listing: RepoListing, selection: FileSelection) -> ModelTraits:
        key = (listing.repo_id.lower(), selection.model_file, selection.base_repo, selection.quant is not None)
        if key in self._traits_cache:
            return self._traits_cache[key]
        layers = [traits_from_listing(listing, prefer=selection.model_file)]
        # A GGUF's base repo (its tokenizer/config source, or the repo found for sizes) knows the model.
        base = selection.base_repo
        if base is not None and base.lower() != listing.repo_id.lower():
            with contextlib.suppress(*LISTING_UNAVAILABLE):
                layers.append(traits_from_listing(self.source.fetch(base)))
        traits = merge_traits(*layers)
        traits = _infer_gguf_architecture(traits) if selection.quant is not None else traits
        self._traits_cache[key] = traits
        return traits

    def local_dir(self, repo_id: str) -> str:
        return f"{self.options.download_root.rstrip('/')}/{repo_id}"

    def served_name(self, listing: RepoListing) -> str:
        """The name the engine serves the model under: the repo the user asked for."""
        return self.requested.repo_id if self.requested is not None else listing.repo_id

    def weights_spec(
        self, listing: RepoListing, detected: DetectionResult, selection: FileSelection, traits: ModelTraits
    ) -> WeightsSpec:
        root = self.local_dir(listing.repo_id)
        facts = detected.strategy.serving
        # A single-file container carries no config.json: the tokenizer repo's stands in for it.
        single_file = facts.container != "hf-directory"
        tokenizer = self.local_dir(selection.tokenizer.repo_id) if selection.tokenizer is not None else None
        config = listing.config or {}
        return WeightsSpec(
            format=detected.detection.format,
            repo_id=listing.repo_id,
            revision=listing.revision,
            model=f"{root}/{selection.model_file}" if selection.model_file else root,
            container=facts.container,
            quantization=detected.detection.quantization or facts.vllm_quantization,
            quantization_flag=facts.quantization_flag,
            vllm_plugin=facts.vllm_plugin,
            tokenizer=tokenizer,
            hf_config_path=tokenizer if single_file else None,
            # Custom modelling code is needed only when config.json names it (auto_map).
            trust_remote_code="auto_map" in config,
            gguf_quant=selection.quant,
            gguf_layout=selection.layout,
            gguf_tensor_types=_tensor_types(listing, selection),
            needs_projector=selection.needs_projector,
            traits=traits,
        )

    def choose_gpu(
        self,
        engine: Engine,
        weights: WeightsSpec,
        selection: FileSelection,
        traits: ModelTraits,
        facts: ServingFacts,
        *,
        weights_size: tuple[int, str] | None = None,
    ) -> GpuDecision:
        from modelformats.gpu import GpuRequest

        if selection.download_bytes is None and traits.params_total is None:
            raise InvalidRequestError(
                f"Cannot size the weights of {weights.repo_id!r}: its listing records no file sizes and no "
                "parameter count, so no GPU can be chosen. Record it from the Hub (`modelformats record "
                f"{weights.repo_id} -o FILE` reads the file sizes) and plan with --listing FILE, or plan online."
            )
        size_bytes, basis = weights_size or (selection.download_bytes, selection.bytes_basis)
        request = GpuRequest(
            traits=traits,
            weights_bytes=size_bytes,
            weights_basis=basis,
            # An explicit size (online FP8) is already in its own bytes per weight.
            weight_bytes=None if weights_size is not None else selection.weight_bytes,
            engine=engine.name,
            engine_traits=traits_of(engine),
            format=weights.format,
            quantization=weights.quantization,
            capability_floor=facts.capability_floor,
            weights_in_torch_dtype=facts.weights_in_torch_dtype,
            min_compute_capability=engine.min_compute_capability(weights),
            gpu=self.options.gpu,
            max_model_len=self.options.max_model_len,
            max_num_seqs=self.options.max_num_seqs,
        )
        return self.policy.choose(request)

    def serve(self, routed: Route, facts: ServingFacts, *, weights_size: tuple[int, str] | None = None) -> Route:
        """A route the engine loads, sized on a GPU and given its command (or the problem that stopped it)."""
        engine, listing, selection, weights = routed.engine, routed.listing, routed.selection, routed.weights
        assert selection is not None and weights is not None
        traits, verdict = weights.traits, routed.verdict
        if self.options.experts_per_token is not None:
            try:
                check_experts_per_token(self.options.experts_per_token, traits)
            except InvalidRequestError as exc:
                return replace(routed, problem=str(exc), error=exc)
        try:
            gpu = self.choose_gpu(engine, weights, selection, traits, facts, weights_size=weights_size)
        except (NoFittingGpuError, InvalidRequestError) as exc:
            return replace(routed, problem=str(exc), error=exc)
        runtime = gpu.runtime_spec(
            served_model_name=self.served_name(listing),
            port=self.options.port,
            experts_per_token=self.options.experts_per_token,
            experts_per_token_key=traits.experts_per_token_key,
        )
        pin_note = None
        if self.options.pin_kv_cache:
            try:
                runtime, pin_note = pin_kv_cache(engine, gpu, runtime)
            except InvalidRequestError as exc:
                return replace(routed, gpu=gpu, problem=str(exc), error=exc)
        try:
            command = engine.command(weights, runtime, verdict)
        except InvalidRequestError as exc:  # an engine that cannot express what was asked (e.g. the override)
            return replace(routed, gpu=gpu, problem=str(exc), error=exc)
        if pin_note is not None:
            command = replace(command, notes=(*command.notes, pin_note))
        return replace(routed, gpu=gpu, command=command)


def _tensor_types(listing: RepoListing, selection: FileSelection) -> tuple[str, ...] | None:
    header = listing.gguf_headers.get(selection.model_file or "")
    types = header.get("tensor_types") if header is not None else None
    return tuple(sorted(types)) if isinstance(types, Mapping) else None


def _infer_gguf_architecture(traits: ModelTraits) -> ModelTraits:
    """Without a GGUF header, the architecture llama.cpp's converter gives the base model's type."""
    if traits.gguf_architecture is not None:
        return traits
    from modelformats.arch_map import gguf_architecture_for

    arch = gguf_architecture_for(architecture=traits.architecture, model_type=traits.model_type)
    if arch is None:
        return traits
    why = f"llama.cpp's converter writes {traits.architecture or traits.model_type} as '{arch}' (no GGUF header read)"
    return replace(traits, gguf_architecture=arch, sources={**traits.sources, "gguf_architecture": why})


def pin_kv_cache(engine: Engine, gpu: GpuDecision, runtime: RuntimeSpec) -> tuple[RuntimeSpec, str | None]:
    """`--pin-kv-cache`: the runtime with the KV cache pinned to the estimate's bytes on the fullest GPU, for
    an engine whose KV cache is what a utilization budget leaves (vLLM); else unchanged, with a note saying
    why nothing was pinned. Refused (InvalidRequestError) when the estimate rests on an assumed shape: too
    small a pin makes vLLM refuse to start, too large one wastes the memory the estimate was to save."""
    from modelformats.gpu.memory import format_bytes

    kv = gpu.memory.term("kv_cache")
    if not traits_of(engine).utilization_budget:
        return runtime, (
            f"--pin-kv-cache: {traits_of(engine).display_name} allocates its whole context up front, so its KV "
            f"cache is already the planned {format_bytes(kv.per_gpu_bytes)} per GPU; nothing to pin."
        )
    if kv.assumed:
        raise InvalidRequestError(
            f"--pin-kv-cache: the KV cache estimate ({format_bytes(kv.per_gpu_bytes)} per GPU) rests on an "
            f"assumption ({kv.basis}); pinned, a wrong guess makes vLLM refuse to start or wastes memory. Plan a "
            "repo whose config.json (or GGUF header) records the attention shape, or drop --pin-kv-cache."
        )
    return replace(runtime, kv_cache_memory_bytes=kv.per_gpu_bytes), None
