"""The project's shape: imports run one way (wsrtl_jax may import data_pipeline, never the
reverse), no import cycle anywhere, and no module over 600 lines."""
import ast
import pathlib

from tests.helpers import ROOT

PACKAGES = ("wsrtl_jax", "data_pipeline")


def _modules() -> dict[str, pathlib.Path]:
  """Dotted name -> file of every module of both packages (a package by its __init__)."""
  found = {}
  for package in PACKAGES:
    for path in sorted(pathlib.Path(ROOT, package).rglob("*.py")):
      parts = path.relative_to(ROOT).with_suffix("").parts
      found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
  return found


def _imports(name: str, path: pathlib.Path, modules: dict) -> set[str]:
  """The project modules that `name` imports anywhere in its file (inside functions too): each
  module named (`from package import module` names the module, `from module import names` the
  module), and the packages above each, which Python runs first, except the packages that hold
  `name` itself (they are running already when it is imported)."""
  package = name if path.name == "__init__.py" else name.rpartition(".")[0]
  named = set()
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.Import):
      named.update(alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:
        parts = package.split(".")
        base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
      submodules = {f"{base}.{alias.name}" for alias in node.names} & modules.keys()
      named.update(submodules)
      if len(submodules) < len(node.names):
        named.add(base)
  holders = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
  above = {".".join(t.split(".")[:i]) for t in named for i in range(1, t.count(".") + 1)}
  return {t for t in named | (above - holders) if t in modules and t != name}


def _graph() -> dict[str, set[str]]:
  modules = _modules()
  return {name: _imports(name, path, modules) for name, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
  """One import cycle of `graph` (a list of modules, the first repeated last), or None."""
  state, stack = {}, []

  def visit(node):
    state[node] = "open"
    stack.append(node)
    for nxt in sorted(graph[node]):
      if state.get(nxt) == "open":
        return stack[stack.index(nxt):] + [nxt]
      if nxt not in state and (found := visit(nxt)):
        return found
    stack.pop()
    state[node] = "done"
    return None

  for node in sorted(graph):
    if node not in state and (found := visit(node)):
      return found
  return None


def test_data_pipeline_never_imports_wsrtl_jax():
  graph = _graph()
  back = {name: sorted(t for t in targets if t.startswith("wsrtl_jax"))
          for name, targets in graph.items() if name.startswith("data_pipeline")}
  assert not {k: v for k, v in back.items() if v}


def test_no_import_cycle():
  assert _cycle(_graph()) is None, " -> ".join(_cycle(_graph()))


def test_the_cycle_finder_finds_a_cycle():
  assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
  assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_module_over_600_lines():
  long = {str(p.relative_to(ROOT)): n for p in _modules().values()
          if (n := len(p.read_text().splitlines())) > 600}
  assert not long
