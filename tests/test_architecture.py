"""The layers run one way (../shared DESIGN): no module imports a layer above its own, deferred imports included.

    python tests/test_architecture.py        # prints the module graph: each module and what it imports
"""

import ast
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# Lowest first. A module may import its own layer or lower ones (and never the command line, the top layer).
LAYERS = [
    ("ground floor", ["mathalign", "mathalign.model", "mathalign.tokenizer", "mathalign.tasks", "mathalign.recipe",
                      "mathalign.errors", "mathalign.launch", "mathalign.metrics", "mathalign.stats"]),
    ("shared services", ["mathalign.generation", "mathalign.sources", "mathalign.rewards", "mathalign.report",
                         "mathalign.sft_trainer", "mathalign.merge", "mathalign.hub"]),
    ("data builders", ["data_builders"]),
    ("stages and tools", ["mathalign.train", "mathalign.evaluation", "mathalign.chat", "mathalign.attention",
                          "mathalign.convert", "mathalign.accuracy_stop"]),
    ("chains", ["mathalign.pipeline"]),
    ("command line", ["mathalign.cli"]),  # mathalign.cli and every mathalign.cli_<name>
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports anywhere in its body (deferred imports count)."""
    paths = [*REPO.glob("mathalign/**/*.py"), *REPO.glob("data_builders/*.py")]
    modules = {module_name(p): p for p in paths}
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
                target = ".".join(base + [node.module] if node.module else base)
                targets.add(target)
                targets.update(f"{target}.{alias.name}" for alias in node.names)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def layer_of(module: str) -> int:
    if module.startswith("mathalign.cli"):
        return len(LAYERS) - 1
    best = None
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > best[1]):
                best = (index, len(prefix))
    assert best is not None, f"{module} has no layer: add it to LAYERS in tests/test_architecture.py"
    return best[0]


def test_no_module_imports_a_layer_above_its_own():
    upward = [f"{module} ({LAYERS[layer_of(module)][0]}) imports {target} ({LAYERS[layer_of(target)][0]})"
              for module, targets in import_graph().items() for target in sorted(targets)
              if layer_of(target) > layer_of(module)]
    assert upward == []


def test_the_library_never_imports_the_command_line():
    offenders = [m for m, targets in import_graph().items() if not m.startswith("mathalign.cli")
                 and any(t.startswith("mathalign.cli") for t in targets)]
    assert offenders == []


def test_no_import_cycles_between_modules():
    graph = {m: {t for t in ts if not (m.startswith(t + ".") or m == t)} for m, ts in import_graph().items()}
    state, cycles = {}, []

    def visit(module, path):
        state[module] = "open"
        for target in sorted(graph[module]):
            if target.startswith(module + "."):
                continue  # a package importing its own submodules
            if state.get(target) == "open":
                cycles.append(path[path.index(target):] + [target] if target in path else path + [target])
            elif target not in state:
                visit(target, path + [target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


if __name__ == "__main__":
    for module, targets in sorted(import_graph().items()):
        print(f"{module:42} [{LAYERS[layer_of(module)][0]}] -> {', '.join(sorted(targets)) or '-'}")
    sys.exit(0)
