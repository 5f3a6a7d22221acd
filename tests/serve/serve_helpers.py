"""Helpers of the ``skhepex serve`` tests (imported as ``from serve_helpers import ...``).

:func:`running_server` starts the real service (``python -m skhepex serve``)
on a free loopback port in a subprocess, waits for ``GET /health`` and always
terminates it; :func:`call` sends one raw request with :mod:`http.client`.
"""

import json
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from http.client import HTTPConnection
from pathlib import Path

#: Seconds to wait for a started server to answer ``/health``.
READY_TIMEOUT = 60.0


def free_port():
    """A TCP port free on 127.0.0.1 (bind port 0, read it, release it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Served:
    """A running ``skhepex serve`` subprocess."""

    url: str
    port: int
    proc: subprocess.Popen
    log: Path

    def log_text(self):
        return self.log.read_text(errors="replace")

    def alive(self):
        return self.proc.poll() is None


def _wait_ready(served, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not served.alive():
            return False
        try:
            with urllib.request.urlopen(served.url + "/health", timeout=2) as r:
                if r.status == 200:
                    return True
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)
    raise TimeoutError(f"skhepex serve not ready after {timeout} s:\n{served.log_text()}")


def _stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:  # pragma: no cover - stuck server
            proc.kill()
            proc.wait()


@contextmanager
def running_server(package, *args, timeout=READY_TIMEOUT):
    """Run ``python -m skhepex serve package --port P *args`` on a free port.

    Yields a :class:`Served`; the subprocess is terminated on exit, whatever
    happens.  A port taken between :func:`free_port` and the bind is retried.
    """
    with tempfile.TemporaryDirectory(prefix="skhepex_serve_") as tmp:
        for attempt in range(3):
            port = free_port()
            log = Path(tmp) / f"serve{attempt}.log"
            cmd = [sys.executable, "-m", "skhepex", "serve", str(package),
                   "--host", "127.0.0.1", "--port", str(port), *args]
            with open(log, "wb") as out:
                proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
            served = Served(f"http://127.0.0.1:{port}", port, proc, log)
            try:
                if _wait_ready(served, timeout):
                    yield served
                    return
                if "address already in use" not in served.log_text().lower():
                    raise RuntimeError(f"skhepex serve exited with {proc.returncode}:\n"
                                       f"{served.log_text()}")
            finally:
                _stop(proc)
        raise RuntimeError("no free port found in 3 attempts")  # pragma: no cover


def call(url, method, path, body=None, headers=None, timeout=60):
    """One raw request: ``(status, headers, body)``; JSON bodies are decoded."""
    host, port = url.split("//")[1].split(":")
    conn = HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
    finally:
        conn.close()
    if data and resp.getheader("content-type", "").startswith("application/json"):
        data = json.loads(data)
    return resp.status, dict(resp.getheaders()), data


def read_all(conn):
    """Everything the server sends on a raw socket until it closes the connection."""
    data = b""
    while chunk := conn.recv(4096):
        data += chunk
    return data.decode(errors="replace")
