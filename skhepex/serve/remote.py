"""Client of a ``skhepex serve`` endpoint (standard library only).

:class:`RemoteServer` stands where a :class:`~skhepex.he.ServerModel` would:
``RemoteServer(url).evaluate(batch)`` posts the bytes of an encrypted batch
to ``POST /evaluate`` and returns the bytes of the encrypted result, which
the key owner decrypts (``he.decrypt(...)`` accepts bytes).  It uses
:mod:`urllib.request`, so it works without the ``[serve]`` extra; nothing it
sends or receives is secret (ciphertexts and public metadata only).
"""
from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request

__all__ = ["RemoteServer", "RemoteError", "DEFAULT_TIMEOUT", "MAX_RESPONSE_BYTES"]

#: Default seconds :class:`RemoteServer` waits for an answer.
DEFAULT_TIMEOUT = 300.0
#: Largest response body :class:`RemoteServer` reads (a bound against a rogue server).
MAX_RESPONSE_BYTES = 1 << 30
_OCTETS = "application/octet-stream"


class RemoteError(ValueError):
    """An HTTP error status from a ``skhepex serve`` endpoint, with the server's message.

    Parameters
    ----------
    status : int
        HTTP status code (4xx: the request was refused; 5xx: the server failed).
    message : str
        The server's explanation.

    Attributes
    ----------
    status : int
        HTTP status code.
    """

    def __init__(self, status, message):
        super().__init__(f"HTTP {status}: {message}")
        self.status = int(status)


def _error_message(err):
    """The ``"error"`` field of an HTTP error's JSON body, else its text."""
    try:
        body = err.read(64 << 10)
    except OSError:
        body = b""
    try:
        return str(json.loads(body)["error"])
    except (ValueError, KeyError, TypeError):
        text = body.decode("utf-8", "replace").strip()
        return text or str(err.reason)


class RemoteServer:
    """Client of an encrypted-inference HTTP service started by ``skhepex serve``.

    Parameters
    ----------
    url : str
        Base address of the service, ``http://host:port`` (``https`` works
        behind a TLS proxy); a trailing slash is ignored.
    timeout : float, default=300.0
        Seconds to wait for a connection and for each answer.
    max_response_bytes : int, default=2**30
        Largest response accepted; a longer one raises ``RemoteError``.

    Attributes
    ----------
    url : str
        Base address, without trailing slash.

    Examples
    --------
    >>> server = RemoteServer("http://127.0.0.1:8000")  # doctest: +SKIP
    >>> raw = he.decrypt(server.evaluate(he.encrypt(X)))  # doctest: +SKIP
    """

    def __init__(self, url, *, timeout=DEFAULT_TIMEOUT, max_response_bytes=MAX_RESPONSE_BYTES):
        url = str(url).rstrip("/")
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"url must be http://host:port or https://..., got {url!r}")
        if parts.query or parts.fragment:
            raise ValueError(f"url must not have a query or fragment, got {url!r}")
        if not timeout > 0:
            raise ValueError(f"timeout must be positive, got {timeout!r}")
        self.url = url
        self.timeout = float(timeout)
        self.max_response_bytes = int(max_response_bytes)

    def __repr__(self):
        return f"RemoteServer({self.url!r})"

    def _request(self, path, data=None):
        """Body of the response to GET (``data=None``) or POST ``data`` at ``path``."""
        headers = {"Accept": f"{_OCTETS}, application/json"}
        if data is not None:
            headers["Content-Type"] = _OCTETS
        req = urllib.request.Request(self.url + path, data=data, headers=headers,
                                     method="GET" if data is None else "POST")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                length = resp.headers.get("Content-Length")
                if length is not None and int(length) > self.max_response_bytes:
                    raise RemoteError(resp.status, f"response of {length} bytes exceeds "
                                      f"max_response_bytes={self.max_response_bytes}")
                body = resp.read(self.max_response_bytes + 1)
        except urllib.error.HTTPError as err:
            with err:
                raise RemoteError(err.code, _error_message(err)) from None
        if len(body) > self.max_response_bytes:
            raise RemoteError(200, f"response exceeds max_response_bytes="
                                   f"{self.max_response_bytes}")
        return body

    def health(self):
        """Public metadata of the served model (``GET /health``).

        Returns
        -------
        info : dict
            ``status``, the model's ``input_size``/``output_size``, ``tile_shape``,
            ``ckks`` parameters, ``request_size_classes``, ``max_body_bytes``
            and the ``plan_id``/``key_id`` fingerprints; no key material.

        Raises
        ------
        RemoteError
            The server answered with an error status.
        """
        try:
            return json.loads(self._request("/health"))
        except ValueError as exc:
            if isinstance(exc, RemoteError):
                raise
            raise RemoteError(200, f"/health did not answer JSON ({exc})") from None

    def evaluate(self, batch):
        """Evaluate the served network on an encrypted batch (``POST /evaluate``).

        Parameters
        ----------
        batch : EncryptedBatch or bytes
            Output of ``he.encrypt(X)`` (or its ``serialize()`` bytes), encrypted
            under the keys of the served package.

        Returns
        -------
        result : bytes
            The serialized :class:`~skhepex.he.EncryptedResult`; pass it to
            ``he.decrypt``, which validates it.

        Raises
        ------
        RemoteError
            The server refused the batch (400: malformed, 409: another key or
            plan, 413: larger than the server's ``max_body_bytes``, 503: busy)
            or failed (5xx).  Connection errors (``OSError``) propagate.
        """
        if isinstance(batch, (bytes, bytearray, memoryview)):
            data = bytes(batch)
        elif callable(getattr(batch, "serialize", None)):
            data = batch.serialize()
        else:
            raise TypeError(f"batch must be an EncryptedBatch or bytes, got "
                            f"{type(batch).__name__}")
        try:
            return self._request("/evaluate", data)
        except (ConnectionError, urllib.error.URLError):
            # a server refusing an over-long body closes the connection while we
            # send it: say so when that is the reason
            limit = self._max_body_bytes()
            if limit is not None and len(data) > limit:
                raise RemoteError(413, f"the batch has {len(data)} bytes, more than the "
                                       f"server accepts ({limit}); encrypt fewer samples "
                                       f"per request") from None
            raise

    def _max_body_bytes(self):
        try:
            return int(self.health()["max_body_bytes"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
