"""Deprecated location of :func:`skhepex.estimators.delegate_tags`.

Kept only so that modules not yet switched keep importing; import
``delegate_tags`` from :mod:`skhepex.estimators` instead.
"""

from .estimators.wrappers import delegate_tags

__all__ = ["delegate_tags"]
