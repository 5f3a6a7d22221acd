"""Static checks of the package layout (read with ``ast``: skhepex is not imported).

* No module uses a leading-underscore name *defined in another skhepex
  package* (``nn``, ``estimators``, ``tiling``, ``pruning``, ``he``,
  ``plotting``, ``experiments``, ``cli``; a top-level module such as
  ``_tags`` counts as a package of its own): not by ``from ..pkg import _name``, not by
  importing a private module of another package, not by ``x._name`` on an
  imported skhepex object, and not by ``obj._name`` / ``getattr(obj, "_name")``
  when ``_name`` is defined only in other packages. Dunders and ``self._x`` /
  ``cls._x`` are fine, and so are scikit-learn's private names.
* No ``hasattr(obj, "_private")`` type test on anything but ``self``/``cls``.
* No module longer than :data:`MAX_LINES` lines.
* ``import skhepex`` (in a subprocess) does not import TenSEAL.
* The deployment modules (client, server, HTTP app) import neither
  scikit-learn nor the compiler: a server process starts at ~45 MB, not ~160.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "skhepex"
MAX_LINES = 450
OWNERS = ("self", "cls")


def _is_private(name):
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _modname(path):
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _package(modname):
    """The skhepex package owning ``modname`` (``"skhepex"`` for the root)."""
    parts = modname.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


MODULES = {_modname(p): p for p in sorted(ROOT.rglob("*.py"))}
TREES = {name: ast.parse(path.read_text(encoding="utf-8"), str(path))
         for name, path in MODULES.items()}


def _resolve(modname, node):
    """Absolute module named by an ``ImportFrom`` in module ``modname``."""
    if node.level == 0:
        return node.module or ""
    base = modname.split(".")
    if not MODULES[modname].name == "__init__.py":
        base = base[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _defined_private_names(tree):
    """Private names a module defines: globals, class members, ``self._x = ...``."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for sub in ast.walk(target):
                    if isinstance(sub, ast.Name):
                        names.add(sub.id)
                    elif isinstance(sub, ast.Attribute):
                        names.add(sub.attr)
    return {n for n in names if _is_private(n)}


def _private_names_by_package():
    by_package = {}
    for name, tree in TREES.items():
        by_package.setdefault(_package(name), set()).update(_defined_private_names(tree))
    return by_package


def _sklearn_private_names():
    from sklearn.base import BaseEstimator
    from sklearn.utils.metaestimators import _BaseComposition

    return {n for cls in (BaseEstimator, _BaseComposition) for n in dir(cls)
            if _is_private(n)}


def _owner(node):
    """``"self"``/``"cls"``/``"super"`` when ``node`` is one of them, else ``None``."""
    if isinstance(node, ast.Name) and node.id in OWNERS:
        return node.id
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id == "super"):
        return "super"
    return None


def _imported_skhepex_names(modname, tree):
    """Local names bound to skhepex objects of *other* packages, and import violations."""
    own = _package(modname)
    bound, problems = set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] != "skhepex":
                    continue
                if alias.name != "skhepex" and _package(alias.name) != own:
                    parts = alias.name.split(".")[1:]
                    if any(_is_private(p) for p in parts):
                        problems.append((node.lineno, f"import {alias.name}"))
                bound.add((alias.asname or alias.name).split(".")[0])
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(modname, node)
            if target.split(".")[0] != "skhepex":
                continue
            for alias in node.names:
                full = f"{target}.{alias.name}" if _is_module(target, alias.name) else target
                pkg = _package(full)
                if pkg == own:
                    continue
                private_module = any(_is_private(p) for p in full.split(".")[1:])
                if _is_private(alias.name) or private_module:
                    problems.append((node.lineno, f"from {target} import {alias.name}"))
                bound.add(alias.asname or alias.name)
    return bound, problems


def _is_module(package, name):
    """Whether ``from package import name`` imports a module."""
    return f"{package}.{name}" in MODULES


DEFINED = _private_names_by_package()
SKLEARN_PRIVATE = _sklearn_private_names()


