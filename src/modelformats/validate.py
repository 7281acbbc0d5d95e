"""Every plan option checked in one place, before any listing is read or route is planned.

`check_options` reports all bad options at once (one `InvalidRequestError` each, in an
`ExceptionGroup` when there are several), so `--gpu H100:0` is said once, as an argument error,
instead of once per route. `check_experts_per_token` checks `--experts-per-token` against the model's
metadata once its traits are known. `check_quant_honoured` is the one post-planning rule: an explicit
`--quant` that the chosen route does not serve is an error naming the quants that exist.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from modelformats.errors import ExpertsPerTokenError, InvalidRequestError, ModelFormatsError, QuantNotFoundError

if TYPE_CHECKING:
    from modelformats.deployment import DeploymentPlan
    from modelformats.gpu import PolicyRegistry
    from modelformats.options import PlanOptions
    from modelformats.traits import ModelTraits

__all__ = ["check_experts_per_token", "check_options", "check_quant_honoured", "read_plan_file"]


def _option_errors(options: PlanOptions, policies: Sequence[str]) -> list[ModelFormatsError]:
    from modelformats.engines.vllm import vllm_engine
    from modelformats.gguf.quant import parse_quant, vocabulary_note
    from modelformats.gpu.catalogue import parse_gpu
    from modelformats.listing import validate_repo_id

    problems: list[ModelFormatsError] = []
    if options.gpu is not None:
        try:
            parse_gpu(options.gpu)
        except ModelFormatsError as exc:
            problems.append(exc)  # its message names the value and the syntax
    if options.quant is not None and parse_quant(options.quant) is None:
        problems.append(
            InvalidRequestError(
                f"--quant {options.quant!r} is not a GGUF quant name: not in {vocabulary_note()} (with an optional "
                "UD-/i1- prefix or _L/_XL suffix). Use a name such as Q8_0, Q4_K_M, IQ4_XS or UD-Q4_K_XL."
            )
        )
    if options.quant is not None and options.format == "native":
        problems.append(
            InvalidRequestError(
                f"--quant {options.quant} picks a GGUF file, but --format native serves the base model's own "
                "weights. Drop --quant, or use --format gguf (or auto)."
            )
        )
    if options.vllm_version is not None:
        try:
            vllm_engine(options.vllm_version)
        except ModelFormatsError as exc:
            problems.append(exc)
    # A GpuPolicy object is its own answer; a name must be one of the plan's policies.
    if isinstance(options.policy, str) and options.policy not in policies:
        problems.append(InvalidRequestError(f"--policy {options.policy!r} is not one of: {', '.join(policies)}."))
    if options.tokenizer_from is not None:
        try:
            validate_repo_id(options.tokenizer_from)
        except ModelFormatsError as exc:
            problems.append(InvalidRequestError(f"--tokenizer-from: {exc}"))
    if options.revision is not None and (not options.revision.strip() or options.revision != options.revision.strip()):
        problems.append(
            InvalidRequestError(f"--revision {options.revision!r} is empty or padded; pass a branch, tag or commit.")
        )
    for flag, value in (
        ("--max-model-len", options.max_model_len),
        ("--max-num-seqs", options.max_num_seqs),
        ("--experts-per-token", options.experts_per_token),
    ):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            problems.append(InvalidRequestError(f"{flag} {value!r} must be a positive integer."))
    return problems


def check_options(options: PlanOptions, policies: PolicyRegistry | None = None) -> None:
    """Raise every problem of `options` (one error, or an ExceptionGroup of them); return when all are fine.

    `policies`: where a policy name is looked up (default: `default_policies()`)."""
    from modelformats.gpu import default_policies

    names = (policies if policies is not None else default_policies()).names
    problems = _option_errors(options, names)
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise ExceptionGroup("Invalid options", problems)


def check_experts_per_token(requested: int, traits: ModelTraits) -> None:
    """Raise `ExpertsPerTokenError` unless the model is a MoE whose metadata counts at least `requested` experts.

    The count is the model's (config.json `num_local_experts`/`num_experts`/..., GGUF `<arch>.expert_count`),
    never a repo name; the message is the same whichever of the model's repos it was read from.
    """
    experts, default = traits.num_experts, traits.num_experts_per_tok
    flag = f"--experts-per-token {requested}"
    if traits.is_moe is False or (experts is not None and experts < 2):
        raise ExpertsPerTokenError(
            f"{flag}: the model is not a mixture of experts (its metadata counts {experts or 'no'} routed "
            "experts), so there is no expert count to change. Drop --experts-per-token.",
            requested=requested, num_experts=experts, default=default,
        )  # fmt: skip
    if experts is None:
        raise ExpertsPerTokenError(
            f"{flag}: the model's metadata does not record its number of experts (config.json "
            "num_local_experts/num_experts/n_routed_experts, or the GGUF header's <arch>.expert_count), so N "
            "cannot be checked. Plan a repo whose config.json or GGUF header records it, or drop "
            "--experts-per-token.",
            requested=requested, num_experts=None, default=default,
        )  # fmt: skip
    if requested > experts:
        uses = f"; it routes each token to {default} by default" if default is not None else ""
        raise ExpertsPerTokenError(
            f"{flag}: the model has {experts} experts{uses}, so a token can be routed to at most {experts}. "
            f"Use --experts-per-token between 1 and {experts}.",
            requested=requested, num_experts=experts, default=default,
        )  # fmt: skip


def check_quant_honoured(
    repo_id: str,
    quant: str | None,
    chosen_quant: str | None,
    errors: Sequence[BaseException | None],
    paths: Iterable[str],
) -> None:
    """An explicit --quant must be what the plan serves: never a silent fall back to other weights.

    `chosen_quant` is the quant of the chosen route (None for non-GGUF weights); `errors` are the
    routes' selection errors, where a QuantNotFoundError carries the quants the repo has; `paths`
    are the repo's files, for the quants to name when no route looked for one.
    """
    if quant is None or (chosen_quant is not None and chosen_quant.upper() == quant.upper()):
        return
    missing = next((e for e in errors if isinstance(e, QuantNotFoundError)), None)
    if missing is not None:
        raise missing
    from modelformats.gguf.files import inventory_gguf

    have = [u.label for u in inventory_gguf(paths).units if u.quant is not None and u.complete]
    if not have:
        raise InvalidRequestError(
            f"--quant {quant} picks a GGUF file, and {repo_id!r} has none. Drop --quant, or plan a GGUF repo."
        )
    raise QuantNotFoundError(
        repo_id,
        [quant],
        have,
        rule="it exists, but no engine asked for serves it" if quant.upper() in map(str.upper, have) else "no match",
    )


# Plan fields that hold an object (or null); `DeploymentPlan.from_dict` would fail obscurely on anything else.
_PLAN_OBJECTS = ("download", "engine", "gpu", "memory", "runtime", "detection", "traits", "tokenizer")
_JSON_KINDS = {list: "array", str: "string", int: "number", float: "number", bool: "boolean", type(None): "null"}
_PLAN_LISTS = ("files", "alternatives", "explanation", "warnings", "excluded")


def check_plan_document(data: object, where: str) -> dict[str, object]:
    """`data` (a parsed plan file) as a dict whose fields have the types a plan has; else an error per field."""
    fix = "write a plan with `modelformats plan ... --json > plan.json`"
    if not isinstance(data, dict):
        kind = _JSON_KINDS.get(type(data), type(data).__name__)
        raise InvalidRequestError(f"{where} holds a JSON {kind}, not a modelformats plan (a JSON object); {fix}.")
    problems: list[ModelFormatsError] = []
    for key in _PLAN_OBJECTS:
        value = data.get(key)
        if value is not None and not isinstance(value, dict):
            problems.append(
                InvalidRequestError(f"{where}: '{key}' must be an object or null, got {value!r:.60}; {fix}.")
            )
    for key in _PLAN_LISTS:
        value = data.get(key)
        if value is not None and not isinstance(value, list):
            problems.append(InvalidRequestError(f"{where}: '{key}' must be a list, got {value!r:.60}; {fix}."))
    if not isinstance(data.get("engine"), dict):
        problems.append(
            InvalidRequestError(f"{where}: 'engine' must be an object, got {data.get('engine')!r:.60}; {fix}.")
        )
    for key in ("repo_id", "format", "served_model_name"):
        if not isinstance(data.get(key), str):
            problems.append(
                InvalidRequestError(f"{where}: '{key}' must be a string, got {data.get(key)!r:.60}; {fix}.")
            )
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise ExceptionGroup(f"{where} is not a valid modelformats plan", problems)
    return data


def read_plan_file(path: str) -> tuple[dict[str, object], DeploymentPlan]:
    """A plan file written by `modelformats plan --json`: its checked JSON and the typed plan.

    The one reader of plan files (download --plan, bench --plan): any problem is an InvalidRequestError
    naming the file, the field and the fix, never a traceback.
    """
    import json
    from pathlib import Path

    from modelformats.deployment import DeploymentPlan

    where = f"--plan {path!r}"
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidRequestError(
            f"{where} cannot be read ({type(exc).__name__}: {exc}); name a plan file written by "
            "`modelformats plan ... --json > plan.json`."
        ) from None
    try:
        data = check_plan_document(json.loads(text), where)
        return data, DeploymentPlan.from_dict(data)
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        if isinstance(exc, ModelFormatsError):
            raise
        raise InvalidRequestError(
            f"{where} is not a readable modelformats plan ({type(exc).__name__}: {exc}); "
            "write one with `modelformats plan ... --json > plan.json`."
        ) from None
