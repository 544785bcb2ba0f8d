"""The layers, checked from the source: engines never speak gRPC, the front reaches into the engine only through
the seam, and nothing imports in a circle."""
from __future__ import annotations

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
# What the gRPC front may import from engine/: the seam (wire protocol and typed specs), the rig tables (ARKit names,
# bones, visemes, emotions, axis conversions), logging setup and the engine registries.
FRONT_MAY_IMPORT = ("engine.worker.protocol", "engine.worker.specs", "engine.rig", "engine.logjson", "engine.expression.registry",
                    "engine.tts.registry")
# The offline commands (render, generate, train/eval, models, file decoding for CLI clients) run engine code in
# the CLI process by design: the CLI package (bridge_server/cli/, generate-batch --ray's tasks included) and the
# client helpers it uses are the only front modules exempt from the rule above.
CLI_PACKAGE, CLI_HELPERS = "bridge_server.cli", {"bridge_server.client"}


def _is_cli(name: str) -> bool:
    return name == CLI_PACKAGE or name.startswith(CLI_PACKAGE + ".") or name in CLI_HELPERS


def _modules() -> dict[str, pathlib.Path]:
    out = {}
    for top in ("engine", "bridge_server"):
        for path in (ROOT / top).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imports(name: str, path: pathlib.Path, top_level_only: bool, known: set[str]) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            # `from pkg import module` reaches the module; `from module import name` reaches the module
            subs = {f"{base}.{alias.name}" for alias in node.names} & known
            found.update(subs or {base})
    return found


def _within(name: str, prefixes) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_engine_never_speaks_grpc_or_imports_the_front():
    modules = _modules()
    bad = {name: sorted(i for i in _imports(name, path, False, set(modules))
                        if _within(i, ("grpc", "grpc_health", "grpc_reflection", "avatarbridge", "bridge_server")))
           for name, path in modules.items() if name.startswith("engine")}
    assert not {k: v for k, v in bad.items() if v}


def test_front_reaches_the_engine_only_through_the_seam():
    modules = _modules()
    bad = {}
    for name, path in modules.items():
        if not name.startswith("bridge_server") or _is_cli(name):
            continue
        reached = {i for i in _imports(name, path, False, set(modules)) if _within(i, ("engine",))}
        wrong = sorted(i for i in reached if not _within(i, FRONT_MAY_IMPORT) and i in modules)
        if wrong:
            bad[name] = wrong
    assert not bad, f"front modules importing engine internals (use the seam or move the code): {bad}"


def test_no_import_cycles():
    modules = _modules()
    graph = {name: {i for i in _imports(name, path, True, set(modules)) if i in modules and i != name}
             for name, path in modules.items()}
    # A package's __init__ importing its own submodules is how packages re-export; not a cycle between layers.
    for name in graph:
        graph[name] = {i for i in graph[name] if not (i.startswith(name + ".") and modules[name].name == "__init__.py")}
    state: dict[str, int] = {}
    cycles = []

    def visit(n: str, stack: list[str]) -> None:
        state[n] = 1
        for m in sorted(graph[n]):
            if state.get(m) == 1:
                cycles.append(stack[stack.index(m):] + [m] if m in stack else [n, m])
            elif m not in state:
                visit(m, stack + [m])
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n, [n])
    assert not cycles, f"import cycles: {cycles[:5]}"
