"""Every plan option checked in one place, before any listing is read or route is planned.

`check_options` reports all bad options at once (one `InvalidRequestError` each, in an
`ExceptionGroup` when there are several), so `--gpu H100:0` is said once, as an argument error,
instead of once per route. `check_quant_honoured` is the one post-planning rule: an explicit
`--quant` that the chosen route does not serve is an error naming the quants that exist.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from modelformats.errors import InvalidRequestError, ModelFormatsError, QuantNotFoundError

if TYPE_CHECKING:
    from modelformats.gpu import PolicyRegistry
    from modelformats.options import PlanOptions

__all__ = ["check_options", "check_quant_honoured"]


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
    for flag, value in (("--max-model-len", options.max_model_len), ("--max-num-seqs", options.max_num_seqs)):
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
