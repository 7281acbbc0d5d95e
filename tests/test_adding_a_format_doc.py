"""docs/adding-a-format.md tells the truth: its example plans and serves, the files it says a format
touches are the files that exist, and what it says no format needs (planner, engines, GPU policy)
holds no comparison with a format's name."""

from __future__ import annotations

import ast
import re
import types
from pathlib import Path

import modelformats
from modelformats import DEFAULT_REPO, FormatRegistry, PlanOptions, plan
from modelformats.listing import load_listing
from modelformats.registry import builtin_formats
from modelformats.sources.recorded import RecordedSource, default_source

ROOT = Path(__file__).parents[1]
DOC = (ROOT / "docs" / "adding-a-format.md").read_text()
SRC = Path(modelformats.__file__).parent
LISTING = ROOT / "tests" / "data" / "thirdparty" / "example__Llama-3.1-8B-Instruct-Quark.json"


def _section(title: str) -> str:
    start = DOC.index(f"## {title}")
    end = DOC.find("\n## ", start + 1)
    return DOC[start : end if end != -1 else None]


def test_the_example_format_plans_with_its_quantization():
    block = re.search(r"```python\n(.*?)```", _section("Example: a third-party format"), re.S)
    assert block is not None
    module = types.ModuleType("doc_example")
    exec(compile(block.group(1), "docs/adding-a-format.md", "exec"), module.__dict__)
    registry = FormatRegistry(builtin_formats())
    registry.register(module.QuarkFormat())
    source = RecordedSource([load_listing(LISTING)])
    p = plan("example/Llama-3.1-8B-Instruct-Quark", source=source, registry=registry)
    assert p.format == "quark"
    assert p.engine.argv[3:5] == ("--quantization", "quark")


def test_the_files_it_names_exist():
    tables = _section("Files you touch")
    for named in re.findall(r"`((?:src|tests|tools|docs)/[^`<>]+?)`", tables):
        path = named.split(" ")[0].split("::")[0]
        assert any(ROOT.glob(path)) if "*" in path else (ROOT / path).exists(), named
    assert "def builtin_formats" in (SRC / "registry.py").read_text()
    # The third-party table names no file of modelformats; the built-in one none of the serving layers.
    third_party = tables[: tables.index("A **built-in** format")]
    assert "src/modelformats" not in third_party
    assert not re.search(r"src/modelformats/(engines|gpu|planner|planning)", tables)


def test_no_serving_layer_compares_with_a_format_name():
    names = {f.name for f in builtin_formats()}
    layers = [
        SRC / "planner.py",
        *sorted((SRC / "planning").glob("*.py")),
        *sorted((SRC / "engines").glob("*.py")),
        *sorted((SRC / "gpu").glob("*.py")),
    ]
    found = []
    for path in layers:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare):
                for side in [node.left, *node.comparators]:
                    values = side.elts if isinstance(side, ast.Tuple | ast.Set | ast.List) else [side]
                    hits = [v.value for v in values if isinstance(v, ast.Constant) and v.value in names]
                    found += [f"{path.relative_to(SRC)}:{node.lineno} compares with {h!r}" for h in hits]
    assert found == []


def test_the_disable_switch_it_describes_exists():
    assert "--disable gguf" in _section("Switching a format off")
    # The switch does what the doc says: the target GGUF repo is then planned without any GGUF route.
    source = default_source()
    with_gguf = plan(DEFAULT_REPO, source=source, options=PlanOptions())
    without = plan(DEFAULT_REPO, source=source, options=PlanOptions(disable=("gguf",)))
    assert any(alt.label.startswith("gguf") for alt in with_gguf.alternatives)
    assert without.format != "gguf"
    assert not any(alt.label.startswith("gguf") for alt in without.alternatives)
