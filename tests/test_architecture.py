"""Dependencies point one way: no module of proapp imports, even lazily inside a function, a module that imports
it back; and the features' cores (their models, services and queries: everything but the pages in ``routes.py``
and the commands in ``commands.py``, which sit on top and may use any feature) form no cycle between packages:
patients below questionnaires below SMS, the audit trail below them all. Imports made for type checking only
(``if TYPE_CHECKING:``) do not count: they never run."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "proapp"


def _modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        name = ".".join(path.relative_to(ROOT.parent).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


def _runtime_imports(tree: ast.AST) -> list[str]:
    names: list[str] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.ImportFrom) and node.module:
            names.extend(f"{node.module}.{alias.name}" for alias in node.names)   # a module, or a name in one
        elif isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return names


def import_graph() -> dict[str, set[str]]:
    modules = _modules()

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = {resolve(n) for n in _runtime_imports(ast.parse(path.read_text())) if n.startswith("proapp")}
        graph[name] = {t for t in targets if t and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return found


def package_of(module: str) -> str:
    return ".".join(module.split(".")[:2])


def test_no_module_imports_a_module_that_imports_it_back():
    assert cycles(import_graph()) == []


INTERFACE = ("routes", "commands")


def test_no_feature_core_depends_on_a_package_that_depends_on_it():
    packages: dict[str, set[str]] = {}
    for module, targets in import_graph().items():
        if module.rpartition(".")[2] in INTERFACE:
            continue
        packages.setdefault(package_of(module), set()).update(
            package_of(t) for t in targets if package_of(t) != package_of(module))
    assert cycles(packages) == []


def test_no_feature_depends_through_any_file_on_a_feature_that_depends_on_it():
    """Not through a page or a command either: a page that needs a higher feature's knowledge is given it by the app
    factory (the questionnaire's safety advice comes from the alerts), and a page or command that joins several
    features belongs to the one above them all (the audit trail's pages and the signed reschedule command are the
    dashboard's)."""
    packages: dict[str, set[str]] = {}
    for module, targets in import_graph().items():
        if module == "proapp":          # the app factory wires every feature
            continue
        packages.setdefault(package_of(module), set()).update(
            package_of(t) for t in targets if package_of(t) not in (package_of(module), "proapp"))
    assert cycles(packages) == []


def test_the_configuration_is_a_leaf():
    """Settings are read before anything else exists: each feature checks its own (``proapp.ops.CHECKS``)."""
    assert import_graph()["proapp.config"] == set()


def private_names_used(module: str, tree: ast.AST) -> list[str]:
    """The private names (``_name``, not ``__dunder__``) of other packages that a module imports or reaches through
    a module it imported: a package's private names are its own, what others use it makes public."""
    def private(name: str) -> bool:
        return name.startswith("_") and not name.startswith("__")

    bound: dict[str, str] = {}       # a local name -> the proapp module or name it stands for
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("proapp"):
            for alias in node.names:
                bound[alias.asname or alias.name] = f"{node.module}.{alias.name}"
                if private(alias.name):
                    found.append(f"{node.module}.{alias.name}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("proapp"):
                    bound[alias.asname or "proapp"] = alias.name if alias.asname else "proapp"
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and private(node.attr):
            path, base = [node.attr], node.value
            while isinstance(base, ast.Attribute):
                path.insert(0, base.attr)
                base = base.value
            if isinstance(base, ast.Name) and base.id in bound:
                found.append(".".join([bound[base.id], *path]))
    return [name for name in found if package_of(name) != package_of(module)]


def test_no_package_uses_another_package_private_names():
    used = {module: names for module, path in _modules().items()
            if (names := private_names_used(module, ast.parse(path.read_text())))}
    assert used == {}


def test_the_checker_finds_a_private_name_of_another_package():
    source = ast.parse("from proapp.config import _env_value, SETTINGS\nfrom proapp.sms import delivery\n"
                       "from proapp.ops import _own\n"
                       "def f():\n    return delivery._audit_sms, delivery.audit\n")
    assert private_names_used("proapp.ops", source) == ["proapp.config._env_value", "proapp.sms.delivery._audit_sms"]


def test_the_checker_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


VISITS = "proapp.patients.occurrences"


def visit_writes(root: Path = ROOT) -> set[str]:
    """The modules that change an occurrence's status or SMS round, or announce that a visit ended: a
    ``status=OccurrenceStatus.X`` given to a call (an UPDATE's values, a new Occurrence), an assignment to
    ``….status`` of an OccurrenceStatus, to ``….sms_round``, or ``occurrence_ended.send``."""
    found = set()
    for path in root.rglob("*.py"):
        name = ".".join(path.relative_to(root.parent).with_suffix("").parts)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                hits = [k for k in node.keywords if k.arg == "status" and "OccurrenceStatus" in ast.unparse(k.value)]
                if hits or ast.unparse(node.func).endswith("occurrence_ended.send"):
                    found.add(name)
            elif isinstance(node, ast.Assign | ast.AugAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    for t in target.elts if isinstance(target, ast.Tuple) else [target]:
                        if isinstance(t, ast.Attribute) and (
                                t.attr == "sms_round" or
                                (t.attr == "status" and "OccurrenceStatus" in ast.unparse(node.value))):
                            found.add(name)
    return found


def test_only_the_visits_module_changes_a_visit_or_announces_its_end():
    assert visit_writes() == {VISITS}


def test_the_visit_checker_finds_a_write(tmp_path):
    pkg = tmp_path / "proapp"
    pkg.mkdir()
    (pkg / "a.py").write_text("occ.status = OccurrenceStatus.MISSED\n")
    (pkg / "b.py").write_text("update(Occurrence).values(status=OccurrenceStatus.CANCELLED)\n")
    (pkg / "c.py").write_text("occurrence_ended.send(1, db=db, how='x', now=now)\n")
    (pkg / "d.py").write_text("occ.sms_round += 1\n")
    (pkg / "e.py").write_text("msg.status = SmsStatus.SENT\nq.where(Occurrence.status == OccurrenceStatus.MISSED)\n")
    assert visit_writes(pkg) == {"proapp.a", "proapp.b", "proapp.c", "proapp.d"}
