"""Every exception modelformats raises, in one tree.

Each class also inherits the builtin a caller would naturally catch (``LookupError`` for
"not found", ``ValueError`` for bad data), and carries the structured fields a program needs.
Messages name the value, the rule that was broken and the fix.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "LISTING_UNAVAILABLE",
    "ChecksumMismatchError",
    "ConversionError",
    "DuplicateRegistrationError",
    "EngineCannotLoadError",
    "ExpertsPerTokenError",
    "GGUFHeaderError",
    "GGUFLayoutMismatchError",
    "GatedRepoError",
    "HubUnavailableError",
    "IncompleteUploadError",
    "InvalidListingError",
    "InvalidRepoIdError",
    "InvalidRequestError",
    "LocalFileError",
    "ModelFormatsError",
    "NoFittingGpuError",
    "NoWeightsError",
    "PartialDownloadError",
    "QuantNotFoundError",
    "RegistrationError",
    "RepoNotFoundError",
    "RevisionNotFoundError",
    "ServerAuthError",
    "TokenizerSourceError",
    "UnknownGpuError",
    "UnsafePathError",
    "UnservableFormatError",
    "UnsupportedEngineVersionError",
]


class ModelFormatsError(Exception):
    """Base class of every error raised on purpose by modelformats."""


# --- input: listings, repo ids, paths ---------------------------------------------------------


class InvalidListingError(ModelFormatsError, ValueError):
    """A recorded listing (or a listing built from a source) breaks the schema."""

    def __init__(self, message: str, *, source: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.source = source
        self.field = field


class UnsafePathError(InvalidListingError):
    """A file path in a listing could escape the download directory."""

    def __init__(self, path: str, rule: str, *, source: str | None = None) -> None:
        super().__init__(
            f"Refusing file path {path!r}: {rule}. Repo paths must be relative, '/'-separated and "
            "free of '..' segments; fix the listing or report the repo.",
            source=source,
            field="files[].path",
        )
        self.path = path


class InvalidRepoIdError(ModelFormatsError, ValueError):
    """A repo id that huggingface_hub's validators reject."""

    def __init__(self, repo_id: str, reason: str) -> None:
        super().__init__(f"Invalid repo id {repo_id!r}: {reason}. Use the form 'owner/name', e.g. 'Qwen/Qwen2.5-7B'.")
        self.repo_id = repo_id


class InvalidRequestError(ModelFormatsError, ValueError):
    """Options that contradict each other or name something that does not exist."""


class ExpertsPerTokenError(InvalidRequestError):
    """`--experts-per-token N` that the model's metadata does not allow (not a MoE, N above its experts)."""

    def __init__(self, message: str, *, requested: int, num_experts: int | None, default: int | None) -> None:
        super().__init__(message)
        self.requested = requested
        self.num_experts = num_experts
        self.default = default


# --- the Hub ------------------------------------------------------------------------------------


class RepoNotFoundError(ModelFormatsError, LookupError):
    def __init__(self, repo_id: str, *, revision: str | None = None, hint: str | None = None) -> None:
        where = f"{repo_id!r}" + (f" at revision {revision!r}" if revision else "")
        fix = hint or "Check the spelling; private repos also need a token (HF_TOKEN or `hf auth login`)."
        super().__init__(f"Repository {where} was not found on the Hub. {fix}")
        self.repo_id = repo_id
        self.revision = revision


class GatedRepoError(ModelFormatsError, PermissionError):
    def __init__(self, repo_id: str) -> None:
        super().__init__(
            f"Repository {repo_id!r} is gated: accept its licence on https://huggingface.co/{repo_id} "
            "and make a token available (HF_TOKEN or `hf auth login`)."
        )
        self.repo_id = repo_id


class RevisionNotFoundError(ModelFormatsError, LookupError):
    def __init__(self, repo_id: str, revision: str) -> None:
        super().__init__(
            f"Revision {revision!r} does not exist in {repo_id!r}. Pass a branch, tag or commit sha "
            "that exists (omit --revision for the default branch)."
        )
        self.repo_id = repo_id
        self.revision = revision


