"""`modelformats` command line: thin — parse arguments, call the library, print a table or JSON.

User errors (every `ModelFormatsError`) print `error: <message>` on stderr and exit 2; no traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from modelformats.errors import InvalidRequestError, ModelFormatsError
from modelformats.listing import ListingSource, dump_listing
from modelformats.sources.recorded import RecordedSource

__all__ = ["main"]

EXIT_USER_ERROR = 2


def _csv(value: str) -> tuple[str, ...]:
    items = tuple(v.strip() for v in value.split(",") if v.strip())
    if not items:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {value!r}")
    return items


def _positive_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}") from None
    if n <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}")
    return n


def _add_plan_arguments(p: argparse.ArgumentParser, *, download_root: bool = True) -> None:
    from modelformats.engines.vllm import DEFAULT_VLLM_VERSION, VERIFIED_VLLM_VERSIONS
    from modelformats.gpu import POLICIES
    from modelformats.planner import ENGINE_CHOICES, FORMAT_CHOICES

    p.add_argument(
        "repo",
        nargs="?",
        help="owner/name on the Hub, or a local model directory (./dir, /path/to/dir); omitted: the embedded "
        "offline default (the target GGUF repo)",
    )
    p.add_argument(
        "--listing",
        action="append",
        metavar="FILE",
        help="plan from recorded listing JSON (repeatable; a folder reads every *.json) instead of the Hub",
    )
    p.add_argument("--revision", help="branch, tag or commit to plan (default: the default branch)")
    p.add_argument("--engine", choices=ENGINE_CHOICES, default="auto")
    p.add_argument("--format", choices=FORMAT_CHOICES, default="auto", dest="format_choice")
    p.add_argument(
        "--vllm-version",
        help=f"target vLLM version (default: {DEFAULT_VLLM_VERSION}; verified: {', '.join(VERIFIED_VLLM_VERSIONS)})",
    )
    p.add_argument("--policy", choices=POLICIES, default="seed", help="GPU policy (default: seed)")
    p.add_argument("--quant", help="GGUF quant to pick exactly, e.g. Q5_K_M (case-insensitive)")
    p.add_argument("--quant-order", type=_csv, help="GGUF preference order, e.g. Q8_0,Q6_K,Q5_K_M,Q4_K_M")
    p.add_argument("--tokenizer-from", metavar="REPO", help="repo to take tokenizer/config files from (GGUF)")
    p.add_argument("--gpu", help="force a GPU, e.g. H100 or A100-80GB:2")
    p.add_argument("--max-model-len", type=_positive_int)
    p.add_argument("--max-num-seqs", type=_positive_int)
    p.add_argument(
        "--experts-per-token",
        type=_positive_int,
        metavar="N",
        help="MoE models: route each token to N experts instead of the model's default",
    )
    p.add_argument(
        "--pin-kv-cache",
        action="store_true",
        help="vLLM: allocate exactly the estimated KV cache (--kv-cache-memory-bytes) instead of what "
        "--gpu-memory-utilization leaves",
    )
    if download_root:  # `download` has --dir instead: the plan's paths point where the files land
        p.add_argument(
            "--download-root", default="/models", help="where the engine will find the files (default /models)"
        )
    p.add_argument(
        "--disable",
        type=_csv,
        default=(),
        help="formats to switch off, e.g. gguf (also MODELFORMATS_DISABLE)",
    )
    _add_endpoint(p)


def _add_explain(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--explain", action="store_true", help=what)


def _add_endpoint(p: argparse.ArgumentParser) -> None:
    p.add_argument("--endpoint", help="a Hub mirror's URL (default: huggingface_hub's, i.e. HF_ENDPOINT)")


def _local_dir(repo: str | None) -> Path | None:
    """The directory `repo` names, when it names one: a path written as one (/, ./, ../, ~) or a name that
    cannot be a repo id (no '/'). 'owner/name' always means the Hub; write './owner/name' for a folder."""
    if repo is None:
        return None
    explicit = repo.startswith(("/", "./", "../", "~")) or repo in (".", "..")
    if not explicit and repo.count("/") == 1:
        return None
    path = Path(repo).expanduser()
    if path.is_dir():
        return path
    if explicit:
        what = "is not a directory" if path.exists() else "does not exist"
        raise InvalidRequestError(
            f"{repo!r} {what}. Name a model directory (a local snapshot of a repo), or a Hub repo as 'owner/name'."
        )
    return None


def _local_repo_id(path: Path) -> str:
    """A repo id for a local directory: 'local/<its name>', made valid for huggingface_hub's validator."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", path.resolve().name)
    name = re.sub(r"-{2,}", "-", re.sub(r"\.{2,}", ".", name)).strip("-.")[:96].strip("-.")
    return f"local/{name or 'model'}"


