"""Encrypted inference over HTTP: the ``skhepex serve`` service and its client.

The service (:func:`create_app`, Starlette; run by ``skhepex serve PACKAGE``
with uvicorn) needs the ``[serve]`` extra: ``pip install "skhepex[serve]"``.
The client, :class:`RemoteServer`, uses only the standard library::

    from skhepex.serve import RemoteServer
    raw = he.decrypt(RemoteServer("http://127.0.0.1:8000").evaluate(he.encrypt(X)))

Endpoints: ``GET /health`` (JSON: the model's public metadata, no key
material) and ``POST /evaluate`` (body: ``EncryptedBatch.serialize()``
bytes; answer: ``EncryptedResult.serialize()`` bytes; errors: JSON
``{"error": message}`` with a 4xx/5xx status).  ``import skhepex.serve``
imports neither Starlette nor TenSEAL.
"""
from ..lazy import attach
from .remote import RemoteError, RemoteServer

_LAZY = {"create_app": ".app", "public_metadata": ".app", "app_from_environ": ".app"}

__all__ = ["RemoteServer", "RemoteError", "create_app", "public_metadata",
           "app_from_environ"]


__getattr__, __dir__ = attach(__name__, _LAZY)
