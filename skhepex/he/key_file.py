"""The client key file: the only way the secret key reaches a disk.

The file holds the TenSEAL context *with the secret key* (plus the public and
relinearisation keys, not the Galois keys, which are regenerated), the
fingerprints of the packed plans it belongs to and a format version.  It is
written with owner-only permissions (0600), optionally encrypted with a
password (``cryptography``'s Fernet with a scrypt-derived key).  Both
:meth:`skhepex.he.HEPredictor.save_client` / ``load_client`` and
:meth:`skhepex.he.Client.load` (a client process without scikit-learn) use it.
"""
from __future__ import annotations

import base64
import os

from .serialization import SerializationError, pack, unpack

__all__ = ["CLIENT_FILE_VERSION", "write_key_file", "read_key_file"]

#: Version of the client key file format.
CLIENT_FILE_VERSION = 1
_KIND = "ClientKeys"


def _fernet(password, salt):
    try:
        from cryptography.fernet import Fernet
        from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
    except ImportError as exc:  # pragma: no cover - cryptography is usually present
        raise ImportError("password-protected key files need the 'cryptography' "
                          "package (pip install cryptography)") from exc
    key = Scrypt(salt=salt, length=32, n=2 ** 15, r=8, p=1).derive(password.encode("utf-8"))
    return Fernet(base64.urlsafe_b64encode(key))


def write_key_file(path, context_bytes, plans, key_id, *, password=None):
    """Write a client key file (mode 0600).

    Parameters
    ----------
    path : str or path-like
        Destination (overwritten; created with owner-only permissions).
    context_bytes : bytes
        The private context (:meth:`skhepex.he.Client.save_context`).
    plans : dict
        Plan name -> fingerprint (:func:`skhepex.he.wire.plan_fingerprint`).
    key_id : str
        Fingerprint of the public key.
    password : str, optional
        Encrypt the context with this password.

    Returns
    -------
    path : str or path-like
        ``path``.
    """
    salt = os.urandom(16) if password is not None else b""
    if password is not None:
        context_bytes = _fernet(password, salt).encrypt(context_bytes)
    header = dict(version=CLIENT_FILE_VERSION, plans=dict(plans), key_id=key_id,
                  encrypted=password is not None)
    data = pack(_KIND, header, {"context": context_bytes, "salt": salt})
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)                 # an existing file keeps its mode otherwise
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return path


def read_key_file(path, *, password=None):
    """Read a client key file written by :func:`write_key_file`.

    Parameters
    ----------
    path : str or path-like
        The file.
    password : str, optional
        The password it was written with.

    Returns
    -------
    context_bytes : bytes
        The private context, decrypted.
    header : dict
        ``version``, ``plans`` (name -> fingerprint), ``key_id``, ``encrypted``.

    Raises
    ------
    SerializationError
        Not a key file, or a format version this skhepex does not read.
    ValueError
        A password-protected file without the password, or a wrong password.
    """
    with open(path, "rb") as f:
        h, arrays = unpack(f.read(), _KIND)
    if h.get("version") != CLIENT_FILE_VERSION:
        raise SerializationError(f"client key file version {h.get('version')!r} is not "
                                 f"supported (this skhepex reads version "
                                 f"{CLIENT_FILE_VERSION})")
    if not isinstance(h.get("plans"), dict) or not isinstance(h.get("key_id"), str):
        raise SerializationError("malformed client key file header")
    data = arrays["context"].tobytes() if "context" in arrays else b""
    if h.get("encrypted"):
        if password is None:
            raise ValueError("this key file is password-protected; pass password=")
        from cryptography.fernet import InvalidToken
        try:
            data = _fernet(password, arrays["salt"].tobytes()).decrypt(data)
        except InvalidToken:
            raise ValueError("wrong password for this key file") from None
    return data, h
