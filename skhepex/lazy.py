"""Lazy attributes of a package (PEP 562): import a submodule on first use.

``import skhepex`` and ``skhepex.he`` must not import TenSEAL, Starlette or
other heavy dependencies; names that need them are resolved when first used.
"""
import importlib

__all__ = ["attach"]


def attach(package, names):
    """Module ``__getattr__`` and ``__dir__`` resolving ``names`` lazily.

    Parameters
    ----------
    package : str
        The package's ``__name__``.
    names : dict
        Attribute name -> module path relative to ``package`` (e.g. ``".client"``).

    Returns
    -------
    getattr_ : callable
        To assign to the package's ``__getattr__``.
    dir_ : callable
        To assign to the package's ``__dir__``: its globals plus ``names``.
    """
    mod = importlib.import_module(package)

    def getattr_(name):
        if name in names:
            return getattr(importlib.import_module(names[name], package), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def dir_():
        return sorted(set(vars(mod)) | set(names) | set(getattr(mod, "__all__", ())))

    return getattr_, dir_
