"""Generate `src/modelformats/gguf/_vocab.py` from the installed `gguf` package (llama.cpp's gguf-py).

The core must plan without `gguf` installed, so the quant vocabulary it needs — tensor types with
their block sizes, file-type names and metadata value types — is copied here, from `gguf.constants`,
into a generated module. `tests/gguf/test_vocab.py` fails when the committed module differs from
what the installed gguf would generate.

Usage: python tools/sync_gguf_vocab.py [--check]
"""

from __future__ import annotations

import argparse
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "src" / "modelformats" / "gguf" / "_vocab.py"

# LlamaFileType members that name no quantization (1024 = "guessed" by llama.cpp's loader).
_NOT_QUANTS = ("GUESSED",)
# LlamaFileType names carry these prefixes; file names carry the rest (MOSTLY_Q4_K_M -> Q4_K_M).
_FILE_TYPE_PREFIXES = ("MOSTLY_", "ALL_")


def render() -> str:
    """The module text for the installed gguf package."""
    # gguf is an optional dependency, needed only to regenerate.
    from gguf.constants import (
        GGML_QUANT_SIZES,
        GGUF_VERSION,
        GGMLQuantizationType,
        GGUFValueType,
        LlamaFileType,
    )

    version = metadata.version("gguf")
    lines = [
        f'"""The GGUF quant vocabulary of gguf {version} (llama.cpp\'s gguf-py): generated, do not edit.',
        "",
        "Written by tools/sync_gguf_vocab.py from `gguf.constants`; re-run it after upgrading gguf.",
        "tests/gguf/test_vocab.py fails when this file differs from what the installed gguf generates.",
        '"""',
        "",
        "from __future__ import annotations",
        "",
        "from collections.abc import Mapping",
        "",
        f'GGUF_PACKAGE_VERSION = "{version}"',
        f"GGUF_FORMAT_VERSION = {int(GGUF_VERSION)}",
        "",
        "# GGMLQuantizationType name -> (id, weights per block, bytes per block), from GGML_QUANT_SIZES.",
        "GGML_TYPES: Mapping[str, tuple[int, int, int]] = {",
    ]
    for t in GGMLQuantizationType:
        block, size = GGML_QUANT_SIZES[t]
        lines.append(f'    "{t.name}": ({int(t.value)}, {block}, {size}),')
    lines += [
        "}",
        "",
        "# LlamaFileType name without its MOSTLY_/ALL_ prefix -> id (the names quantizers put in files).",
        "FILE_TYPES: Mapping[str, int] = {",
    ]
    for f in LlamaFileType:
        if f.name in _NOT_QUANTS:
            continue
        name = f.name
        for prefix in _FILE_TYPE_PREFIXES:
            name = name.removeprefix(prefix)
        lines.append(f'    "{name}": {int(f.value)},')
    lines += [
        "}",
        "",
        "# GGUFValueType name -> id (the types of metadata values in a GGUF header).",
        "VALUE_TYPES: Mapping[str, int] = {",
    ]
    for v in GGUFValueType:
        lines.append(f'    "{v.name}": {int(v.value)},')
    lines += ["}", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed module is out of date")
    args = parser.parse_args(argv)
    text = render()
    current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
    if args.check:
        if current != text:
            print(f"{TARGET.relative_to(ROOT)} is out of date; run: python tools/sync_gguf_vocab.py")
            return 1
        print(f"{TARGET.relative_to(ROOT)} matches the installed gguf")
        return 0
    TARGET.write_text(text, encoding="utf-8")
    print(f"wrote {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
