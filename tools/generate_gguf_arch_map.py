"""Generate src/modelformats/data/gguf_arch_map.json: which GGUF architecture llama.cpp writes per HF model.

Two sources, both read here, never hand-kept:
- llama.cpp's converter (`conversion/*.py` beside `convert_hf_to_gguf.py`, as vendored in the
  llama-cpp-python sdist): `TEXT_MODEL_MAP` (HF architecture -> module), the classes registered for
  each name with `@ModelBase.register(...)`, their `model_arch = gguf.MODEL_ARCH.X` (inherited through
  base classes) and `undo_permute`, and gguf-py's `MODEL_ARCH_NAMES` (X -> "llama"). Parsed with `ast`;
  the converter is never imported.
- transformers' `MODEL_FOR_CAUSAL_LM_MAPPING_NAMES` (model_type -> HF architecture), imported.

Run in the vLLM 0.33 environment (`nox -s gguf_arch_map`); `--check` exits 1 if the file is stale.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

OUTPUT = Path(__file__).parents[1] / "src" / "modelformats" / "data" / "gguf_arch_map.json"
SCHEMA = "modelformats-gguf-arch-map/1"
MMPROJ = "MMPROJ"


@dataclass
class ClassInfo:
    name: str
    module: str
    bases: list[str]
    registered: list[str] = field(default_factory=list)
    model_arch: str | None = None  # the MODEL_ARCH member, e.g. "LLAMA"
    undo_permute: bool | None = None


def _attr_tail(node: ast.expr) -> str | None:
    """`gguf.MODEL_ARCH.LLAMA` -> 'LLAMA'; `LlamaModel` -> 'LlamaModel'."""
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return None


def _registered_names(decorator: ast.expr) -> list[str]:
    if (
        isinstance(decorator, ast.Call)
        and isinstance(decorator.func, ast.Attribute)
        and decorator.func.attr == "register"
        and _attr_tail(decorator.func.value) == "ModelBase"
    ):
        return [arg.value for arg in decorator.args if isinstance(arg, ast.Constant) and isinstance(arg.value, str)]
    return []


def parse_module(path: Path) -> tuple[list[ClassInfo], dict[str, str]]:
    """The module's classes, and imported class name -> source module (`from .llama import LlamaModel`)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imports: dict[str, str] = {}
    classes: list[ClassInfo] = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
            for alias in node.names:
                imports[alias.asname or alias.name] = node.module
        if not isinstance(node, ast.ClassDef):
            continue
        info = ClassInfo(
            name=node.name, module=path.stem, bases=[b for b in map(_attr_tail, node.bases) if b is not None]
        )
        for decorator in node.decorator_list:
            info.registered += _registered_names(decorator)
        for statement in node.body:
            if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
                target = _attr_tail(statement.targets[0])
                if target == "model_arch":
                    info.model_arch = _attr_tail(statement.value)
                elif target == "undo_permute" and isinstance(statement.value, ast.Constant):
                    info.undo_permute = bool(statement.value.value)
        classes.append(info)
    return classes, imports


def parse_text_model_map(init: Path) -> dict[str, str]:
    tree = ast.parse(init.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and _attr_tail(node.target) == "TEXT_MODEL_MAP":
            return ast.literal_eval(node.value)  # type: ignore[arg-type]
    raise SystemExit(f"no TEXT_MODEL_MAP in {init}")


def parse_arch_names(constants: Path) -> dict[str, str]:
    tree = ast.parse(constants.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and _attr_tail(node.target) == "MODEL_ARCH_NAMES":
            assert isinstance(node.value, ast.Dict)
            return {
                str(_attr_tail(key)): value.value
                for key, value in zip(node.value.keys, node.value.values, strict=True)
                if key is not None and isinstance(value, ast.Constant)
            }
    raise SystemExit(f"no MODEL_ARCH_NAMES in {constants}")


class Converter:
    def __init__(self, root: Path) -> None:
        self.classes: dict[tuple[str, str], ClassInfo] = {}
        self.imports: dict[str, dict[str, str]] = {}
        for path in sorted((root / "conversion").glob("*.py")):
            classes, imports = parse_module(path)
            self.imports[path.stem] = imports
            for info in classes:
                self.classes[(path.stem, info.name)] = info
        self.text_model_map = parse_text_model_map(root / "conversion" / "__init__.py")
        self.arch_names = parse_arch_names(root / "gguf-py" / "gguf" / "constants.py")

    def resolve(self, module: str, name: str) -> ClassInfo | None:
        if (module, name) in self.classes:
            return self.classes[(module, name)]
        source = self.imports.get(module, {}).get(name)
        if source is not None and (source, name) in self.classes:
            return self.classes[(source, name)]
        return None

    def inherited(self, info: ClassInfo, attribute: str) -> object:
        """The class attribute as Python's MRO would find it (depth-first is enough for this tree)."""
        value = getattr(info, attribute)
        if value is not None:
            return value
        for base in info.bases:
            parent = self.resolve(info.module, base)
            if parent is not None and (found := self.inherited(parent, attribute)) is not None:
                return found
        return None

    def architectures(self) -> dict[str, dict[str, object]]:
        """HF architecture -> the text class get_model_class() returns (last registration in its module)."""
        out: dict[str, dict[str, object]] = {}
        for hf_arch, module in sorted(self.text_model_map.items()):
            chosen: ClassInfo | None = None
            for (class_module, _), info in self.classes.items():
                if (
                    class_module == module
                    and hf_arch in info.registered
                    and self.inherited(info, "model_arch") != MMPROJ
                ):
                    chosen = info  # dict order is source order: the last one wins, as in ModelBase.register
            if chosen is None:
                # Listed in TEXT_MODEL_MAP but only an mmproj class registers it: no text GGUF exists.
                continue
            member = self.inherited(chosen, "model_arch")
            out[hf_arch] = {
                "gguf_architecture": self.arch_names[str(member)],
                "converter_class": chosen.name,
                "undo_permute": self.inherited(chosen, "undo_permute"),
            }
        return out


def build(converter_dir: Path) -> dict[str, object]:
    from transformers import __version__ as transformers_version
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    converter = Converter(converter_dir)
    source = json.loads((converter_dir / "SOURCE.json").read_text())
    gguf_py = (converter_dir / "gguf-py" / "pyproject.toml").read_text()
    gguf_version = next(line.split('"')[1] for line in gguf_py.splitlines() if line.startswith("version"))
    return {
        "schema": SCHEMA,
        "sources": {
            "llama.cpp converter": f"{source['sdist']} vendor/llama.cpp (sha256 {source['sha256']})",
            "gguf-py": f"{gguf_version} (vendored beside the converter)",
            "transformers": transformers_version,
        },
        "architectures": converter.architectures(),
        "model_types": {str(k): str(v) for k, v in sorted(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.items())},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--converter-dir", type=Path, required=True)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--check", action="store_true", help="exit 1 if --output differs from a fresh build")
    args = parser.parse_args()
    text = json.dumps(build(args.converter_dir), indent=1, sort_keys=False) + "\n"
    if args.check:
        current = args.output.read_text() if args.output.exists() else ""
        if current != text:
            print(f"{args.output} is stale: regenerate it with `nox -s gguf_arch_map`", file=sys.stderr)
            raise SystemExit(1)
        print(f"{args.output} is up to date")
        return
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
