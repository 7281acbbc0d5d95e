"""`modelformats smoke`: arguments, prompts file, exit code."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from modelformats.errors import InvalidRequestError
from modelformats.smoke.constants import (
    DEFAULT_HEALTH_TIMEOUT_S,
    DEFAULT_MAX_TOKENS,
    DEFAULT_PROMPTS,
    DEFAULT_TIMEOUT_S,
)
from modelformats.smoke.render import render_report
from modelformats.smoke.run import run_smoke


def load_prompts(path: str | Path) -> tuple[str, ...]:
    """Prompts from a file: a `.json` list of strings, else one prompt per non-blank line (`#` comments)."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidRequestError(
            f"Cannot read prompts file {str(file)!r}: {exc}. Pass a readable text file."
        ) from None
    if file.suffix == ".json":
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise InvalidRequestError(
                f'Prompts file {str(file)!r} is not valid JSON ({exc}); write a list of strings, e.g. ["Hi"].'
            ) from None
        if not isinstance(data, list) or not all(isinstance(p, str) and p.strip() for p in data):
            raise InvalidRequestError(
                f'Prompts file {str(file)!r} must hold a JSON list of non-empty strings, e.g. ["Hello!"].'
            )
        prompts = tuple(data)
    else:
        stripped = (line.strip() for line in text.splitlines())
        prompts = tuple(line for line in stripped if line and not line.startswith("#"))
    if not prompts:
        raise InvalidRequestError(f"Prompts file {str(file)!r} holds no prompts; write one prompt per line.")
    return prompts


def add_api_key_argument(parser: argparse.ArgumentParser) -> None:
    """`--api-key`, defaulting to $OPENAI_API_KEY (what OpenAI clients read)."""
    parser.add_argument(
        "--api-key",
        default=os.environ.get("OPENAI_API_KEY"),
        metavar="KEY",
        help="bearer token for a server started with --api-key (default: $OPENAI_API_KEY)",
    )


def add_smoke_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `modelformats smoke` on the CLI's subparsers (handler in `func`, returns the exit code)."""
    parser = subparsers.add_parser(
        "smoke",
        help="smoke-test and time a running OpenAI-compatible server (vLLM, llama.cpp)",
        description=(
            "Stream chat completions from a running server and report time to first token, latency, "
            "tokens/s and errors, plus the server's /metrics when it has them. Exit code 0 only when the "
            "server is ready and every request works."
        ),
    )
    parser.add_argument(
        "--base-url", required=True, help="server root, e.g. http://127.0.0.1:8000 (a /v1 suffix is ok)"
    )
    parser.add_argument("--model", help="model name to request (default: the first id of /v1/models)")
    add_api_key_argument(parser)
    parser.add_argument("--prompts", metavar="FILE", help="one prompt per line, or a .json list of strings")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT_S, metavar="S",
        help=f"seconds allowed per request (default {DEFAULT_TIMEOUT_S:g})",
    )  # fmt: skip
    parser.add_argument(
        "--max-tokens", type=int, default=DEFAULT_MAX_TOKENS, metavar="N",
        help=f"max tokens per answer (default {DEFAULT_MAX_TOKENS})",
    )  # fmt: skip
    parser.add_argument(
        "--started-at", type=float, metavar="EPOCH",
        help="when the server was started (Unix seconds, e.g. $(date +%%s)); reports its load time",
    )  # fmt: skip
    parser.add_argument(
        "--health-timeout", type=float, default=DEFAULT_HEALTH_TIMEOUT_S, metavar="S",
        help=f"seconds to wait for /health to answer 200 (default {DEFAULT_HEALTH_TIMEOUT_S:g})",
    )  # fmt: skip
    parser.set_defaults(func=_smoke_command)


def _smoke_command(args: argparse.Namespace) -> int:
    try:
        prompts = load_prompts(args.prompts) if args.prompts else DEFAULT_PROMPTS
        report = run_smoke(
            args.base_url,
            model=args.model,
            prompts=prompts,
            timeout=args.timeout,
            max_tokens=args.max_tokens,
            started_at=args.started_at,
            health_timeout=args.health_timeout,
            api_key=args.api_key,
        )
    except InvalidRequestError as exc:
        print(f"error: {exc}", file=sys.stderr)  # noqa: T201 - the CLI reports on stderr
        return 2
    print(json.dumps(report.to_dict(), indent=2) if args.json else render_report(report))  # noqa: T201 - CLI output
    return report.exit_code
