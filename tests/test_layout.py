"""The tree's architecture holds: imports run one way (models, losses, data → train → convert,
transfer → methods → configs, run → demo, check, parser → cli → entry), no import cycle among jka's modules, no jka
import hidden inside a function, and no method file over 400 lines."""
import ast
import glob
import os

from tests.conftest import REPO

PKG = os.path.join(REPO, "jka")
# A layer may import from itself and from lower ranks, never from a different layer of its own rank
# or above; the base modules (errors, config, paths) are importable from everywhere.
RANK = {"models": 1, "losses": 1, "data": 1, "train": 2, "convert": 3, "transfer": 3, "methods": 4,
        "configs": 5, "run": 5, "demo": 6, "check": 6, "parser": 6, "cli": 7, "entry": 8}
BASE = {"errors", "config", "paths", "settings", "xla_flags", "__init__", "__main__"}


def _modules():
    for path in glob.glob(os.path.join(PKG, "**", "*.py"), recursive=True):
        rel = os.path.relpath(path, REPO)[:-3].replace(os.sep, ".")
        yield (rel[:-9] if rel.endswith(".__init__") else rel), path


def _imports(path):
    """(name imported, line, inside a function?) of every jka import in ``path``."""
    tree = ast.parse(open(path).read())
    in_function = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            in_function |= {id(n) for n in ast.walk(node) if n is not node}
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module + "." + a.name for a in node.names]
        for name in names:
            if name.startswith("jka"):
                yield name, node.lineno, id(node) in in_function


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_imports_run_one_way_and_none_hides_in_a_function():
    bad = []
    for module, path in _modules():
        layer = _layer(module)
        for name, line, inside in _imports(path):
            target = _layer(name)
            # torch stays optional; the entry point installs its SIGTERM handler before importing the CLI
            if inside and not name.startswith("jka.convert.torch_models") and module != "jka.entry":
                bad.append(f"{module}:{line} imports {name} inside a function")
            if layer in BASE or target in BASE or target == layer:
                continue
            if RANK[target] >= RANK[layer]:
                bad.append(f"{module}:{line} ({layer}) imports {name} ({target})")
    assert not bad, "\n".join(bad)


def test_no_import_cycle():
    modules = dict(_modules())

    def resolve(name):
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name

    graph = {m: {resolve(n) for n, _, _ in _imports(p)} - {m, None, ""} for m, p in modules.items()}
    packages = {m for m, p in modules.items() if p.endswith("__init__.py")}
    graph = {m: {t for t in ts if t not in packages} for m, ts in graph.items() if m not in packages}
    state = {}

    def visit(m, stack):
        state[m] = "open"
        for t in graph.get(m, ()):
            assert state.get(t) != "open", "import cycle: " + " → ".join(stack + [m, t])
            if t not in state:
                visit(t, stack + [m])
        state[m] = "done"

    for m in graph:
        if m not in state:
            visit(m, [])


def test_no_undefined_name():
    """What a moved import leaves behind (pyflakes: names used but never defined or imported)."""
    from pyflakes import api, reporter

    class Collect(reporter.Reporter):
        def __init__(self):
            self.messages = []

        def flake(self, message):
            if type(message).__name__ in ("UndefinedName", "UndefinedLocal", "UndefinedExport"):
                self.messages.append(str(message))

    found = Collect()
    for path in glob.glob(os.path.join(PKG, "**", "*.py"), recursive=True):
        api.checkPath(path, found)
    assert not found.messages, "\n".join(found.messages)


def test_method_files_are_short_and_every_config_loads():
    long = [p for p in glob.glob(os.path.join(PKG, "methods", "**", "*.py"), recursive=True)
            if sum(1 for _ in open(p)) > 400]
    assert not long, long
    from jka import config as config_lib, run

    for entry in config_lib.shipped():
        cfg = run.load(entry["name"])
        assert run.validate(cfg).name == cfg.algorithm, entry["name"]
