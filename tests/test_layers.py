"""The layers of fcore depend strictly downward, and no import cycle spans two subpackages.

The import graph is read from the source with `ast`: imports at module level and inside
functions alike (an import inside a function is still a dependency)."""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1] / "fcore"

# Layer of each part of fcore (subpackage or top-level module). A module may import modules
# of a lower layer, or of its own part; parts of one layer do not import each other.
LAYERS = {
    "struct": 0, "context_stack": 0,
    "types": 1,
    "ir": 2, "structure": 2,
    "intrinsics": 3, "computation": 3,
    "syntax": 4, "tracing": 4,
    "serialization": 5, "templates": 5, "mapreduce": 5, "audit": 5,
    "execution": 6, "aggregators": 6,
    "fcore": 7,  # the package's __init__: the public API
    "demo": 8, "cli": 8,
    "__main__": 9,  # `python -m fcore`: runs the command line
}


def modules():
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = ("fcore",) + path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def import_graph():
    found = modules()
    edges = {name: set() for name in found}
    for name, path in found.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                submodules = [f"{base}.{alias.name}" for alias in node.names]
                targets = [t for t in submodules if t in found] or [base]
            else:
                continue
            for target in targets:
                while target and target not in found:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    edges[name].add(target)
    return edges


def part(module):
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 1 else "fcore"


def strongly_connected(edges):
    index, low, stack, on_stack, components = {}, {}, [], set(), []

    def visit(start):  # iterative Tarjan
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    components.append(component)
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(edges[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return components


def test_every_part_has_a_layer():
    assert {part(m) for m in modules()} <= set(LAYERS)


def test_no_import_cycle_spans_two_subpackages():
    spanning = [sorted(c) for c in strongly_connected(import_graph())
                if len({part(m) for m in c}) > 1]
    assert not spanning, spanning


def test_layers_depend_downward():
    wrong = []
    for module, targets in import_graph().items():
        for target in targets:
            here, there = part(module), part(target)
            if here != there and LAYERS[there] >= LAYERS[here]:
                wrong.append(f"{module} -> {target}")
    assert not wrong, wrong


def test_the_graph_sees_function_level_imports():
    edges = import_graph()
    # fcore.types.conversion reads text types through a hook, not by importing the parser
    assert "fcore.syntax.types" not in edges["fcore.types.conversion"]
    assert "fcore.types.conversion" in edges["fcore.syntax.types"]
    # execution contexts import the runner inside a function
    assert "fcore.execution.runner" in edges["fcore.execution.context"]
