"""The code's shape: data flows one way (config -> inputs -> embed -> train -> predictions -> stats -> report),
the library never imports the converter scripts, every module says its one job, and no module grows past ~400
lines. Imports are read from the source (every ``import`` statement, also those inside functions)."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Lower layers never import higher ones. Modules of one layer may import each other.
LAYERS = [
    ["jaxprobe.errors", "jaxprobe.locking", "jaxprobe.hostmem"],
    ["jaxprobe.config", "jaxprobe.cli", "jaxprobe.tasks", "jaxprobe.metrics"],
    ["jaxprobe.encoders"],
    ["jaxprobe.data"],
    ["jaxprobe.inputs"],
    ["jaxprobe.embed"],
    ["jaxprobe.heads", "jaxprobe.train"],
    ["jaxprobe.predictions", "jaxprobe.baselines"],
    ["jaxprobe.bootstrap", "jaxprobe.delong", "jaxprobe.stats"],
    ["jaxprobe.results", "jaxprobe.tables", "jaxprobe.exports"],
    ["jaxprobe.figures", "jaxprobe.curves"],
    ["jaxprobe.report", "jaxprobe.overlays", "jaxprobe.stats.__main__"],
    ["jaxprobe.run", "jaxprobe.validate", "jaxprobe.embed.__main__"],
]
LONG_MODULES = {"jaxprobe/bootstrap.py"}  # the bootstrap engine may stay whole (issue 11)


def _modules(package: str):
    for path in sorted((ROOT / package).rglob("*.py")):
        rel = path.relative_to(ROOT)
        name = ".".join(rel.with_suffix("").parts)
        yield name.removesuffix(".__init__"), path


def _layer(module: str) -> int | None:
    """The layer of the longest prefix in LAYERS that names ``module`` or a package holding it."""
    found = [(len(p), i) for i, prefixes in enumerate(LAYERS) for p in prefixes
             if module == p or module.startswith(p + ".")]
    return max(found)[1] if found else None


def _imports(module: str, path: Path):
    tree = ast.parse(path.read_text())
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            names = [target] if node.module else []
            # "from . import x" / "from .pkg import mod": the imported names may be modules
            names += [f"{target}.{alias.name}" for alias in node.names]
            for name in names:
                yield name, node.lineno


def test_every_module_is_in_a_layer():
    unplaced = [m for m, _ in _modules("jaxprobe") if m != "jaxprobe" and _layer(m) is None]
    assert not unplaced, f"add these modules to a layer in LAYERS: {unplaced}"


def test_data_flows_one_way():
    backwards = []
    for module, path in _modules("jaxprobe"):
        mine = _layer(module)
        for target, line in _imports(module, path):
            theirs = _layer(target)
            if mine is not None and theirs is not None and theirs > mine:
                backwards.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    assert not backwards, "imports against the flow:\n" + "\n".join(backwards)


def test_the_library_never_imports_the_converter_scripts():
    offending = [f"{path.relative_to(ROOT)}:{line}" for module, path in _modules("jaxprobe")
                 for target, line in _imports(module, path) if target == "convert" or target.startswith("convert.")]
    assert not offending


@pytest.mark.parametrize("package", ["jaxprobe", "convert", "configs"])
def test_every_module_says_its_job(package):
    missing = [str(p.relative_to(ROOT)) for _, p in _modules(package)
               if not (ast.get_docstring(ast.parse(p.read_text())) or "").strip()]
    assert not missing, f"modules without a docstring: {missing}"


def test_no_module_is_too_long():
    long = {str(p.relative_to(ROOT)): n for _, p in _modules("jaxprobe")
            if (n := len(p.read_text().splitlines())) > 420 and str(p.relative_to(ROOT)) not in LONG_MODULES}
    assert not long, f"split these modules: {long}"


def test_the_readme_layout_names_every_top_level_module():
    """The README's Layout section is the map of the layers: every module and package of jaxprobe is on it."""
    text = (ROOT / "README.md").read_text()
    layout = text[text.index("## Layout"):text.index("## Known limitations")]
    tops = sorted({m.split(".")[1] for m, _ in _modules("jaxprobe") if m.count(".") >= 1})
    missing = [t for t in tops if t not in layout]
    assert not missing, f"add to the README's Layout section: {missing}"
