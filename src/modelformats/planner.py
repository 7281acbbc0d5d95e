"""From a repo id to a `DeploymentPlan`: detect, select files, ask each engine, size the GPU, rank.

Every way of serving the model is a *route* (weights x engine). Routes whose engine cannot load
the weights are kept as refused alternatives with their evidence; loadable routes are ranked by
how strongly we know they load (`EvidenceLevel`), then by price per hour, then by download size,
and the first is the plan. For a GGUF repo the routes include its base model's native weights on
vLLM and the GGUF on llama.cpp's server, so a GGUF that vLLM cannot load still gets a plan that can.
When no base model's native weights are found, the GGUF converted to safetensors after download
(`modelformats convert`) on vLLM is a route too, for the architectures convert supports; its evidence
(`converted`, or `converted-cpu-generation` where vLLM's engine generated from converted tiny checkpoints of
the layout) ranks it below every route that serves the downloaded weights as they are.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from modelformats.conversion import (
    CONVERT_DTYPE,
    CONVERTED_BYTES_PER_PARAM,
    MEASURED_RATE,
    conversion_target,
    supported_conversions,
)
from modelformats.deployment import (
    Alternative,
    ConvertStep,
    DeploymentPlan,
    DownloadItem,
    EnginePlan,
    JoinStep,
)
from modelformats.engines.base import Engine, EngineCommand, EvidenceLevel, LoadVerdict, WeightsSpec
from modelformats.engines.builtin import build_engine, traits_of
from modelformats.errors import (
    LISTING_UNAVAILABLE,
    EngineCannotLoadError,
    ExpertsPerTokenError,
    InvalidRequestError,
    ModelFormatsError,
    NoFittingGpuError,
    NoWeightsError,
    UnservableFormatError,
)
from modelformats.formats.base import FileSelection, ModelFormat, SelectionContext, ServingFacts
from modelformats.listing import ListingSource, RepoListing, validate_repo_id
from modelformats.options import ENGINE_CHOICES, FORMAT_CHOICES, PlanOptions
from modelformats.registry import DetectionResult, FormatRegistry, default_registry, disabled_from_env
from modelformats.sources.once import OncePerPlanSource
from modelformats.sources.recorded import default_source
from modelformats.traits import ModelTraits, merge_traits, traits_from_listing
from modelformats.validate import check_experts_per_token, check_options, check_quant_honoured

if TYPE_CHECKING:
    from modelformats.gpu import GpuDecision, GpuPolicy, PolicyRegistry

__all__ = ["DEFAULT_REPO", "ENGINE_CHOICES", "FORMAT_CHOICES", "PlanOptions", "plan"]

# The embedded offline default: the repo this product was built for.
DEFAULT_REPO = "DavidAU/Llama-3.2-8X3B-MOE-Dark-Champion-Instruct-uncensored-abliterated-18.4B-GGUF"


@dataclass(frozen=True, kw_only=True)
class _Route:
    label: str
    # "as-is" (the repo's own weights) | "base-native" (its base model's weights) | "converted" (the repo's
    # weights rewritten into another format after download, `convert`)
    kind: str
    listing: RepoListing
    detection: DetectionResult
    engine: Engine
    verdict: LoadVerdict
    selection: FileSelection | None = None
    weights: WeightsSpec | None = None
    gpu: GpuDecision | None = None
    command: EngineCommand | None = None
    problem: str | None = None
    # The user error that kept this route from selecting files (a quant that is not there, ...).
    error: ModelFormatsError | None = None
    # A converted route: the conversion run after download, and what the alternative's reason adds.
    convert: ConvertStep | None = None
    note: str | None = None
    # The format the engine serves when it is not the detected one (a converted route's).
    served_format: str | None = None

    @property
    def format(self) -> str:
        return self.served_format or self.detection.detection.format

    @property
    def loads(self) -> bool:
        return self.verdict.loads and self.problem is None and self.command is not None

    @property
    def price(self) -> float | None:
        return self.gpu.price_per_hour if self.gpu is not None else None

    @property
    def reasons(self) -> tuple[str, ...]:
        return (*self.verdict.reasons, *((self.problem,) if self.problem else ()))

    def sort_key(self) -> tuple[int, int, float, int]:
        return (
            self.verdict.level.rank if self.loads else len(EvidenceLevel),
            0 if traits_of(self.engine).preferred else 1,  # the product's primary engine wins ties
            self.price if self.price is not None else float("inf"),
            (self.selection.download_bytes or 0) if self.selection is not None else 0,
        )


def plan(
    repo_id: str | None = None,
    *,
    source: ListingSource | None = None,
    options: PlanOptions | None = None,
    registry: FormatRegistry | None = None,
    policies: PolicyRegistry | None = None,
) -> DeploymentPlan:
    """Plan the deployment of `repo_id` (None: the embedded offline default, the target GGUF repo).

    `source` defaults to the Hub (or, for the default repo, to the recordings in the package);
    `registry` to `default_registry()`; `policies` (where `options.policy` is looked up by name) to
    `default_policies()`.
    """
    options = options or PlanOptions()
    check_options(options, policies)  # every argument error, once, before any listing is read
    if repo_id is None:
        repo_id = DEFAULT_REPO
        source = source or default_source()
    if source is None:
        from modelformats.sources.hub import HubSource

        source = HubSource()
    validate_repo_id(repo_id)
    registry = registry or default_registry()
    disabled = tuple(sorted({*options.disable, *disabled_from_env(options.environ)}))
    unknown = [name for name in disabled if name not in registry]
    if unknown:
        raise InvalidRequestError(
            f"--disable / MODELFORMATS_DISABLE names unknown format(s) {unknown}; known: "
            f"{', '.join(registry.formats)}. Fix the name (e.g. MODELFORMATS_DISABLE=gguf)."
        )
    active = registry.copy(without=disabled)
    policy = _resolve_policy(options.policy, policies)
    source = OncePerPlanSource(source)
    listing = source.fetch(repo_id, revision=options.revision)
    planner = _Planner(source=source, options=options, registry=active, full=registry, disabled=disabled, policy=policy)
    return planner.run(listing)


def _resolve_policy(policy: str | GpuPolicy, policies: PolicyRegistry | None) -> GpuPolicy:
    from modelformats.gpu import GpuPolicy, default_policies

    if isinstance(policy, GpuPolicy):
        return policy
    return (policies if policies is not None else default_policies()).get(policy)


class _Planner:
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

    def run(self, listing: RepoListing) -> DeploymentPlan:
        self.requested = self.requested or listing
        try:
            # The formats switched off are named in the plan's detection, whatever they would have claimed.
            detected = replace(self.registry.detect(listing), disabled=self.disabled)
        except NoWeightsError:
            fallback = self._rollback_fallback(listing)
            if fallback is None:
                raise
            return self.run(fallback)
        d = detected.detection
        if not d.servable:
            raise UnservableFormatError(listing.repo_id, detected.strategy.description, d.reason or "", d.instead or "")
        return self._assemble(listing, detected, self._routes(listing, detected))

    # --- rollback and base models ---------------------------------------------------------------

    def _rollback_fallback(self, listing: RepoListing) -> RepoListing | None:
        """With a format switched off (the rollback flag), a repo of that format falls back to its base model."""
        if not self.disabled:
            return None
        try:
            would_be = self.full.detect(listing).detection.format
        except NoWeightsError:
            return None
        if would_be not in self.disabled:
            return None
        base = self._base_listing(listing)
        if base is None:
            raise InvalidRequestError(
                f"{listing.repo_id!r} holds {would_be} weights and {would_be} is disabled (MODELFORMATS_DISABLE "
                "or --disable); no base model was found to fall back to (card base_model, GGUF header keys, or "
                "a sibling repo without the -GGUF suffix). Re-enable the format or plan the base model by name."
            )
        self.notes.append(
            f"{would_be} is disabled (rollback flag), so {listing.repo_id} falls back to its base model {base.repo_id}."
        )
        return base

    def _base_listing(self, listing: RepoListing) -> RepoListing | None:
        from modelformats.gguf.source import find_base_repo

        found = find_base_repo(listing, self.source, explicit=self.options.tokenizer_from)
        if found is None:
            return None
        if found.listing is None:
            self.notes.append(f"The base model {found.repo_id} is not available here ({found.unavailable}).")
        return found.listing

    # --- routes ---------------------------------------------------------------------------------

    def _engines(self, facts: ServingFacts) -> list[Engine]:
        """The engines the format names (its strategy's facts), narrowed by --engine; built once per plan."""
        want = self.options.engine
        engines: list[Engine] = []
        for kind in facts.engines:
            if kind not in self._engine_cache:
                self._engine_cache[kind] = _build_engine(kind, self.options.vllm_version)
            engine = self._engine_cache[kind]
            if want in ("auto", engine.name):
                engines.append(engine)
        return engines

    def _routes(self, listing: RepoListing, detected: DetectionResult) -> list[_Route]:
        fmt = detected.detection.format
        facts = detected.strategy.serving
        opts = self.options
        if opts.format not in ("auto", "native") and opts.format != fmt:
            raise InvalidRequestError(
                f"--format {opts.format}: {listing.repo_id!r} holds {fmt} weights, not {opts.format.upper()}. "
                f"Use --format auto, or plan a {opts.format.upper()} repo."
            )
        if opts.engine != "auto" and not self._engines(facts) and not facts.base_model_routes:
            raise InvalidRequestError(
                f"--engine {opts.engine} {_ENGINE_SERVES.get(opts.engine, 'cannot serve these weights')} and "
                f"{listing.repo_id!r} holds {fmt} weights. Use --engine {_other_engine(opts.engine)} or auto."
            )
        routes: list[_Route] = []
        if not (facts.base_model_routes and opts.format == "native"):
            routes += [self._route(listing, detected, engine, kind="as-is") for engine in self._engines(facts)]
        if facts.base_model_routes and opts.format in ("auto", "native") and opts.engine in ("auto", "vllm"):
            # Without a base model's native weights, the repo's own weights converted are the native route.
            routes += self._base_routes(listing) or self._convert_routes(listing, detected)
        if not routes:
            raise InvalidRequestError(
                f"No way to serve {listing.repo_id!r} with --engine {opts.engine} --format {opts.format}: "
                "no base model with native weights was found and the weights convert to no format an engine "
                "serves. Use --format auto to see every option."
            )
        return routes + [fp8 for route in routes if (fp8 := self._online_fp8(route)) is not None]

    def _online_fp8(self, route: _Route) -> _Route | None:
        """The same 16-bit HF weights quantized to FP8 by vLLM at load (`--quantization fp8`), or None.

        vLLM's Fp8Config without checkpoint scales quantizes every linear and MoE expert weight to FP8
        as it loads (1 byte/param; embeddings, norms and lm_head stay 16-bit). Read in vLLM's source,
        not run here (no FP8 kernels on CPU), so the route is `source-read` whatever the 16-bit route's level.
        """
        w = route.weights
        if (
            not route.loads
            or w is None
            or route.selection is None
            # A converted route's selection is the GGUF, not the 16-bit weights FP8 would be sized from.
            or route.convert is not None
            or w.container != "hf-directory"
            or w.quantization is not None
            or not _sixteen_bit(route.listing, w.traits)
            # An engine that quantizes 16-bit weights itself at load names the methods (VllmEngine);
            # the attribute is optional so engines without it (llama.cpp) need not declare an empty one.
            or ONLINE_FP8 not in getattr(route.engine, "online_quantization", ())
        ):
            return None
        weights = replace(w, quantization=ONLINE_FP8, quantization_flag=True)
        checked = route.engine.check(weights)
        if not checked.loads:
            return None
        verdict = replace(
            checked,
            level=max(checked.level, EvidenceLevel.SOURCE_READ, key=lambda level: level.rank),
            evidence=(
                *checked.evidence,
                "online FP8: vLLM quantizes the 16-bit weights at load (--quantization fp8 with no checkpoint "
                "scales); read in vLLM's source, not run on CPU",
            ),
        )
        size = _fp8_bytes(route.selection.download_bytes, w.traits)
        routed = replace(route, label=f"online FP8 of {route.label}", weights=weights, verdict=verdict)
        if size is None:
            return replace(routed, problem="the 16-bit weights' size is unknown, so FP8 cannot be sized")
        try:
            gpu = self._choose_gpu(
                route.engine, weights, route.selection, w.traits, route.detection.strategy.serving, weights_size=size
            )
        except (NoFittingGpuError, InvalidRequestError) as exc:
            return replace(routed, problem=str(exc), error=exc)
        served = self.requested.repo_id if self.requested is not None else route.listing.repo_id
        runtime = gpu.runtime_spec(served_model_name=served, port=self.options.port)
        return replace(routed, gpu=gpu, command=route.engine.command(weights, runtime, verdict))

    def _base_routes(self, listing: RepoListing) -> list[_Route]:
        base = self._base_listing(listing)
        if base is None:
            self.notes.append(
                "No base model with native weights was found for this GGUF repo (card base_model, GGUF header "
                "keys, or a sibling repo without -GGUF), so only the GGUF itself (as it is, or converted) was "
                "considered."
            )
            return []
        try:
            detected = self.registry.detect(base)
        except NoWeightsError:
            self.notes.append(f"The base model {base.repo_id} has no weights vLLM can load.")
            return []
        facts = detected.strategy.serving
        if not detected.detection.servable or facts.base_model_routes:
            self.notes.append(
                f"The base model {base.repo_id} holds {detected.detection.format} weights: no native route."
            )
            return []
        return [self._route(base, detected, engine, kind="base-native") for engine in self._engines(facts)]

    def _convert_routes(self, listing: RepoListing, detected: DetectionResult) -> list[_Route]:
        """The repo's weights converted after download into the format its strategy names (`converts_to`),
        on that format's engines; refused routes where `modelformats convert` cannot convert them."""
        name = detected.strategy.serving.converts_to
        target = self.registry.formats.get(name) if name is not None else None
        if target is None:
            return []
        return [self._convert_route(listing, detected, target, engine) for engine in self._engines(target.serving)]

    def _convert_route(
        self, listing: RepoListing, detected: DetectionResult, target: ModelFormat, engine: Engine
    ) -> _Route:
        fmt = detected.detection.format
        base = _Route(
            label=f"{fmt} weights converted to {target.name} ({CONVERT_DTYPE}) on {engine.label}",
            kind="converted",
            served_format=target.name,
            listing=listing,
            detection=detected,
            engine=engine,
            verdict=LoadVerdict(loads=False, level=EvidenceLevel.REFUSED),
        )
        try:
            selection = self._select(listing, detected, None)
        except ModelFormatsError as exc:
            return replace(base, verdict=replace(base.verdict, reasons=(str(exc),)), error=exc)
        base = replace(base, selection=selection)
        traits = self._traits(listing, selection)
        supported = ", ".join(supported_conversions())
        arch = traits.gguf_architecture
        if arch is None:
            why = (
                f"the {fmt} architecture is unknown (no header read and no base config), so whether "
                f"modelformats convert supports it cannot be told (it converts: {supported})"
            )
            return replace(base, verdict=replace(base.verdict, reasons=(why,)))
        experts = bool(traits.num_experts)
        conversion = conversion_target(arch, experts)
        if conversion is None:
            why = (
                f"modelformats convert has no layout for {fmt} architecture {arch!r}"
                f"{' with experts' if experts else ''} (it converts: {supported})"
            )
            return replace(base, verdict=replace(base.verdict, reasons=(why,)))
        source_bytes = selection.download_bytes
        when = MEASURED_RATE.describe(source_bytes)
        root = self._local_dir(listing.repo_id)
        step = ConvertStep(
            gguf=f"{root}/{selection.model_file}",
            output=f"{root}/{_converted_dir(selection.quant, CONVERT_DTYPE)}",
            dtype=CONVERT_DTYPE,
            base=self._local_dir(selection.tokenizer.repo_id) if selection.tokenizer is not None else None,
            source_bytes=source_bytes,
            estimated_seconds=MEASURED_RATE.seconds(source_bytes) if source_bytes is not None else None,
            estimate_basis=when,
        )
        origin = f"modelformats convert's {conversion.name} layout"
        converted = replace(
            traits,
            architecture=conversion.hf_architecture,
            model_type=conversion.model_type,
            torch_dtype=CONVERT_DTYPE,
            sources={
                **traits.sources,
                "architecture": origin,
                "model_type": origin,
                "torch_dtype": f"the dtype the planned conversion writes ({CONVERT_DTYPE})",
            },
        )
        weights = WeightsSpec(
            format=target.name,
            repo_id=listing.repo_id,
            revision=listing.revision,
            model=step.output,
            container=target.serving.container,
            quantization=target.serving.vllm_quantization,
            quantization_flag=target.serving.quantization_flag,
            traits=converted,
        )
        checked = engine.check(weights)
        caveat = () if step.base is not None else (_NO_BASE_CONVERT,)
        verdict = replace(
            checked,
            level=conversion.level if checked.loads else checked.level,
            warnings=(*checked.warnings, *conversion.warnings(selection.quant), *caveat),
            evidence=(
                *checked.evidence,
                *conversion.evidence(),
                f"conversion after download: {selection.quant or fmt} -> {CONVERT_DTYPE}, {when}",
            ),
        )
        routed = replace(base, weights=weights, verdict=verdict, convert=step, note=f"conversion {when}")
        if not verdict.loads:
            return routed
        params = _converted_params(traits, selection)
        if params is None:
            why = f"the parameter count is unknown, so the {CONVERT_DTYPE} weights cannot be sized"
            return replace(routed, problem=why)
        n, basis = params
        size = (n * CONVERTED_BYTES_PER_PARAM, f"converted to {CONVERT_DTYPE}: {n:,} parameters ({basis}) x 2 B")
        return self._serve(routed, target.serving, weights_size=size)

    def _select(self, listing: RepoListing, detected: DetectionResult, engine: Engine | None) -> FileSelection:
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

    def _route(self, listing: RepoListing, detected: DetectionResult, engine: Engine, *, kind: str) -> _Route:
        fmt = detected.detection.format
        label = _route_label(fmt, engine, kind, listing.repo_id)
        base = _Route(label=label, kind=kind, listing=listing, detection=detected, engine=engine,
                      verdict=LoadVerdict(loads=False, level=EvidenceLevel.REFUSED))  # fmt: skip
        try:
            selection = self._select(listing, detected, engine)
        except ModelFormatsError as exc:
            # A quant this engine refuses everywhere is a refused route; other engines may still take it.
            # The same error on every route (an incomplete upload, a --quant not there) is raised as itself.
            return replace(base, verdict=replace(base.verdict, reasons=(str(exc),)), error=exc)
        traits = self._traits(listing, selection)
        weights = self._weights_spec(listing, detected, selection, traits)
        verdict = engine.check(weights)
        routed = replace(base, selection=selection, weights=weights, verdict=verdict)
        if not verdict.loads:
            return routed
        return self._serve(routed, detected.strategy.serving)

    def _serve(self, routed: _Route, facts: ServingFacts, *, weights_size: tuple[int, str] | None = None) -> _Route:
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
            gpu = self._choose_gpu(engine, weights, selection, traits, facts, weights_size=weights_size)
        except (NoFittingGpuError, InvalidRequestError) as exc:
            return replace(routed, problem=str(exc), error=exc)
        served = self.requested.repo_id if self.requested is not None else listing.repo_id
        runtime = gpu.runtime_spec(
            served_model_name=served,
            port=self.options.port,
            experts_per_token=self.options.experts_per_token,
            experts_per_token_key=traits.experts_per_token_key,
        )
        try:
            command = engine.command(weights, runtime, verdict)
        except InvalidRequestError as exc:  # an engine that cannot express what was asked (e.g. the override)
            return replace(routed, gpu=gpu, problem=str(exc), error=exc)
        return replace(routed, gpu=gpu, command=command)

    def _traits(self, listing: RepoListing, selection: FileSelection) -> ModelTraits:
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

    def _local_dir(self, repo_id: str) -> str:
        return f"{self.options.download_root.rstrip('/')}/{repo_id}"

    def _weights_spec(
        self, listing: RepoListing, detected: DetectionResult, selection: FileSelection, traits: ModelTraits
    ) -> WeightsSpec:
        root = self._local_dir(listing.repo_id)
        facts = detected.strategy.serving
        # A single-file container carries no config.json: the tokenizer repo's stands in for it.
        single_file = facts.container != "hf-directory"
        tokenizer = self._local_dir(selection.tokenizer.repo_id) if selection.tokenizer is not None else None
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

    def _choose_gpu(
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

    # --- assembly -------------------------------------------------------------------------------

    def _assemble(self, listing: RepoListing, detected: DetectionResult, routes: list[_Route]) -> DeploymentPlan:
        # An explicit --quant ranks the routes that serve it first (the rest stay as alternatives).
        quant = (self.options.quant or "").upper()
        ranked = sorted(routes, key=lambda r: (bool(quant) and _route_quant(r) != quant, r.sort_key()))
        loadable = [r for r in ranked if r.loads]
        if not loadable:
            errors = {(type(r.error), str(r.error)) for r in ranked}
            first = ranked[0].error
            if first is not None and len(errors) == 1:
                raise first  # the same user error on every route (e.g. --quant names a quant that is not there)
            # --experts-per-token is checked against the model, not the route: when it is what kept every
            # route an engine would load, it is the answer (the engines' own refusals stay alternatives).
            experts = {str(r.error): r.error for r in ranked if r.verdict.loads}
            only = next(iter(experts.values())) if len(experts) == 1 else None
            if isinstance(only, ExpertsPerTokenError):
                raise only
            lines = [f"- {r.label}: {'; '.join(r.reasons) or 'refused'}" for r in ranked]
            opts = self.options
            widen = opts.engine != "auto" or opts.format != "auto"
            raise EngineCannotLoadError(
                f"No engine can load {listing.repo_id!r} as asked (--engine {opts.engine}, --format "
                f"{opts.format}):\n"
                + "\n".join(lines)
                + ("\nTry --engine auto --format auto." if widen else "\nNo engine and format combination loads it."),
                reasons=[line[2:] for line in lines],
            )
        chosen = loadable[0]
        chosen_quant = chosen.selection.quant if chosen.selection is not None else None
        check_quant_honoured(
            listing.repo_id, self.options.quant, chosen_quant, [r.error for r in ranked], listing.paths
        )
        assert chosen.selection is not None and chosen.gpu is not None and chosen.command is not None
        requested = self.requested or listing
        alternatives = tuple(_alternative(i + 2, r, chosen) for i, r in enumerate(ranked[1:]))
        downloads, joins = self._downloads(chosen)
        sel = chosen.selection
        return DeploymentPlan(
            repo_id=requested.repo_id,
            revision=requested.revision,
            weights_repo_id=chosen.listing.repo_id,
            format=chosen.format,
            quantization=chosen.weights.quantization if chosen.weights else None,
            quant=sel.quant,
            detection=detected.detection_summary(),
            files=sel.files,
            tokenizer=sel.tokenizer,
            download_root=self.options.download_root,
            downloads=downloads,
            joins=joins,
            download_bytes=_sum_bytes(downloads),
            download_bytes_estimated=any(d.bytes_estimated for d in downloads),
            served_model_name=requested.repo_id,
            port=self.options.port,
            engine=EnginePlan(
                name=chosen.engine.name,
                version=chosen.engine.version,
                argv=chosen.command.argv,
                requirements=chosen.command.requirements,
                env=dict(chosen.command.env),
                image=chosen.command.image,
                verdict=chosen.verdict,
                notes=chosen.command.notes,
                overrides=chosen.command.overrides,
            ),
            gpu=chosen.gpu.gpu_summary(),
            runtime=chosen.gpu.limits,
            memory=chosen.gpu.memory.memory_summary(),
            traits=chosen.weights.traits if chosen.weights else ModelTraits(),
            alternatives=alternatives,
            explanation=tuple(self._explain(requested, detected, chosen, alternatives)),
            warnings=tuple(dict.fromkeys([*sel.warnings, *chosen.verdict.warnings, *chosen.gpu.warnings])),
            excluded=sel.excluded,
            compute_capability=chosen.gpu.compute_capability,
            parallel_options=chosen.gpu.parallel_options,
            launch=chosen.gpu.launch,
            other_policy=chosen.gpu.comparison,
            converts=(chosen.convert,) if chosen.convert is not None else (),
        )

    def _downloads(self, route: _Route) -> tuple[tuple[DownloadItem, ...], tuple[JoinStep, ...]]:
        sel = route.selection
        assert sel is not None
        local = self._local_dir(route.listing.repo_id)
        items = [
            DownloadItem(
                repo_id=route.listing.repo_id,
                revision=route.listing.revision,
                files=sel.files,
                allow_patterns=sel.allow_patterns,
                local_dir=local,
                bytes=sel.download_bytes,
                bytes_estimated=sel.bytes_estimated,
                sizes=_known_sizes(route.listing, sel.files),
                hashes=_known_hashes(route.listing, sel.files),
                source_dir=route.listing.origin_dir,
            )
        ]
        tok = sel.tokenizer
        if tok is not None:
            tok_origin: str | None = None
            try:
                tok_listing = self.source.fetch(tok.repo_id)
                tok_sizes, tok_hashes = _known_sizes(tok_listing, tok.files), _known_hashes(tok_listing, tok.files)
                tok_origin = tok_listing.origin_dir
            except LISTING_UNAVAILABLE:
                tok_sizes, tok_hashes = {}, {}
            items.append(
                DownloadItem(
                    repo_id=tok.repo_id,
                    revision=tok.revision,
                    files=tok.files,
                    allow_patterns=tok.allow_patterns,
                    local_dir=self._local_dir(tok.repo_id),
                    bytes=tok.download_bytes,
                    bytes_estimated=tok.download_bytes is None,
                    sizes=tok_sizes,
                    hashes=tok_hashes,
                    source_dir=tok_origin,
                )
            )
        joins = tuple(
            JoinStep(
                output=f"{local}/{j.output}",
                parts=tuple(f"{local}/{p}" for p in j.parts),
                expected_bytes=j.expected_bytes,
            )
            for j in sel.joins
        )
        return tuple(items), joins

    def _explain(
        self,
        requested: RepoListing,
        detected: DetectionResult,
        chosen: _Route,
        alternatives: tuple[Alternative, ...],
    ) -> list[str]:
        d = detected.detection
        out = [f"{requested.repo_id} holds {d.format} weights: {'; '.join(d.evidence)} ({detected.rule})."]
        out += self.notes
        if chosen.kind == "base-native":
            out.append(
                f"Chosen: {chosen.label} — {chosen.listing.repo_id} is the same model in its original "
                "weights, served by vLLM's own kernels."
            )
        elif chosen.convert is not None:
            step = chosen.convert
            out.append(
                f"Chosen: {chosen.label} — after download, `modelformats convert` writes {step.output} from "
                f"{step.gguf} ({step.estimate_basis}); the engine serves that directory."
            )
        else:
            out.append(f"Chosen: {chosen.label}.")
        out.append(f"Engine evidence: {chosen.verdict.level.description}" + _evidence_suffix(chosen.verdict))
        sel = chosen.selection
        assert sel is not None
        size = _human_bytes(sel.download_bytes)
        out.append(
            f"Fetch {len(sel.files)} file(s) from {chosen.listing.repo_id} ({size}; {sel.bytes_basis})"
            + (f", quant {sel.quant}" if sel.quant else "")
            + "."
        )
        out += sel.notes  # a GGUF selection explains its tokenizer source among its notes
        n = self.options.experts_per_token
        if n is not None and chosen.weights is not None:
            t = chosen.weights.traits
            default = f", instead of the model's {t.num_experts_per_tok}" if t.num_experts_per_tok else ""
            out.append(f"Experts per token: {n} of the model's {t.num_experts} (--experts-per-token{default}).")
        assert chosen.gpu is not None
        out += chosen.gpu.explanation
        for alt in alternatives:
            price = f"${alt.price_per_hour:.2f}/h" if alt.price_per_hour is not None else "no price"
            out.append(f"Alternative {alt.rank}: {alt.label} ({price}) — {alt.reason}")
        return out


def _alternative(rank: int, route: _Route, chosen: _Route) -> Alternative:
    if route.loads:
        if route.verdict.level.rank > chosen.verdict.level.rank:
            reason = f"weaker evidence: {route.verdict.level.description}"
        elif route.price is not None and chosen.price is not None and route.price > chosen.price:
            reason = f"costs ${route.price - chosen.price:.2f}/h more"
        else:
            reason = "ranked lower (engine preference or download size)"
    else:
        reason = "cannot load: " + ("; ".join(route.reasons) or "refused")
    if route.note is not None and route.loads:
        reason += f"; {route.note}"
    sel = route.selection
    return Alternative(
        rank=rank,
        label=route.label,
        repo_id=route.listing.repo_id,
        format=route.format,
        engine=f"{route.engine.name} {route.engine.version}",
        loads=route.loads,
        verdict=route.verdict,
        gpu=route.gpu.gpu_summary() if route.gpu is not None else None,
        price_per_hour=route.price,
        download_bytes=sel.download_bytes if sel is not None else None,
        reason=reason,
        quant=sel.quant if sel is not None else None,
        argv=route.command.argv if route.command is not None else (),
        requirements=route.command.requirements if route.command is not None else (),
    )


# vLLM's name for online FP8 quantization of 16-bit weights (`--quantization fp8`).
ONLINE_FP8 = "fp8"
_SIXTEEN_BIT = ("bfloat16", "float16")


def _sixteen_bit(listing: RepoListing, traits: ModelTraits) -> bool:
    """config.json's torch_dtype, else the Hub's safetensors parameter counts by dtype, say 16-bit weights."""
    if traits.torch_dtype is not None:
        return traits.torch_dtype.lower() in _SIXTEEN_BIT
    counts = listing.safetensors.parameters if listing.safetensors is not None else {}
    return bool(counts) and set(counts) <= {"BF16", "F16"}


def _fp8_bytes(sixteen_bit_bytes: int | None, traits: ModelTraits) -> tuple[int, str] | None:
    """FP8 weights: half the 16-bit bytes, plus embed_tokens and lm_head kept in 16 bits (counted untied:
    the traits do not say whether they are tied, so a tied model is over-sized by one table)."""
    if sixteen_bit_bytes is None:
        return None
    kept = traits.vocab_size * traits.hidden_size * 2 if traits.vocab_size and traits.hidden_size else 0
    basis = f"online FP8: {sixteen_bit_bytes / 1e9:.1f} GB of 16-bit weights at 1 byte/param" + (
        f", embed_tokens + lm_head kept 16-bit (+{kept / 1e9:.2f} GB)" if kept else ""
    )
    return sixteen_bit_bytes // 2 + kept, basis


# A conversion without the base model's config.json (convert rebuilds config and tokenizer from the GGUF).
_NO_BASE_CONVERT = (
    "The conversion has no base model's config.json: modelformats convert builds config.json and the tokenizer "
    "from the GGUF (transformers needed where it runs) and refuses a GGUF with llama3 rope scaling (a rope_freqs "
    "tensor, Llama 3.1 and later), whose parameters the header lacks. Pass --tokenizer-from with the original "
    "model's repo to take both from there."
)


def _converted_dir(quant: str | None, dtype: str) -> str:
    """The folder, beside the downloaded GGUF, that a conversion writes (one per quant and dtype)."""
    return f"converted-{quant or 'gguf'}-{dtype}"


def _converted_params(traits: ModelTraits, selection: FileSelection) -> tuple[int, str] | None:
    """Parameters of weights to be converted: the metadata's count, else the GGUF's bytes / its bytes per weight."""
    if traits.params_total:
        return traits.params_total, traits.sources.get("params_total", "model traits")
    wb = selection.weight_bytes
    if selection.download_bytes and wb is not None:
        n = int(selection.download_bytes / wb.bytes_per_weight)
        return n, f"{_human_bytes(selection.download_bytes)} / {wb.bytes_per_weight:.4g} bytes per weight ({wb.basis})"
    return None


def _route_quant(route: _Route) -> str | None:
    quant = route.selection.quant if route.selection is not None else None
    return quant.upper() if quant is not None else None


def _route_label(fmt: str, engine: Engine, kind: str, repo_id: str) -> str:
    what = f"native {fmt} weights of {repo_id}" if kind == "base-native" else f"{fmt} weights"
    return f"{what} on {engine.label}"


# What an engine named by --engine serves, for the error when the repo's format does not name it.
_ENGINE_SERVES: Mapping[str, str] = {"llamacpp": "serves GGUF files only", "vllm": "cannot serve these weights"}


def _other_engine(engine: str) -> str:
    """The first other --engine choice than `engine` (and 'auto'), to suggest."""
    return next(choice for choice in ENGINE_CHOICES if choice not in ("auto", engine))


def _build_engine(kind: str, vllm_version: str | None) -> Engine:
    """The engine behind an `ENGINE_KINDS` name (formats name engines; the planner builds them)."""
    return build_engine(kind, vllm_version)


def _evidence_suffix(verdict: LoadVerdict) -> str:
    return (" (" + "; ".join(verdict.evidence) + ").") if verdict.evidence else "."


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


def _known_sizes(listing: RepoListing, paths: tuple[str, ...]) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for path in paths:
        f = listing.get(path)
        if f is not None and f.size is not None:
            sizes[path] = f.size
    return sizes


def _known_hashes(listing: RepoListing, paths: tuple[str, ...]) -> dict[str, str]:
    """The Hub's hash of each path the listing records one for: `download` checks the bytes against it."""
    found = (listing.get(path) for path in paths)
    return {f.path: f.digest for f in found if f is not None and f.digest is not None}


def _sum_bytes(items: tuple[DownloadItem, ...]) -> int | None:
    """Unknown weights make the total unknown; a tokenizer repo of unknown size (a few MB of JSON) is left
    out, and its item's `bytes_estimated` marks the total as an estimate."""
    weights, *rest = items
    if weights.bytes is None:
        return None
    return weights.bytes + sum(item.bytes or 0 for item in rest)


def _human_bytes(n: int | None) -> str:
    if n is None:
        return "size unknown"
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"