def _source(args: argparse.Namespace) -> ListingSource | None:
    if args.listing:
        return RecordedSource.from_paths(args.listing)
    folder = _local_dir(args.repo)
    if folder is not None:
        from modelformats.sources.local import LocalDirSource

        args.repo = _local_repo_id(folder)
        args.local_dir = folder
        return LocalDirSource(folder, repo_id=args.repo)
    if args.repo is None:
        return None  # the embedded offline default
    from modelformats.sources.hub import HubSource

    return HubSource(endpoint=args.endpoint)


def _repo_for(args: argparse.Namespace, source: ListingSource | None) -> str | None:
    repo: str | None = args.repo
    if repo is not None or source is None:
        return repo
    # With recordings and no repo named: a single recording names itself.
    assert isinstance(source, RecordedSource)
    ids = source.repo_ids
    if len(ids) == 1:
        return ids[0]
    if not ids:
        raise InvalidRequestError(
            f"--listing {', '.join(args.listing)} holds no *.json listing; pass a listing file or a folder of "
            "them (e.g. tests/data/listings)."
        )
    raise InvalidRequestError(f"--listing holds {len(ids)} repos; name the one to plan: {', '.join(ids)}.")


def _make_plan(args: argparse.Namespace) -> Any:
    from modelformats.planner import PlanOptions, plan

    source = _source(args)
    options = PlanOptions(
        revision=args.revision,
        engine=args.engine,
        format=args.format_choice,
        vllm_version=args.vllm_version,
        policy=args.policy,
        quant=args.quant,
        quant_order=args.quant_order,
        tokenizer_from=args.tokenizer_from,
        gpu=args.gpu,
        max_model_len=args.max_model_len,
        max_num_seqs=args.max_num_seqs,
        experts_per_token=args.experts_per_token,
        pin_kv_cache=args.pin_kv_cache,
        download_root=args.download_root,
        disable=tuple(args.disable),
    )
    return plan(_repo_for(args, source), source=source, options=options)


def _emit(text: str, *, data: Any = None, styled: bool = False) -> None:
    """Print a result to stdout and flush it here, so a full disk or a closed pipe is reported, not lost at exit.

    Human text passes `data` (what it was rendered from): the strings in it that hold control characters
    (file names, header values) are shown escaped, and no other control character reaches the terminal.
    """
    from modelformats.terminal import escape_values, outside_strings

    if data is not None:
        text = escape_values(text, outside_strings(data), styled=styled)
    try:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        raise
    except OSError as exc:
        from modelformats.localio import local_file_error

        raise local_file_error(exc, action="write the output to", path="standard output") from None


def _cmd_plan(args: argparse.Namespace) -> int:
    result = _make_plan(args)
    if args.json:
        _emit(json.dumps(result.to_dict(), indent=2))
    else:
        from modelformats.render import Style, render_plan, use_colour

        colour = use_colour(sys.stdout)
        _emit(
            render_plan(result, explain=args.explain, style=Style(colour=colour)), data=result.to_dict(), styled=colour
        )
    return 0


def _cmd_record(args: argparse.Namespace) -> int:
    from modelformats.localio import local_file_error
    from modelformats.sources.hub import HubSource

    _check_output_dir(args.output)  # before the Hub is asked: a typo in -o costs no download
    from modelformats.listing import DOCUMENT_NAMES

    listing = HubSource(endpoint=args.endpoint, documents=DOCUMENT_NAMES).fetch(args.repo, revision=args.revision)
    try:
        dump_listing(listing, args.output)
    except OSError as exc:
        raise local_file_error(exc, action="write the listing to", path=args.output) from None
    _emit(f"recorded {listing.repo_id}@{listing.revision} ({len(listing.files)} files) to {args.output}")
    return 0


def _check_output_dir(output: str) -> None:
    import errno
    from pathlib import Path

    from modelformats.localio import local_file_error

    folder = Path(output).expanduser().parent
    if folder.is_dir() and os.access(folder, os.W_OK):
        return
    code = errno.ENOTDIR if folder.exists() else errno.ENOENT
    if folder.is_dir():
        code = errno.EACCES
    raise local_file_error(OSError(code, os.strerror(code)), action="write the listing to", path=output)