def _module_violations(modname, tree, path):
    """Cross-package private uses in one module, as ``"path:line: what"``."""
    own = _package(modname)
    elsewhere = set().union(*(names for pkg, names in DEFINED.items() if pkg != own))
    foreign = elsewhere - DEFINED.get(own, set()) - SKLEARN_PRIVATE
    bound, problems = _imported_skhepex_names(modname, tree)
    found = [f"{path}:{line}: {what}" for line, what in problems]
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _is_private(node.attr):
            if _owner(node.value):
                continue
            if isinstance(node.value, ast.Name) and node.value.id in bound:
                found.append(f"{path}:{node.lineno}: {node.value.id}.{node.attr}")
            elif node.attr in foreign:
                found.append(f"{path}:{node.lineno}: <obj>.{node.attr} "
                             "(defined in another package)")
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id in ("getattr", "setattr", "hasattr", "delattr")
              and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant)
              and isinstance(node.args[1].value, str)
              and node.args[1].value in foreign and not _owner(node.args[0])):
            found.append(f"{path}:{node.lineno}: {node.func.id}(..., "
                         f"{node.args[1].value!r}) (defined in another package)")
    return found


def _violations():
    found = []
    for modname, tree in TREES.items():
        found += _module_violations(modname, tree, MODULES[modname].relative_to(ROOT.parent))
    return sorted(set(found))


def test_no_private_names_across_packages():
    violations = _violations()
    assert not violations, ("private names used across packages:\n"
                            + "\n".join(violations))


def test_no_private_hasattr_type_tests():
    found = []
    for modname, tree in TREES.items():
        path = MODULES[modname].relative_to(ROOT.parent)
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id == "hasattr" and len(node.args) == 2
                    and isinstance(node.args[1], ast.Constant)
                    and isinstance(node.args[1].value, str)
                    and _is_private(node.args[1].value) and not _owner(node.args[0])):
                found.append(f"{path}:{node.lineno}: hasattr(..., {node.args[1].value!r})")
    assert not found, "hasattr type tests on private names:\n" + "\n".join(found)


def test_modules_are_short():
    too_long = {str(p.relative_to(ROOT.parent)): n for p in MODULES.values()
                if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not too_long, f"modules over {MAX_LINES} lines: {too_long}"


def test_import_does_not_load_tenseal():
    code = "import skhepex, sys; assert 'tenseal' not in sys.modules, 'tenseal imported'"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("module", ["skhepex.he.server", "skhepex.he.client",
                                    "skhepex.he.key_file", "skhepex.serve.app"])
def test_deployment_modules_do_not_load_scikit_learn(module):
    if module == "skhepex.serve.app":
        pytest.importorskip("starlette")
    code = (f"import sys, {module}\n"
            "bad = [m for m in ('sklearn', 'scipy', 'skhepex.he.compiler', 'skhepex.estimators')"
            " if m in sys.modules]\n"
            "assert not bad, bad")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("snippet, expected", [
    ("from ..he.plan import _private\n", "from skhepex.he.plan import _private"),
    ("from .. import _tags\n", "from skhepex import _tags"),
    ("from .._tags import delegate_tags\n", "from skhepex._tags import delegate_tags"),
    ("from ..he import plan\nplan._private()\n", "plan._private"),
    ("def f(est, X):\n    return est._check_input(X)\n", "<obj>._check_input"),
    ("def f(est):\n    return getattr(est, '_check_input')\n", "getattr(..., '_check_input')"),
])
def test_checker_catches_examples(snippet, expected):
    """The checker itself, on a module of ``nn`` using privates of other packages."""
    found = _module_violations("skhepex.nn.layers", ast.parse(snippet), "nn/layers.py")
    assert any(expected in f for f in found), found


@pytest.mark.parametrize("snippet", [
    "def f(self):\n    return self._check_input, super()._fit\n",
    "from ..nn.network import Network\nNetwork.__name__\n",
    "def f(est):\n    return est._validate_params()\n",  # scikit-learn's
    "from .layers import _private\n",                     # same package
])
def test_checker_allows(snippet):
    assert not _module_violations("skhepex.nn.layers", ast.parse(snippet), "nn/layers.py")
