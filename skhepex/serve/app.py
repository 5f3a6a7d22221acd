"""The ASGI application (Starlette) serving one saved server package.

``GET /health`` answers the package's public metadata; ``POST /evaluate``
takes the bytes of an :class:`~skhepex.he.EncryptedBatch` and answers the
bytes of the :class:`~skhepex.he.EncryptedResult`.  Request bodies are
bounded (``Content-Length`` checked before reading, bytes counted while
streaming, a deadline on the upload); malformed or foreign bodies get a 4xx
with a JSON ``{"error": ...}`` message, and nothing a client sends reaches
beyond :meth:`ServerModel.load_batch`'s validation.

SEAL holds the GIL while it computes, so evaluation runs in worker threads
(at most ``threads`` at a time): ``/health`` stays responsive (measured: at
most ~10 ms of stall per SEAL call on the test network) while throughput is
that of one core.  For several cores, run several worker processes
(``skhepex serve --workers N``), each with its own copy of the model.
"""
from __future__ import annotations

import logging
import os
import time

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .. import __version__
from ..he import BindingError, SerializationError, ServerModel

__all__ = ["create_app", "app_from_environ", "public_metadata", "DEFAULT_MAX_BODY_BYTES",
           "DEFAULT_THREADS", "DEFAULT_MAX_PENDING", "DEFAULT_BODY_TIMEOUT", "ENVIRON"]

logger = logging.getLogger("skhepex.serve")

#: Default bound of a request body (64 MiB: ~1000 samples of the 64-input test network).
DEFAULT_MAX_BODY_BYTES = 64 << 20
#: Default number of evaluations run at once (threads; SEAL holds the GIL).
DEFAULT_THREADS = 2
#: Default number of ``/evaluate`` requests in progress (uploading, queued or
#: evaluating) before new ones are answered 503; bounds memory to about
#: ``max_pending * max_body_bytes``.
DEFAULT_MAX_PENDING = 8
#: Default seconds allowed to upload one request body (answered 408 after).
DEFAULT_BODY_TIMEOUT = 120.0
#: Environment variables read by :func:`app_from_environ` (``--workers``).
ENVIRON = {"package": "SKHEPEX_SERVE_PACKAGE", "max_body_bytes": "SKHEPEX_SERVE_MAX_BODY",
           "threads": "SKHEPEX_SERVE_THREADS", "max_pending": "SKHEPEX_SERVE_MAX_PENDING"}
_OCTETS = "application/octet-stream"
_HINT = "POST the bytes of EncryptedBatch.serialize() (he.encrypt(X).serialize())"


def _ciphertext_bytes(plan):
    """Upper bound of one serialized input ciphertext (two polynomials, all primes)."""
    return 2 * len(plan.primes) * plan.params.poly_modulus_degree * 8 + 4096


