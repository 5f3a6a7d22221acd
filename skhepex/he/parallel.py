"""Evaluation of ciphertext batches in worker processes (joblib: loky, dask).

SEAL's bindings hold the GIL, so only processes evaluate in parallel.  The
public server package travels as a NumPy ``uint8`` array: joblib's loky
backend memory-maps large arrays (one file for all tasks) and its dask backend
scatters an argument shared by many tasks once, so each worker receives the
package once, loads it once (cached per process) and then gets only
ciphertext batches.  Nothing secret leaves the client: the package holds the
public context, Galois/relinearisation keys and the packed model.
"""
from __future__ import annotations

import numpy as np

__all__ = ["evaluate_serialized", "package_array"]

_SERVERS = {}


def package_array(server):
    """The server package as a ``uint8`` array and its fingerprint.

    Parameters
    ----------
    server : ServerModel
        The public server model to ship to the workers.

    Returns
    -------
    package : ndarray of uint8
        ``server.serialize()`` as an array (memory-mapped or scattered once
        by joblib).
    package_id : str
        Fingerprint of the package (plan and key), the worker-side cache key.
    """
    return np.frombuffer(server.serialize(), dtype=np.uint8), f"{server.plan_id}:{server.key_id}"


def evaluate_serialized(package, package_id, batch):
    """Evaluate one serialized batch in this (worker) process.

    Parameters
    ----------
    package : ndarray of uint8
        From :func:`package_array`; loaded once per process.
    package_id : str
        Its fingerprint.
    batch : bytes
        ``EncryptedBatch.serialize()``.

    Returns
    -------
    result : bytes
        ``EncryptedResult.serialize()``, measurements included.
    """
    server = _SERVERS.get(package_id)
    if server is None:
        from .server import ServerModel

        _SERVERS.clear()                  # one model per worker at a time
        server = _SERVERS[package_id] = ServerModel.load(np.asarray(package).tobytes())
    return server.evaluate(server.load_batch(batch)).serialize()