def _cmd_download(args: argparse.Namespace) -> int:
    from modelformats.download import download

    # A plan file's JSON as written (download checks its download section and writes it as plan.json), else
    # the typed plan made here.
    plan = _read_plan(args) if args.plan_file else None
    if plan is None:
        if not args.dir:
            raise InvalidRequestError("download needs --dir DIR (where the files go), or --plan FILE.")
        args.download_root = str(_absolute(args.dir))
        plan = _make_plan(args)
    local = getattr(args, "local_dir", None)
    report = download(
        plan,
        dry_run=args.dry_run,
        endpoint=args.endpoint,
        progress=_progress,
        local_sources={args.repo: Path(local)} if local is not None else None,
    )
    if args.json:
        _emit(json.dumps(report.to_dict(), indent=2))
    else:
        from modelformats.render import render_download

        _emit(render_download(report, explain=args.explain), data=report.to_dict())
    return 0


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _read_plan(args: argparse.Namespace) -> dict[str, Any]:
    """A plan written by `modelformats plan --json`, checked; --dir may only repeat its download root."""

    if args.repo or args.listing:
        raise InvalidRequestError("--plan FILE downloads that plan; do not also name a repo or --listing.")
    from modelformats.validate import read_plan_file

    data, parsed = read_plan_file(args.plan_file)
    root = parsed.download_root
    if args.dir and _absolute(args.dir) != root:
        raise InvalidRequestError(
            f"--dir {args.dir!r} is not the plan's download root {root!r}, where its engine command looks for "
            f"the files. Omit --dir, or re-plan with --download-root {_absolute(args.dir)}."
        )
    return data


def _absolute(path: str) -> str:
    from pathlib import Path

    return str(Path(path).expanduser().resolve())


def _cmd_gpus(args: argparse.Namespace) -> int:
    from modelformats.gpu import catalogue_dicts
    from modelformats.render import render_gpus

    _emit(json.dumps(catalogue_dicts(), indent=2) if args.json else render_gpus(explain=args.explain))
    return 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    from modelformats.gguf.header import read_header

    header = read_header(_gguf_to_inspect(args.file))
    data = header.to_dict()
    if args.json:
        _emit(json.dumps(data, indent=2, default=str))
    else:
        from modelformats.render import render_gguf_header

        _emit(render_gguf_header(data), data=data)
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    try:
        from modelformats.convert import ConvertProgress, convert_gguf
    except ImportError as exc:  # numpy / gguf: the `gguf` extra
        from modelformats.errors import ConversionError

        raise ConversionError(
            args.file, f"the {exc.name or 'gguf'} package is not installed", "pip install 'modelformats[gguf]'"
        ) from None

    shown = [-1]

    def progress(step: ConvertProgress) -> None:
        percent = 100 * step.done_bytes // max(1, step.total_bytes)
        if percent // 5 != shown[0] // 5 or step.done_tensors == step.total_tensors:
            shown[0] = percent
            print(
                f"converting: {percent:3d}% ({step.done_tensors}/{step.total_tensors} tensors, "
                f"{step.done_bytes / 1e9:.2f}/{step.total_bytes / 1e9:.2f} GB)",
                file=sys.stderr,
            )

    result = convert_gguf(
        Path(args.file).expanduser(),
        Path(args.out).expanduser(),
        dtype=args.dtype,
        base=Path(args.base).expanduser() if args.base else None,
        max_shard_bytes=int(args.shard_size * 1024**3),
        progress=None if args.quiet else progress,
    )
    data = result.to_dict()
    if args.json:
        _emit(json.dumps(data, indent=2))
    else:
        _emit(
            f"wrote {result.out}: {result.hf_architecture}, {result.tensors} tensors in {result.shards} "
            f"shard(s), {result.dtype}, {result.bytes_written / 1e9:.2f} GB\n"
            f"tokenizer from {'--base' if result.tokenizer == 'base' else 'the GGUF metadata'}"
            + (", generation_config.json written" if result.generation_config else ""),
            data=data,
        )
    return 0


def _positive_float(value: str) -> float:
    try:
        n = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value!r}") from None
    if not n > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value!r}")
    return n


def _gguf_to_inspect(name: str) -> Path:
    """The file itself; for a directory, the GGUF whose header stands for it (the smallest model file)."""
    path = Path(name).expanduser()
    if not path.is_dir():
        return path
    from modelformats.sources.documents import representative_gguf
    from modelformats.sources.local import LocalDirSource

    listing = LocalDirSource(path, repo_id=_local_repo_id(path), read_gguf_headers=False).fetch(_local_repo_id(path))
    chosen = representative_gguf(listing.files)
    if chosen is None:
        raise InvalidRequestError(f"{name!r} holds no GGUF model file; name a .gguf file or a folder with one.")
    return path / chosen


