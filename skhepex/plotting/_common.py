"""Helpers shared by the displays: the lazy matplotlib import and legend labels."""

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
