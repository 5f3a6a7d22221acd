"""numpydoc validation of the public API.

Modelled on scikit-learn's ``sklearn/tests/test_docstrings.py``: every public
function and class listed in the ``__all__`` of :data:`PUBLIC_MODULES`, and
every public method and property of those classes (defined in skhepex; those
inherited from scikit-learn are scikit-learn's to check), is validated with
:func:`numpydoc.validate.validate`, and the errors of :data:`CHECKED` fail
(less the exceptions of :func:`filter_errors`: properties, dataclass fields).

Run ``python tests/test_docstrings.py skhepex.tiling.TileLayout`` to validate
one object from the command line.
"""

import dataclasses
import importlib
import inspect
import re

import pytest

numpydoc_validation = pytest.importorskip("numpydoc.validate")
from numpydoc.docscrape import NumpyDocString  # noqa: E402 (after the skip)

PUBLIC_MODULES = ("skhepex", "skhepex.estimators", "skhepex.tiling", "skhepex.pruning",
                  "skhepex.he", "skhepex.plotting")

#: The numpydoc checks enforced (see numpydoc's "Built-in validation checks").
CHECKED = {
    "GL03",  # double line break
    "GL05",  # tabs for indentation
    "GL06",  # unknown section
    "GL07",  # sections in the wrong order
    "GL08",  # no docstring
    "GL10",  # reST directive ends with a double colon
    "SS01",  # no summary
    "SS02",  # summary does not start with a capital letter
    "SS03",  # summary does not end with a period
    "SS04",  # summary has leading whitespace
    "SS06",  # summary longer than one line
    "PR01",  # parameter not documented
    "PR02",  # documented parameter that does not exist
    "PR03",  # parameters documented in the wrong order
    "PR05",  # parameter type ends with a period
    "PR06",  # parameter type uses an abbreviation (int, not integer)
    "PR07",  # parameter without description
    "PR08",  # parameter description does not start with a capital letter
    "PR09",  # parameter description does not end with a period
    "PR10",  # ``x: int`` instead of ``x : int``
    "RT01",  # no Returns section where a value is returned
    "RT03",  # return value without description
    "RT04",  # return description does not start with a capital letter
    "RT05",  # return description does not end with a period
    "YD01",  # no Yields section in a generator
}


def _public_objects():
    """``(import path, object)`` of every public function and class, once each."""
    seen = {}
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            if not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue  # constants such as __version__
            seen.setdefault(id(obj), (f"{module_name}.{name}", obj))
    return sorted(seen.values(), key=lambda item: item[0])


def _is_skhepex(member):
    """Whether a class member (function or property) is defined in skhepex."""
    func = member.fget if isinstance(member, property) else member
    func = inspect.unwrap(getattr(func, "__func__", func))
    return getattr(func, "__module__", "").startswith("skhepex")


def _public_members(cls):
    """Public methods and properties of ``cls`` defined in skhepex."""
    names = []
    for name in dir(cls):
        if name.startswith("_"):
            continue
        try:
            member = inspect.getattr_static(cls, name)
        except AttributeError:  # pragma: no cover - dynamic attributes
            continue
        if isinstance(member, (staticmethod, classmethod)):
            member = member.__func__
        if not (callable(member) or isinstance(member, property)):
            # available_if descriptors and similar wrap a function
            member = getattr(member, "fn", None)
            if member is None:
                continue
        if _is_skhepex(member):
            names.append(name)
    return names


def _targets():
    """Import paths to validate, and the subset naming properties."""
    paths, properties = [], set()
    for path, obj in _public_objects():
        paths.append(path)
        if dataclasses.is_dataclass(obj):
            DATACLASSES[path] = obj
        if inspect.isclass(obj):
            for name in _public_members(obj):
                paths.append(f"{path}.{name}")
                if isinstance(inspect.getattr_static(obj, name), property):
                    properties.add(f"{path}.{name}")
    return paths, properties


#: Public dataclasses by import path (their fields may be documented as Attributes).
DATACLASSES = {}
TARGETS, PROPERTIES = _targets()


def _documented_names(docstring, section):
    """Names documented in a numpydoc ``section`` (``"a, b : int"`` counts both)."""
    names = set()
    for param in NumpyDocString(docstring or "")[section]:
        names.update(n.strip().lstrip("*") for n in param.name.split(","))
    return names


def _fields_documented(import_path, docstring):
    """Whether every field of a dataclass is documented as a parameter or attribute."""
    fields = {f.name for f in dataclasses.fields(DATACLASSES[import_path]) if f.init}
    return fields <= (_documented_names(docstring, "Parameters")
                      | _documented_names(docstring, "Attributes"))


#: A property summary in the attribute style ``"int : Number of tiles."``.
TYPED_SUMMARY = re.compile(r"^[^:]+ : [A-Z`:]")


def filter_errors(errors, import_path, docstring=""):
    """The errors of :data:`CHECKED`, less those that do not apply to properties.

    As in scikit-learn, PR02 and GL08 are ignored for properties (their
    signature cannot be parsed; they are documented as attributes), and
    properties need no Returns section. A property summary may also take the
    attribute form ``"type : Description."`` (SS02 then checks the
    description). The fields of a dataclass (its ``__init__`` parameters)
    may be documented under Attributes instead of Parameters (PR01).
    """
    prop = import_path in PROPERTIES
    typed = prop and TYPED_SUMMARY.match(docstring.strip())
    for code, message in errors:
        if code not in CHECKED:
            continue
        if prop and code in ("PR02", "GL08", "RT01"):
            continue
        if typed and code == "SS02":
            continue
        if (code == "PR01" and import_path in DATACLASSES
                and _fields_documented(import_path, docstring)):
            continue
        yield code, message


def repr_errors(res, import_path):
    """The docstring and its errors, for the failure message."""
    errors = "\n".join(f" - {code}: {message}" for code, message in res["errors"])
    return (f"\n\n{res['file']}:{res['file_line']}\n{import_path}\n\n{res['docstring']}"
            f"\n# Errors\n{errors}")


def test_public_api_is_found():
    """The collection itself: the main classes and some methods are checked."""
    assert "skhepex.MLPClassifier" in TARGETS
    assert "skhepex.MLPClassifier.fit" in TARGETS
    assert "skhepex.MLPClassifier.fine_tune" in TARGETS
    assert "skhepex.HEPEx.predict" in TARGETS
    assert "skhepex.MLPClassifier.get_params" not in TARGETS  # scikit-learn's


@pytest.mark.parametrize("import_path", TARGETS)
def test_docstring(import_path):
    res = numpydoc_validation.validate(import_path)
    res["errors"] = list(filter_errors(res["errors"], import_path, res["docstring"]))
    if res["errors"]:
        raise ValueError(repr_errors(res, import_path))


if __name__ == "__main__":
    import sys

    path = sys.argv[1]
    result = numpydoc_validation.validate(path)
    result["errors"] = list(filter_errors(result["errors"], path, result["docstring"]))
    print(repr_errors(result, path) if result["errors"] else f"{path}: OK")
    sys.exit(1 if result["errors"] else 0)
