"""The real ``skhepex serve`` service over HTTP: a subprocess on a loopback port."""

import json
import socket
import threading
import time
import urllib.error

import numpy as np
import pytest
from serve_helpers import call, read_all

from skhepex.serve import RemoteError, RemoteServer


def _encrypt(model, start, n):
    return model["he"].encrypt(model["X"][start:start + n])


def _expected(model, start, n):
    """Raw outputs of the same samples evaluated in-process."""
    he = model["he"]
    return he.decrypt(he.server_.evaluate(_encrypt(model, start, n)))


def test_health_is_public_metadata(served, model):
    status, headers, info = call(served.url, "GET", "/health")
    assert status == 200 and headers["content-type"] == "application/json"
    server = model["he"].server_
    plan = server.plan
    assert info["status"] == "ok"
    assert (info["input_size"], info["output_size"]) == (64, 10)
    assert info["tile_shape"] == [8, 8]
    assert {k: info["ckks"][k] for k in plan.params.to_dict()} == plan.params.to_dict()
    (size_class,) = info["request_size_classes"]
    assert size_class["samples_per_ciphertext"] == plan.batch
    assert size_class["max_samples_per_request"] >= plan.batch
    assert info["max_body_bytes"] == 16 << 20
    assert (info["plan_id"], info["key_id"]) == (server.plan_id, server.key_id)
    # public facts only: nothing key-sized, no key names
    text = json.dumps(info)
    assert len(text) < 2000
    assert "secret" not in text and "galois" not in text.lower()
    assert RemoteServer(served.url + "/").health() == info
    status, _, _ = call(served.url, "HEAD", "/health")
    assert status == 200


def test_round_trip_through_remote_server(served, model):
    he, X = model["he"], model["X"]
    result = RemoteServer(served.url).evaluate(he.encrypt(X[:100]))
    assert isinstance(result, bytes)
    raw = he.decrypt(result)
    assert raw.shape == (100, 10)
    np.testing.assert_allclose(raw, _expected(model, 0, 100), atol=1e-3)
    agree = (he.classes_[raw.argmax(1)] == model["clf"].predict(X[:100])).mean()
    assert agree >= 0.99
    # bytes in, bytes out; the answer carries the measured evaluation time
    status, headers, body = call(served.url, "POST", "/evaluate",
                                 he.encrypt(X[:3]).serialize(),
                                 {"Content-Type": "application/octet-stream"})
    assert status == 200 and headers["content-type"] == "application/octet-stream"
    assert headers["server-timing"].startswith("evaluate;dur=")
    np.testing.assert_allclose(he.decrypt(body), _expected(model, 0, 3), atol=1e-3)


def test_two_concurrent_clients(served, model):
    he = model["he"]
    jobs = {0: _encrypt(model, 0, 150), 1: _encrypt(model, 200, 70)}
    results, errors, health_seconds = {}, [], []
    start = threading.Barrier(2)

    def client(i):
        try:
            remote = RemoteServer(served.url)
            start.wait()
            for _ in range(2):
                results[i] = remote.evaluate(jobs[i])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(i,)) for i in jobs]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        t0 = time.perf_counter()
        assert RemoteServer(served.url).health()["status"] == "ok"
        health_seconds.append(time.perf_counter() - t0)
        time.sleep(0.02)
    for t in threads:
        t.join()
    assert not errors, errors
    # each client got the answer to its own request
    np.testing.assert_allclose(he.decrypt(results[0]), _expected(model, 0, 150), atol=1e-3)
    np.testing.assert_allclose(he.decrypt(results[1]), _expected(model, 200, 70), atol=1e-3)
    assert health_seconds and max(health_seconds) < 5  # evaluation runs off the event loop
    assert served.alive()