def public_metadata(server, max_body_bytes=DEFAULT_MAX_BODY_BYTES):
    """Public description of a server package: what ``GET /health`` answers.

    Only public facts: sizes, tile shape, CKKS parameters and the
    fingerprints (SHA-256) of the plan and of the public key -- no key
    material, no weights.

    Parameters
    ----------
    server : ServerModel
        The served model.
    max_body_bytes : int, default=64 MiB
        The request-body bound, reported with the largest request it admits.

    Returns
    -------
    info : dict
        JSON-serialisable metadata.
    """
    plan = server.plan
    n_ct = len(plan.stages[0].live_in)
    per_batch = n_ct * (_ciphertext_bytes(plan) + 64)     # + index/spec in the header
    max_batches = max((int(max_body_bytes) - 4096) // per_batch, 0)
    return {
        "status": "ok",
        "service": "skhepex",
        "version": __version__,
        "name": server.name,
        "input_size": int(plan.n_features),
        "output_size": int(plan.n_outputs),
        "tile_shape": [int(v) for v in plan.tile_shape],
        "encrypted_weights": bool(plan.encrypted_weights),
        "ckks": dict(plan.params.to_dict(), n_slots=int(plan.params.n_slots),
                     multiplicative_depth=int(plan.depth)),
        # one class per plan in the package (a package holds one plan today)
        "request_size_classes": [{
            "samples_per_ciphertext": int(plan.batch),
            "ciphertexts_per_batch": n_ct,
            "max_bytes_per_batch": per_batch,
            "max_samples_per_request": max_batches * int(plan.batch),
        }],
        "max_body_bytes": int(max_body_bytes),
        "plan_id": server.plan_id,
        "key_id": server.key_id,
    }


def _error(status, message, headers=None):
    return JSONResponse({"error": message, "status": status}, status_code=status,
                        headers=headers)


class _Service:
    """The state behind the two endpoints (one per application)."""

    def __init__(self, server, max_body_bytes, threads, max_pending, body_timeout):
        self.server = server
        self.max_body_bytes = int(max_body_bytes)
        self.threads = int(threads)
        self.max_pending = int(max_pending)
        self.body_timeout = float(body_timeout)
        self.metadata = public_metadata(server, self.max_body_bytes)
        self.pending = 0
        self.limiter = None   # created in the event loop, on first use

    async def health(self, request):
        return JSONResponse(self.metadata)

    async def read_body(self, request):
        """The body, or an error response (400, 408, 413)."""
        limit = self.max_body_bytes
        length = request.headers.get("content-length")
        if length is not None:
            try:
                n = int(length)
                if n < 0:
                    raise ValueError
            except ValueError:
                return _error(400, f"invalid Content-Length {length!r}")
            if n > limit:
                return _error(413, f"request body of {n} bytes exceeds the limit of {limit} "
                                   "bytes; encrypt fewer samples per request",
                              {"Connection": "close"})
        chunks, size = [], 0
        try:
            with anyio.fail_after(self.body_timeout):
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > limit:
                        return _error(413, f"request body exceeds the limit of {limit} "
                                           "bytes; encrypt fewer samples per request",
                                      {"Connection": "close"})
                    chunks.append(chunk)
        except TimeoutError:
            return _error(408, f"request body not received within {self.body_timeout:g} s",
                          {"Connection": "close"})
        except ClientDisconnect:
            return _error(400, "client disconnected during the upload")
        return b"".join(chunks)

    def run(self, body):
        """Load, evaluate and serialize (in a worker thread)."""
        t0 = time.perf_counter()
        result = self.server.evaluate(self.server.load_batch(body))
        return result.serialize(), time.perf_counter() - t0

    async def evaluate(self, request):
        if self.pending >= self.max_pending:
            return _error(503, f"busy: {self.pending} requests in progress; retry later",
                          {"Retry-After": "1"})
        self.pending += 1
        try:
            body = await self.read_body(request)
            if isinstance(body, Response):
                return body
            if not body:
                return _error(400, f"empty request body; {_HINT}")
            if self.limiter is None:
                self.limiter = anyio.CapacityLimiter(self.threads)
            try:
                data, seconds = await anyio.to_thread.run_sync(self.run, body,
                                                               limiter=self.limiter)
            except SerializationError as exc:
                return _error(400, f"not a valid encrypted batch for this model: {exc}. "
                                   f"{_HINT}")
            except BindingError as exc:
                return _error(409, f"{exc}; encrypt with the keys of the served package "
                                   f"(key_id {self.server.key_id[:12]}...)")
            except (ValueError, TypeError) as exc:
                return _error(400, f"invalid encrypted batch: {exc}")
            return Response(data, media_type=_OCTETS,
                            headers={"Server-Timing": f"evaluate;dur={1e3 * seconds:.1f}"})
        finally:
            self.pending -= 1


async def _http_error(request, exc):
    return _error(exc.status_code, f"{exc.detail}: {request.method} {request.url.path} "
                                   "(endpoints: GET /health, POST /evaluate)",
                  getattr(exc, "headers", None))


async def _internal_error(request, exc):
    logger.error("internal error on %s %s: %r", request.method, request.url.path, exc)
    return _error(500, f"internal server error ({type(exc).__name__})")


def create_app(server, *, max_body_bytes=DEFAULT_MAX_BODY_BYTES, threads=DEFAULT_THREADS,
               max_pending=DEFAULT_MAX_PENDING, body_timeout=DEFAULT_BODY_TIMEOUT):
    """ASGI application serving one server package (``GET /health``, ``POST /evaluate``).

    Parameters
    ----------
    server : ServerModel or bytes or path-like
        The model, or a package written by ``he.save_server`` (loaded and
        validated with :meth:`ServerModel.load`).
    max_body_bytes : int, default=64 MiB
        Largest request body; longer ones are answered 413 without being read.
    threads : int, default=2
        Evaluations run at once, in worker threads.
    max_pending : int, default=8
        ``/evaluate`` requests in progress before new ones are answered 503.
    body_timeout : float, default=120.0
        Seconds allowed to upload a body (408 after).

    Returns
    -------
    app : starlette.applications.Starlette
        Serve it with any ASGI server (``uvicorn.run(app)``).
    """
    if not isinstance(server, ServerModel):
        server = ServerModel.load(server)
    for name, value in (("max_body_bytes", max_body_bytes), ("threads", threads),
                        ("max_pending", max_pending), ("body_timeout", body_timeout)):
        if not value > 0:
            raise ValueError(f"{name} must be positive, got {value!r}")
    service = _Service(server, max_body_bytes, threads, max_pending, body_timeout)
    app = Starlette(routes=[Route("/health", service.health, methods=["GET"]),
                            Route("/evaluate", service.evaluate, methods=["POST"])],
                    exception_handlers={HTTPException: _http_error,
                                        Exception: _internal_error})
    app.state.service = service
    return app


def app_from_environ():
    """Application built from the :data:`ENVIRON` variables (worker processes).

    ``skhepex serve --workers N`` sets them and lets uvicorn start ``N``
    processes that each call this factory.

    Returns
    -------
    app : starlette.applications.Starlette
        See :func:`create_app`.
    """
    env = os.environ
    kw = {key: int(env[var]) for key, var in ENVIRON.items()
          if key != "package" and var in env}
    return create_app(env[ENVIRON["package"]], **kw)
