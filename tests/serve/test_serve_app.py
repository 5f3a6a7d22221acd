"""The ASGI application in-process (uvicorn in a thread): upload deadline, busy, 500s."""

import socket
import threading
import time
from contextlib import contextmanager

import pytest
from serve_helpers import call, free_port, read_all

pytest.importorskip("starlette")
uvicorn = pytest.importorskip("uvicorn")

from skhepex.serve import RemoteServer, create_app, public_metadata  # noqa: E402


@contextmanager
def serving(app):
    """Run ``app`` with uvicorn in a thread on a free loopback port."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}", port
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture(scope="module")
def server_model(model):
    return model["he"].server_


def _partial_upload(port, declared=1000, sent=10):
    """A connection that declares ``declared`` body bytes and sends ``sent``."""
    conn = socket.create_connection(("127.0.0.1", port), timeout=30)
    conn.sendall(b"POST /evaluate HTTP/1.1\r\nHost: x\r\n"
                 + f"Content-Length: {declared}\r\n\r\n".encode() + b"S" * sent)
    return conn


def test_create_app_checks_its_arguments(server_model, model):
    for name in ("max_body_bytes", "threads", "max_pending", "body_timeout"):
        with pytest.raises(ValueError, match=name):
            create_app(server_model, **{name: 0})
    app = create_app(model["package"])          # a path is loaded and validated
    assert app.state.service.metadata["key_id"] == server_model.key_id


def test_public_metadata_bounds_the_request_size(server_model):
    small = public_metadata(server_model, 1 << 20)["request_size_classes"][0]
    large = public_metadata(server_model, 64 << 20)["request_size_classes"][0]
    assert small["max_samples_per_request"] == 0     # one batch is ~4 MiB
    assert large["max_samples_per_request"] > 0
    assert large["max_samples_per_request"] % large["samples_per_ciphertext"] == 0


def test_slow_upload_gets_408_and_busy_server_503(server_model, model):
    app = create_app(server_model, body_timeout=1.0, max_pending=1)
    with serving(app) as (url, port):
        slow = _partial_upload(port)
        with slow:
            time.sleep(0.3)                     # the slow upload holds the only slot
            status, headers, answer = call(url, "POST", "/evaluate", b"x")
            assert status == 503 and headers["retry-after"] == "1"
            assert "busy" in answer["error"]
            assert call(url, "GET", "/health")[0] == 200     # /health is never refused
            head = read_all(slow)
        assert head.startswith("HTTP/1.1 408") and "not received within 1 s" in head
        he = model["he"]
        raw = he.decrypt(RemoteServer(url).evaluate(he.encrypt(model["X"][:2])))
        assert raw.shape == (2, 10)


def test_unexpected_errors_are_500_and_the_server_goes_on(server_model, model, monkeypatch):
    app = create_app(server_model)

    def broken(body):
        raise RuntimeError("boom")

    with serving(app) as (url, port):
        monkeypatch.setattr(app.state.service, "run", broken)
        status, _, answer = call(url, "POST", "/evaluate", b"SKHEPEX")
        assert status == 500 and answer["error"] == "internal server error (RuntimeError)"
        monkeypatch.undo()
        he = model["he"]
        assert he.decrypt(RemoteServer(url).evaluate(he.encrypt(model["X"][:2]))).shape == (2, 10)
