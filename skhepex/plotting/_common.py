"""Helpers shared by the displays: lazy matplotlib import, legend labels, docstrings."""

import inspect
import re
import textwrap

PLOT_EXTRA = 'pip install "skhepex[plot]"'


def import_pyplot():
    """Import ``matplotlib.pyplot`` lazily, with an actionable error.

    Returns
    -------
    plt : module
        ``matplotlib.pyplot``.

    Raises
    ------
    ImportError
        If matplotlib is not installed; the message says how to install it.
    """
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - exercised with a monkeypatch
        raise ImportError(
            "skhepex's plotting displays need matplotlib, which is an optional "
            f"dependency; install it with: {PLOT_EXTRA}") from exc
    return plt


def label(value):
    """Legend label of a value: strings as they are, other objects by ``str``.

    Parameters
    ----------
    value : object
        A variant name or a grid-search parameter value.

    Returns
    -------
    label : str
        ``value`` itself for strings, ``"None"`` for ``None``, else ``str(value)``.
    """
    if isinstance(value, str):
        return value
    if value is None:
        return "None"
    return str(value)


#: A docstring line holding only a ``%(name)s`` placeholder (see :func:`fill_doc`).
_PLACEHOLDER = re.compile(r"^([ \t]*)%\((\w+)\)s[ \t]*$", re.MULTILINE)


def fill_doc(**snippets):
    """Decorator filling ``%(name)s`` placeholder lines of a docstring.

    Parameter descriptions shared by several constructors are written once
    (as in MNE's ``fill_doc``): every line holding only ``%(name)s`` is
    replaced by ``snippets[name]``, dedented and re-indented like the
    placeholder. The rest of the docstring is left as it is.

    Parameters
    ----------
    **snippets : dict of str to str
        Docstring text by placeholder name (any common indentation is
        removed before re-indenting).

    Returns
    -------
    decorate : callable
        Decorator that rewrites the ``__doc__`` of the function it is given
        and returns that function.
    """
    def replace(match):
        indent, name = match.groups()
        return textwrap.indent(inspect.cleandoc(snippets[name]), indent)

    def decorate(func):
        if func.__doc__:  # None under python -OO
            func.__doc__ = _PLACEHOLDER.sub(replace, func.__doc__)
        return func

    return decorate