@pytest.mark.parametrize("case, message", [
    ("garbage", "bad magic prefix"),
    ("empty", "empty request body"),
    ("truncated", "checksum mismatch"),
    ("result", "expected 'EncryptedBatch'"),
    ("json", "bad magic prefix"),
])
def test_malformed_bodies_are_400(served, model, case, message):
    he = model["he"]
    good = _encrypt(model, 0, 5).serialize()
    body = {"garbage": b"\x00\xffnot a batch" * 100,
            "empty": b"",
            "truncated": good[:len(good) // 2],
            "result": he.server_.evaluate(good).serialize(),
            "json": json.dumps({"X": [[0.0] * 64]}).encode()}[case]
    status, _, answer = call(served.url, "POST", "/evaluate", body)
    assert status == 400
    assert message in answer["error"] and answer["status"] == 400
    with pytest.raises(RemoteError, match=message) as exc:
        RemoteServer(served.url).evaluate(body)
    assert exc.value.status == 400 and isinstance(exc.value, ValueError)
    assert served.alive() and RemoteServer(served.url).health()["status"] == "ok"


def test_foreign_key_and_foreign_plan(served, model):
    from skhepex import MLPClassifier
    from skhepex.he import HEPredictor

    X = model["X"]
    other_keys = HEPredictor(model["clf"], prefit=True, tile_shape=(8, 8)).fit()
    with pytest.raises(RemoteError, match="another key") as exc:
        RemoteServer(served.url).evaluate(other_keys.encrypt(X[:4]))
    assert exc.value.status == 409
    wide = MLPClassifier(hidden_layer_sizes=(16,), max_iter=2, random_state=0)
    other_plan = HEPredictor(wide.fit(X, np.arange(len(X)) % 10), prefit=True,
                             tile_shape=(8, 8)).fit()
    with pytest.raises(RemoteError) as exc:
        RemoteServer(served.url).evaluate(other_plan.encrypt(X[:4]))
    assert exc.value.status in (400, 409)
    assert served.alive()


def test_body_size_is_bounded(served, model):
    limit = 16 << 20
    # declared too long: refused before any byte of the body is read
    conn = socket.create_connection(("127.0.0.1", served.port), timeout=30)
    with conn:
        conn.sendall(b"POST /evaluate HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Length: 1000000000000\r\n\r\n")
        head = read_all(conn)
    assert head.startswith("HTTP/1.1 413") and "exceeds the limit" in head
    # streamed (chunked) past the limit: counted while reading

    def chunks():
        for _ in range(limit // (1 << 20) + 4):
            yield b"SKHEPEX\x02" + bytes((1 << 20) - 8)

    try:
        status, _, answer = call(served.url, "POST", "/evaluate", chunks(),
                                 {"Transfer-Encoding": "chunked"})
        assert status == 413 and "exceeds the limit" in answer["error"]
    except ConnectionError:
        pass  # the server may close before the client finishes sending: also a refusal
    # the client says why when the server closes on it
    with pytest.raises(RemoteError, match="more than the server accepts") as exc:
        RemoteServer(served.url).evaluate(b"SKHEPEX\x02" + bytes(limit + 1))
    assert exc.value.status == 413
    conn = socket.create_connection(("127.0.0.1", served.port), timeout=30)
    with conn:
        conn.sendall(b"POST /evaluate HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n")
        assert conn.recv(4096).startswith(b"HTTP/1.1 400")
    assert served.alive() and RemoteServer(served.url).health()["status"] == "ok"


def test_unknown_routes_and_methods(served):
    status, _, answer = call(served.url, "GET", "/predict")
    assert status == 404 and "POST /evaluate" in answer["error"]
    status, headers, answer = call(served.url, "GET", "/evaluate")
    assert status == 405 and headers["allow"] == "POST"
    status, _, _ = call(served.url, "POST", "/health", b"x")
    assert status == 405
    with pytest.raises(RemoteError) as exc:
        RemoteServer(served.url + "/nowhere").health()
    assert exc.value.status == 404


def test_remote_server_arguments_and_connection_errors():
    for url in ("ftp://host/x", "127.0.0.1:8000", "http://", "http://h:1/?q=1"):
        with pytest.raises(ValueError, match="url"):
            RemoteServer(url)
    with pytest.raises(ValueError, match="timeout"):
        RemoteServer("http://127.0.0.1:1", timeout=0)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    remote = RemoteServer(f"http://127.0.0.1:{port}", timeout=5)
    assert repr(remote) == f"RemoteServer('http://127.0.0.1:{port}')"
    with pytest.raises(urllib.error.URLError):
        remote.health()
    with pytest.raises(OSError):
        remote.evaluate(b"SKHEPEX\x02")
    with pytest.raises(TypeError, match="EncryptedBatch or bytes"):
        remote.evaluate([1, 2, 3])