def _parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser. `command`: the subcommand being run; only its arguments are built when it is
    `plan` or `download` (they load the planner, which needs the project's dependencies), so `smoke` and
    `bench` run with the standard library alone, as in a serving image. None: every subcommand."""
    plan_args = {"plan", "download"} if command is None else {command}
    parser = argparse.ArgumentParser(
        prog="modelformats",
        description="What is this Hugging Face repo, which files to fetch, how to serve it, on which GPU.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("plan", help="print the deployment plan for a repo")
    if "plan" in plan_args:
        _add_plan_arguments(p)
    p.add_argument("--json", action="store_true", help="print the plan as one JSON object")
    _add_explain(p, "also print every file, the memory sources and formulas, the evidence and full reasoning")
    p.set_defaults(func=_cmd_plan)

    d = sub.add_parser("download", help="fetch exactly the plan's files (and join .partXofY splits)")
    if "download" in plan_args:
        _add_plan_arguments(d, download_root=False)
    d.add_argument("--dir", help="download directory (the plan's paths point here); required unless --plan")
    d.add_argument("--plan", dest="plan_file", metavar="FILE", help="download a plan from `plan --json` as it is")
    d.add_argument("--dry-run", action="store_true", help="list what would be fetched; no network")
    d.add_argument("--json", action="store_true", help="print the report as JSON")
    _add_explain(d, "also list the local paths and the standard names fetched only if present")
    d.set_defaults(func=_cmd_download)

    r = sub.add_parser("record", help="record a live repo's listing as modelformats-listing/1 JSON")
    r.add_argument("repo")
    r.add_argument("--revision")
    r.add_argument("-o", "--output", required=True)
    _add_endpoint(r)
    r.set_defaults(func=_cmd_record)

    g = sub.add_parser("gpus", help="list the GPU catalogue (Modal's GPU types, memory, prices)")
    g.add_argument("--json", action="store_true")
    _add_explain(g, "also print the aliases and the price sources")
    g.set_defaults(func=_cmd_gpus)

    i = sub.add_parser("inspect", help="read a local GGUF file's header (bounded; no tensor data)")
    i.add_argument("file")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=_cmd_inspect)

    c = sub.add_parser("convert", help="convert a local GGUF into a Hugging Face safetensors checkpoint")
    c.add_argument("file", help="the .gguf file (for a split GGUF, any part; the others must sit beside it)")
    c.add_argument("--out", required=True, help="the checkpoint directory to create (must not exist or be empty)")
    c.add_argument("--dtype", choices=("bfloat16", "float16", "float32"), default="bfloat16")
    c.add_argument(
        "--base",
        metavar="DIR",
        help="the original model's folder: config.json and tokenizer are taken from it (checked against "
        "the GGUF); default: both rebuilt from the GGUF's metadata",
    )
    c.add_argument("--shard-size", type=_positive_float, default=5.0, metavar="GIB", help="max shard size (5)")
    c.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    c.add_argument("--json", action="store_true", help="print the result as JSON")
    c.set_defaults(func=_cmd_convert)

    from modelformats.smoke import add_smoke_parser

    add_smoke_parser(sub)
    from modelformats.bench import add_bench_parser

    add_bench_parser(sub)
    return parser


def _escaped(exc: BaseException) -> str:
    from modelformats.terminal import escape_controls

    return escape_controls(str(exc))


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is (like Ctrl-C), so partial files are closed and kept."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise _Terminated


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    # The first word that is not an option is the subcommand (the top level takes no option with a value).
    command = next((w for w in words if not w.startswith("-")), "")
    parser = _parser(command)
    args = parser.parse_args(words)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return EXIT_USER_ERROR
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return _run(args)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run(args: argparse.Namespace) -> int:
    try:
        code: int = args.func(args)
    except ModelFormatsError as exc:
        print(f"error: {_escaped(exc)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except ExceptionGroup as group:
        problems = [e for e in group.exceptions if isinstance(e, ModelFormatsError)]
        if len(problems) != len(group.exceptions):
            raise
        print(f"error: {group.message}:", file=sys.stderr)
        for e in problems:
            print(f"  - {_escaped(e)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt as exc:
        notes = " ".join(getattr(exc, "__notes__", ()))
        print(f"interrupted{': ' + notes if notes else ''}", file=sys.stderr)
        # The shell's convention: 128 + the signal's number.
        return 128 + (signal.SIGTERM if isinstance(exc, _Terminated) else signal.SIGINT)
    except BrokenPipeError:
        # `modelformats gpus | head`: the reader left; point stdout at /dev/null so the exit flush is quiet.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    return code


if __name__ == "__main__":
    raise SystemExit(main())
