"""The reliability cases of the issue "Encrypted results you can trust", measured.

Run by hand (never by CI)::

    python benchmarks/reliability.py --out benchmarks/results/reliability.json

Each case runs in its own subprocess (peak RSS per case):

* ``wrap_regression``: MLPRegressor(16,) on digits, targets y + 300, defaults,
  4096 samples -> max abs error (or the exception raised);
* ``wrap_classifier``: MLPClassifier(16,), tile (8, 8), inputs x10 and x100 ->
  argmax agreement with plaintext (or the exception raised);
* ``bomb``: a crafted ~1 MB batch -> seconds and RSS growth until refused;
* ``huge_header``: a batch header claiming 10**9 samples -> refused?;
* ``stream``: RSS growth of ``predict`` on 2,000 and 20,000 samples;
* ``simulate_fit``: ``fit(mode="simulate")`` of a 6-hidden-layer network, seconds.
"""
import argparse
import json
import subprocess
import sys
import textwrap

CASES = {
    "wrap_regression": """
        import numpy as np
        from sklearn.datasets import load_digits
        from skhepex import MLPRegressor
        from skhepex.he import HEPredictor
        X, y = load_digits(return_X_y=True); X = X / 16
        reg = MLPRegressor(hidden_layer_sizes=(16,), max_iter=60, random_state=0).fit(X, y + 300.0)
        he = HEPredictor(reg, prefit=True).fit()
        Xs = np.resize(X, (4096, 64))
        try:
            err = float(np.abs(he.predict(Xs) - reg.predict(Xs)).max())
            out = dict(max_abs_error=err, outcome="correct" if err < 1e-2 else "WRONG")
        except ValueError as exc:
            out = dict(outcome="refused", error=type(exc).__name__ + ": " + str(exc)[:160])
    """,
    "wrap_classifier": """
        import numpy as np
        from sklearn.datasets import load_digits
        from skhepex import MLPClassifier
        from skhepex.he import HEPredictor
        X, y = load_digits(return_X_y=True); X = X / 16
        clf = MLPClassifier(hidden_layer_sizes=(16,), max_iter=30, random_state=0).fit(X, y)
        he = HEPredictor(clf, prefit=True, tile_shape=(8, 8)).fit()
        out = {}
        for f in (10, 100):
            try:
                agree = float((he.predict(X[:500] * f) == clf.predict(X[:500] * f)).mean())
                err = float(np.abs(he.decision_function(X[:500] * f)
                                   - clf.decision_function(X[:500] * f)).max())
                out[f"x{f}"] = dict(agreement=agree, max_abs_error=err,
                                    outcome="correct" if err < 1e-2 * max(1, np.abs(clf.decision_function(X[:500] * f)).max()) else "WRONG")
            except ValueError as exc:
                out[f"x{f}"] = dict(outcome="refused", error=type(exc).__name__ + ": " + str(exc)[:160])
    """,
    "bomb": """
        import time, zlib, io, numpy as np
        from sklearn.datasets import load_digits
        from skhepex import MLPClassifier
        from skhepex.he import HEPredictor, ServerModel
        from skhepex.he.serialization import pack
        X, y = load_digits(return_X_y=True); X = X / 16
        clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=5, random_state=0).fit(X, y)
        he = HEPredictor(clf, prefit=True, tile_shape=(8, 8)).fit()
        server = he.server_
        good = he.encrypt(X[:10]).serialize()
        # crafted: many tiny entries claiming ciphertexts, plus a zero-filled 1 MB array
        arrays = {f"0_{q}": np.zeros(1 << 20, np.uint8) for q in range(1)}
        bad = pack("EncryptedBatch", dict(n_samples=10**6, plan_id=server.plan_id,
                                          key_id=server.key_id, index=[[0]] * 1000), arrays)
        rss0 = rss()
        t0 = time.perf_counter()
        try:
            server.evaluate(bad); outcome = "accepted"
        except ValueError as exc:
            outcome = "refused: " + str(exc)[:120]
        out = dict(bytes=len(bad), seconds=time.perf_counter() - t0,
                   rss_growth_mb=(rss() - rss0) / 1024, outcome=outcome)
    """,
    "huge_header": """
        from skhepex.he.serialization import pack, unpack
        from skhepex.he.wire import EncryptedBatch
        data = pack("EncryptedBatch", dict(n_samples=10**9, plan_id="", key_id="", index=[]), {})
        import numpy as np
        from sklearn.datasets import load_digits
        from skhepex import MLPClassifier
        from skhepex.he import HEPredictor
        X, y = load_digits(return_X_y=True)
        clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=5, random_state=0).fit(X / 16, y)
        he = HEPredictor(clf, prefit=True, tile_shape=(8, 8)).fit()
        rss0 = rss()
        try:
            he.server_.load_batch(data); outcome = "accepted"
        except ValueError as exc:
            outcome = "refused: " + str(exc)[:120]
        out = dict(outcome=outcome, rss_growth_mb=(rss() - rss0) / 1024)
    """,
    "stream": """
        import numpy as np
        from sklearn.datasets import load_digits
        from skhepex import MLPClassifier
        from skhepex.he import HEPredictor
        X, y = load_digits(return_X_y=True); X = X / 16
        clf = MLPClassifier(hidden_layer_sizes=(16,), max_iter=30, random_state=0).fit(X, y)
        he = HEPredictor(clf, prefit=True, tile_shape=(8, 8)).fit()
        he.predict(X[:64])
        small, large = np.resize(X, (N_SMALL, 64)), np.resize(X, (N_LARGE, 64))
        r0 = rss(); he.predict(small); r1 = rss()
        he.predict(large); r2 = rss()
        out = dict(rss_growth_small_mb=(r1 - r0) / 1024, rss_growth_large_mb=(r2 - r0) / 1024)
    """,
    "simulate_fit": """
        import time
        import numpy as np
        from sklearn.datasets import load_digits
        from skhepex import MLPClassifier
        from skhepex.he import HEPredictor
        X, y = load_digits(return_X_y=True); X = X / 16
        clf = MLPClassifier(hidden_layer_sizes=(32,) * 6, max_iter=3, random_state=0).fit(X, y)
        t0 = time.perf_counter()
        he = HEPredictor(clf, prefit=True, mode="simulate").fit()
        out = dict(seconds=time.perf_counter() - t0, tile_shape=list(he.tile_shape_))
    """,
}

PRELUDE = """
import json, resource, warnings
warnings.filterwarnings("ignore")
N_SMALL, N_LARGE = 2000, int(__import__("os").environ.get("N_LARGE", 20000))
def rss():   # peak RSS in kB: VmHWM (ru_maxrss survives fork + exec: it floors at the parent's)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
"""


def run(name, python=sys.executable, env=None):
    code = PRELUDE + textwrap.dedent(CASES[name]) + "\nprint(json.dumps(out))\n"
    proc = subprocess.run([python, "-c", code], capture_output=True, text=True, env=env,
                          timeout=1800)
    if proc.returncode != 0:
        return dict(outcome="crashed", stderr=proc.stderr[-400:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", help="write JSON results here")
    p.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES),
                   help="cases to run")
    args = p.parse_args()
    res = {}
    for name in args.cases:
        res[name] = run(name)
        print(name, json.dumps(res[name]))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