class HubUnavailableError(ModelFormatsError, ConnectionError):
    def __init__(self, repo_id: str, detail: str) -> None:
        super().__init__(
            f"Could not reach the Hub for {repo_id!r} ({detail}). Retry, or plan offline with "
            "--listing FILE (a recording made by `modelformats record`)."
        )
        self.repo_id = repo_id


# --- formats -----------------------------------------------------------------------------------


class RegistrationError(ModelFormatsError, TypeError):
    """A format, engine or rule failed validation when it was registered."""


class DuplicateRegistrationError(RegistrationError):
    def __init__(self, kind: str, name: str) -> None:
        super().__init__(f"A {kind} named {name!r} is already registered; pass replace=True to replace it.")
        self.name = name


class NoWeightsError(ModelFormatsError, LookupError):
    """No registered format recognised any weights in the repo."""

    def __init__(self, repo_id: str, found: Sequence[str]) -> None:
        shown = ", ".join(found[:12]) + (f" (+{len(found) - 12} more)" if len(found) > 12 else "")
        super().__init__(
            f"No model weights found in {repo_id!r}. Files seen: {shown or 'none'}. Expected one of: "
            "*.safetensors, pytorch_model*.bin, *.gguf. If this is a dataset or a Space, it cannot be served."
        )
        self.repo_id = repo_id
        self.found = tuple(found)


class UnservableFormatError(ModelFormatsError, ValueError):
    """The repo is recognised, but no supported engine can serve that format."""

    def __init__(self, repo_id: str, format_name: str, reason: str, instead: str) -> None:
        super().__init__(f"{repo_id!r} holds {format_name} weights, which vLLM cannot serve: {reason}. {instead}")
        self.repo_id = repo_id
        self.format_name = format_name
        self.reason = reason
        self.instead = instead


class IncompleteUploadError(ModelFormatsError, ValueError):
    """An index or shard name promises files that the repo does not have."""

    def __init__(self, repo_id: str, missing: Sequence[str], *, declared_by: str) -> None:
        shown = ", ".join(missing[:6]) + (f" (+{len(missing) - 6} more)" if len(missing) > 6 else "")
        super().__init__(
            f"Incomplete upload in {repo_id!r}: {declared_by} names {len(missing)} file(s) that are not in "
            f"the repo: {shown}. Wait for the upload to finish or pin a --revision that has all shards."
        )
        self.repo_id = repo_id
        self.missing = tuple(missing)


class QuantNotFoundError(ModelFormatsError, LookupError):
    def __init__(self, repo_id: str, wanted: Sequence[str], available: Sequence[str], *, rule: str) -> None:
        want = ", ".join(wanted)
        have = ", ".join(available) or "none"
        super().__init__(
            f"No GGUF file matches quant {want} in {repo_id!r} ({rule}); available: {have}. "
            "Pass --quant or --quant-order."
        )
        self.repo_id = repo_id
        self.wanted = tuple(wanted)
        self.available = tuple(available)


class GGUFHeaderError(ModelFormatsError, ValueError):
    """A GGUF header that is truncated, hostile or not GGUF at all."""

    def __init__(self, source: str, offset: int, problem: str) -> None:
        super().__init__(f"Cannot read GGUF header of {source} at byte {offset}: {problem}.")
        self.source = source
        self.offset = offset
        self.problem = problem


class TokenizerSourceError(ModelFormatsError, LookupError):
    """No repo with tokenizer/config files could be found for a GGUF."""


# --- engines, GPUs -------------------------------------------------------------------------------


class UnsupportedEngineVersionError(ModelFormatsError, ValueError):
    def __init__(self, engine: str, version: str, supported: Sequence[str]) -> None:
        super().__init__(
            f"{engine} {version} has no verified profile; verified: {', '.join(supported)}. "
            f"Pass --{engine}-version with one of those, or add a profile (docs/compatibility.md)."
        )
        self.engine = engine
        self.version = version


