"""The ``skhepex serve`` command: arguments, light imports, start-up failures, workers."""

import signal
import socket
import subprocess
import sys

import numpy as np
import pytest
from serve_helpers import running_server

from skhepex.cli import DEFAULT_HOST, DEFAULT_PORT, build_parser, main
from skhepex.serve import RemoteServer

HEAVY = ("numpy", "sklearn", "scipy", "tenseal", "matplotlib", "starlette", "uvicorn",
         "anyio")


def _loaded_in_subprocess(code):
    code += f"\nimport sys\nprint(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    return [m for m in out.stdout.strip().split(",") if m]


def test_serve_help_imports_no_heavy_module():
    assert _loaded_in_subprocess(
        "from skhepex.cli import build_parser\n"
        "p = build_parser()\n"
        "p.parse_args(['serve', 'server.pkg', '--port', '9000'])\n"
        "p._subparsers._group_actions[0].choices['serve'].format_help()\n"
        "p.format_help()") == []
    # the client needs neither the [serve] extra nor TenSEAL
    assert _loaded_in_subprocess(
        "from skhepex.serve import RemoteServer, RemoteError\n"
        "RemoteServer('http://127.0.0.1:8000')") == []
    out = subprocess.run([sys.executable, "-m", "skhepex", "serve", "--help"],
                         capture_output=True, text=True, check=True).stdout
    for text in ("GET /health", "POST /evaluate", "--max-body-mb", "--workers"):
        assert text in out


def test_serve_defaults_bind_loopback():
    args = build_parser().parse_args(["serve", "server.pkg"])
    assert (args.host, args.port) == (DEFAULT_HOST, DEFAULT_PORT) == ("127.0.0.1", 8000)
    assert args.max_body_mb == 64 and args.workers == 1


@pytest.mark.parametrize("extra, message", [
    (["--port", "70000"], "--port"),
    (["--max-body-mb", "0"], "--max-body-mb"),
    (["--max-body-mb", "inf"], "--max-body-mb"),
    (["--threads", "0"], "at least 1"),
    (["--workers", "0"], "at least 1"),
])
def test_serve_argument_errors(model, extra, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["serve", str(model["package"]), *extra])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_serve_needs_a_package_file(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["serve", str(tmp_path / "missing.pkg")])
    assert exc.value.code == 2
    assert "is not a file" in capsys.readouterr().err


def test_serve_refuses_an_invalid_package(tmp_path, capsys):
    bad = tmp_path / "bad.pkg"
    bad.write_bytes(b"not a package")
    assert main(["serve", str(bad), "--quiet"]) == 1
    assert "cannot load the server package" in capsys.readouterr().err


def test_serve_reports_a_taken_port(model):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        out = subprocess.run([sys.executable, "-m", "skhepex", "serve",
                              str(model["package"]), "--port", str(port)],
                             capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    assert "address already in use" in out.stderr.lower()


def test_serve_worker_processes(model):
    he, X = model["he"], model["X"]
    with running_server(model["package"], "--workers", "2") as srv:
        remote = RemoteServer(srv.url)
        assert remote.health()["key_id"] == he.server_.key_id
        raw = he.decrypt(remote.evaluate(he.encrypt(X[:10])))
        np.testing.assert_allclose(raw, he.decrypt(he.server_.evaluate(he.encrypt(X[:10]))),
                                   atol=1e-3)
        assert srv.alive()


def test_serve_stops_cleanly_on_ctrl_c(model):
    with running_server(model["package"]) as srv:
        srv.proc.send_signal(signal.SIGINT)
        assert srv.proc.wait(timeout=30) == 0
        log = srv.log_text()
    assert "Traceback" not in log and "Finished server process" in log
