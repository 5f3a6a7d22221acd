"""Keys kept across processes: save_client / load_client / save_server (three processes)."""
import os
import pickle
import stat
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from he_stages import fit_digits_mlp

from skhepex.he import HEPredictor, ServerModel

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def fitted(digits):
    clf = fit_digits_mlp(digits, (12,), 10)
    return clf, HEPredictor(clf, prefit=True, tile_shape=(8, 8)).fit(), digits[1][:20]


def _run(code, cwd):
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_keys_survive_three_processes(fitted, tmp_path):
    clf, he, X = fitted
    # process 1 (this one): encrypt, save keys, server package and the pickled predictor
    batch = he.encrypt(X)
    (tmp_path / "batch.bin").write_bytes(batch.serialize())
    he.save_client(tmp_path / "client.keys")
    he.save_server(tmp_path / "server.pkg")
    (tmp_path / "he.pkl").write_bytes(pickle.dumps(he))
    assert stat.S_IMODE(os.stat(tmp_path / "client.keys").st_mode) == 0o600
    # process 2: a server loaded from the package evaluates the old batch
    _run("""
        from skhepex.he import ServerModel
        server = ServerModel.load("server.pkg")
        assert not server.context.has_secret_key()
        res = server.evaluate(server.load_batch(open("batch.bin", "rb").read()))
        open("result.bin", "wb").write(res.serialize())
    """, tmp_path)
    # process 3: unpickle (no keys), load the client keys, decrypt
    out = _run("""
        import pickle, numpy as np
        he = pickle.loads(open("he.pkl", "rb").read())
        assert he.client_ is None
        he.load_client("client.keys")
        raw = he.decrypt(open("result.bin", "rb").read())
        np.save("raw.npy", raw)
        print("ok")
    """, tmp_path)
    assert "ok" in out
    np.testing.assert_allclose(np.load(tmp_path / "raw.npy"), clf.decision_function(X),
                               atol=1e-3)


def test_server_side_objects_cannot_decrypt(fitted, tmp_path):
    clf, he, X = fitted
    server = ServerModel.load(he.server_.serialize())
    for ctx in (server.context, he.server_.context):
        assert not ctx.has_secret_key()
        with pytest.raises(Exception):
            ctx.secret_key()
    # the package bytes contain no window of the secret key's bytes
    from skhepex.he.seal_tools import save_seal
    sk = save_seal(he.client_.context.secret_key().data)
    pkg = he.server_.serialize()
    for start in np.linspace(32, len(sk) - 64, 16).astype(int):
        assert sk[start:start + 48] not in pkg


def test_password_and_mismatch(fitted, tmp_path, digits):
    clf, he, X = fitted
    path = tmp_path / "k.keys"
    he.save_client(path, password="s3cret")
    clone_ = pickle.loads(pickle.dumps(he))
    with pytest.raises(ValueError, match="password"):
        clone_.load_client(path)
    with pytest.raises(ValueError, match="wrong password"):
        clone_.load_client(path, password="nope")
    clone_.load_client(path, password="s3cret")
    np.testing.assert_allclose(clone_.decrypt(he.server_.evaluate(he.encrypt(X))),
                               clf.decision_function(X), atol=1e-3)
    other = HEPredictor(clf, prefit=True, tile_shape=(4, 8)).fit()
    with pytest.raises(ValueError, match="another model"):
        other.load_client(path, password="s3cret")


def test_deployment_processes_need_no_scikit_learn(fitted, tmp_path):
    """A server process (ServerModel.load) and a client process (Client.load with
    the plan's bytes) import neither scikit-learn nor the compiler."""
    from skhepex.he.serialization import plan_to_bytes

    clf, he, X = fitted
    he.save_client(tmp_path / "client.keys", password="pw")
    he.save_server(tmp_path / "server.pkg")
    (tmp_path / "plan.bin").write_bytes(plan_to_bytes(he.plan_))
    np.save(tmp_path / "X.npy", X)
    _run("""
        import sys, numpy as np
        from skhepex.he.client import Client
        from skhepex.he.serialization import plan_from_bytes
        client = Client.load("client.keys", plan_from_bytes(open("plan.bin", "rb").read()),
                             password="pw")
        assert not client._galois              # a client process holds no Galois keys
        open("batch.bin", "wb").write(client.encrypt(np.load("X.npy")).serialize())
        assert "sklearn" not in sys.modules and "skhepex.he.compiler" not in sys.modules
    """, tmp_path)
    _run("""
        import sys
        from skhepex.he.server import ServerModel
        server = ServerModel.load("server.pkg")
        res = server.evaluate(server.load_batch(open("batch.bin", "rb").read()))
        open("result.bin", "wb").write(res.serialize())
        assert "sklearn" not in sys.modules and "skhepex.he.compiler" not in sys.modules
    """, tmp_path)
    _run("""
        import sys, numpy as np
        from skhepex.he.client import Client
        from skhepex.he.serialization import plan_from_bytes
        client = Client.load("client.keys", plan_from_bytes(open("plan.bin", "rb").read()),
                             password="pw")
        np.save("raw.npy", client.decrypt(client.load_result(open("result.bin", "rb").read())))
        assert "sklearn" not in sys.modules
    """, tmp_path)
    np.testing.assert_allclose(np.load(tmp_path / "raw.npy"), clf.decision_function(X),
                               atol=1e-3)


def test_client_load_checks_plan_password_and_file(fitted, tmp_path):
    from skhepex.he import Client
    from skhepex.he.serialization import SerializationError

    clf, he, X = fitted
    path = tmp_path / "k.keys"
    he.save_client(path)
    client = Client.load(path, he.plan_)
    assert client.key_id == he.client_.key_id
    np.testing.assert_allclose(client.decrypt(he.server_.evaluate(client.encrypt(X))),
                               clf.decision_function(X), atol=1e-3)
    other = HEPredictor(clf, prefit=True, tile_shape=(4, 8)).fit()
    with pytest.raises(ValueError, match="another model"):
        Client.load(path, other.plan_)
    he.save_client(path, password="pw")
    with pytest.raises(ValueError, match="password"):
        Client.load(path, he.plan_)
    with pytest.raises(ValueError, match="wrong password"):
        Client.load(path, he.plan_, password="nope")
    he.save_server(tmp_path / "server.pkg")
    with pytest.raises(SerializationError):
        Client.load(tmp_path / "server.pkg", he.plan_)


def test_key_file_overwrite_tightens_permissions(fitted, tmp_path):
    from skhepex.he.key_file import read_key_file

    clf, he, X = fitted
    path = tmp_path / "old.keys"
    path.write_bytes(b"stale")
    os.chmod(path, 0o644)
    he.save_client(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    data, header = read_key_file(path)
    assert header["key_id"] == he.client_.key_id and data == he.client_.save_context()