class EngineCannotLoadError(ModelFormatsError, ValueError):
    """The requested engine cannot load the requested weights (and no route was allowed)."""

    def __init__(self, message: str, *, reasons: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.reasons = tuple(reasons)


class UnknownGpuError(ModelFormatsError, LookupError):
    def __init__(self, name: str, known: Sequence[str]) -> None:
        super().__init__(f"Unknown GPU type {name!r}; Modal offers: {', '.join(known)}.")
        self.name = name
        self.known = tuple(known)


class NoFittingGpuError(ModelFormatsError, ValueError):
    """Nothing in the catalogue holds the memory estimate."""

    def __init__(
        self,
        message: str,
        *,
        estimate_bytes: int | None = None,
        biggest: str | None = None,
        shortfall_bytes: int | None = None,
        fixes: Sequence[str] = (),
    ) -> None:
        super().__init__(message)
        self.estimate_bytes = estimate_bytes
        self.biggest = biggest
        self.shortfall_bytes = shortfall_bytes
        self.fixes = tuple(fixes)


# --- downloads ----------------------------------------------------------------------------------


class PartialDownloadError(ModelFormatsError, OSError):
    """A download or a join of `.partXofY` pieces did not produce the expected bytes."""


class ChecksumMismatchError(PartialDownloadError):
    """Downloaded bytes whose hash is not the one the Hub records; they were discarded."""

    def __init__(self, repo_id: str, path: str, *, algorithm: str, expected: str, actual: str, dest: str) -> None:
        super().__init__(
            f"{repo_id}/{path}: the downloaded bytes hash to {algorithm} {actual}, but the Hub records "
            f"{expected}. They were discarded: nothing was written to {dest}. Run the download again; if it "
            "fails the same way, something between you and the Hub alters the data (a proxy, a mirror given by "
            "--endpoint or HF_ENDPOINT): fetch from https://huggingface.co directly, or report the repo."
        )
        self.repo_id = repo_id
        self.path = path
        self.algorithm = algorithm
        self.expected = expected
        self.actual = actual


class LocalFileError(ModelFormatsError, OSError):
    """Reading or writing a file on this machine failed (a full disk, permissions, a name too long)."""

    def __init__(self, message: str, *, path: str, errno_: int | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.errno_ = errno_


# --- a running server (smoke, bench) -------------------------------------------------------------


class ServerAuthError(ModelFormatsError, PermissionError):
    """A running server refused our requests with 401/403: the API key is missing or wrong."""

    def __init__(self, base_url: str, status: int, detail: str, *, key_given: bool) -> None:
        fix = (
            "the key was refused; pass the key the server was started with (--api-key KEY or OPENAI_API_KEY)"
            if key_given
            else "the server needs an API key; pass --api-key KEY (or set OPENAI_API_KEY)"
        )
        super().__init__(f"Authentication failed at {base_url}: HTTP {status} ({detail}). Fix: {fix}.")
        self.base_url = base_url
        self.status = status
        self.key_given = key_given


# --- the vLLM plugin (modelformats.vllm_plugin, raised inside vLLM) -----------------------------


class GGUFLayoutMismatchError(ModelFormatsError, ValueError):
    """A GGUF's tensors do not fit the HF config vLLM was given, so some weights would stay unloaded."""

    def __init__(self, path: str, problem: str, fix: str) -> None:
        super().__init__(f"Cannot load {path} on vLLM: {problem}. {fix}")
        self.path = path
        self.problem = problem
        self.fix = fix


# --- GGUF -> safetensors conversion (modelformats convert) ---------------------------------------


class ConversionError(ModelFormatsError, ValueError):
    """A GGUF that `modelformats convert` cannot turn into a faithful HF checkpoint, or a bad target."""

    def __init__(self, source: str, problem: str, fix: str) -> None:
        super().__init__(f"Cannot convert {source}: {problem}. Fix: {fix}")
        self.source = source
        self.problem = problem
        self.fix = fix


# Errors that mean "this repo's listing is not available here" (missing, gated, unreachable, bad revision):
# for a *related* repo (a GGUF's base model) they lower what a plan can know, they do not stop it.
LISTING_UNAVAILABLE: tuple[type[ModelFormatsError], ...] = (
    RepoNotFoundError,
    GatedRepoError,
    HubUnavailableError,
    RevisionNotFoundError,
)
