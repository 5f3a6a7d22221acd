"""Side-by-side benchmark: skhepex against IBM HElayers (pyhelayers) on the same weights.

pyhelayers is an *optional peer* of this benchmark only (never a dependency of
skhepex); install it and the ONNX writer with::

    pip install pyhelayers onnx

What is compared, for every network x variant x request size ``B``:

- networks (square activations, float64 weights): ``64-128-10`` and
  ``64-128-128-10`` (``MLPClassifier`` trained on digits / 16, 25% held out,
  stratified, seed 0; evaluated on the held-out samples), and
  ``784-256-128-10`` with random weights (an ``MLPClassifier`` fitted for one
  epoch on random 784-feature data, its weights then overwritten with scaled
  Gaussian weights so that every pre-activation has unit standard deviation
  and the logits are O(1-10); inputs uniform in [0, 1]);
- variants: ``dense``, and ``pruned`` -- HE-PEx (MagnitudePruner(0.8,
  global) -> Permuter -> TilePruner(0.5)) applied to the dense weights with
  the tile shape skhepex picks for the dense network at this ``B`` (the
  first skhepex dense run's ``tile_shape_``): the pruning is per request size,
  because the layout is.  For the digits networks this is exactly what
  ``HEPEx(...).fit`` does after its dense stage; the steps are applied to the
  already-trained dense network (for the random network HEPEx would retrain
  it), fine-tuned on the training data (random network: on random inputs
  labelled by the random network itself);
- variant ``hepex``: the deployment path of the package, ``HEPEx(MLPClassifier(...),
  variant_steps("PPTE"), tile_shape="auto", request_size=B,
  search={"tiles__tile_sparsity": HEPEX_BUDGETS}, random_state=0)`` fitted on
  the training data: the tile shape is chosen for ``B`` before pruning and the
  budget is the fewest ciphertexts within 2.5% of dense accuracy on a
  validation split of the training data (the test accuracy is recorded, never
  used).  The digits networks use the digits split; 784-256-128-10 uses digits
  upscaled to 28 x 28 (``digits_split(upscale=True)``), a real task for its 784 inputs,
  while its dense variant keeps the random weights (a dense network's HE cost
  does not depend on its weights).  The rendered page compares it with the
  *dense* network on HElayers and on skhepex, cells of the same run;
- request sizes ``B`` = 1, 16, 64, 256 samples;
- weights stay plaintext on the server for both systems.

Both systems get the very same weights: skhepex the pickled estimator,
HElayers an ONNX graph written here (``Gemm`` with ``transB=1``, weights as
(out, in) in float64, ``Mul(x, x)`` for the square), loaded with
``NeuralNetPlain.init_from_files``; its plaintext forward is checked against
the float64 NumPy forward before anything is timed.  The pruned network is
exported in skhepex's packed (permuted) order, so that the zeros HE-PEx
gathered into tiles are contiguous for HElayers too; inputs are permuted and
outputs un-permuted on the client (as skhepex does).

skhepex: ``HEPredictor(net, prefit=True, batch_size=B, mode="simulate").fit()``
in the parent packs the network (automatic layout for ``B``; the pruned and
HE-PEx variants pack with the tile shape they were pruned for) and writes the
plan (``plan_to_bytes``), the client's encoded inputs and the output map.
The worker is a deployed client + server in one process, without the
estimator or scikit-learn. It runs:

1. ``plan_from_bytes``;
2. ``Client(plan)`` (keys);
3. ``client.server_model(plan)`` (weights encoded);
4. round trips ``client.encrypt`` -> ``server.evaluate`` -> ``client.decrypt``.

This is the work ``HEPredictor.fit`` and ``decision_function`` do after
packing, and the work HElayers' worker does after loading its ONNX model.
``--skhepex-flow predictor`` runs ``HEPredictor`` in the worker instead. That
process also imports scikit-learn: about 110 MB more RSS, and the same
times.  HElayers: ``HeRunRequirements`` with the default context (SEAL CKKS),
``optimize_for_batch_size(B)``, ``set_model_encrypted(False)``,
``HeModel.compile`` -> ``create_context`` -> ``encode``; for the pruned
variant the internal flag ``pruneZeroPTiles`` is set right after ``encode``.

Measured per run (each system in its own subprocess, one per network x variant
x B x repeat, ``OMP_NUM_THREADS=1``; subprocesses alternate skhepex,
HElayers, skhepex, HElayers, ...; one warm-up round trip in each before
timing):

- end to end: client input encoding + encryption + server evaluation +
  decryption + decoding of ``B`` samples (skhepex ``client.encrypt`` +
  ``server.evaluate`` + ``client.decrypt``, or ``decision_function``;
  HElayers ``ModelIoEncoder.encode_encrypt`` + ``predict`` +
  ``decrypt_decode_output``), in ms per sample;
- server only: the evaluation of the encrypted batch (skhepex: the stage
  seconds ``server.evaluate`` records; HElayers ``HeModel.predict``), ms per sample;
- the same two in process CPU time (for skhepex's server part: ``server.evaluate``
  timed from outside, like HElayers' ``predict``): the CPU time is less sensitive to
  other jobs on a shared machine than the wall time;
- peak RSS of the subprocess (``VmHWM``: ``ru_maxrss`` survives ``fork`` +
  ``exec`` on Linux, so it would floor every worker at the parent's RSS), its
  RSS after the imports and once the model is packed and the keys exist;
- the max abs error of the decrypted logits against the float64 NumPy
  forward (``net.decision_function``);
- each system's layout (tile shape, samples per ciphertext) and CKKS
  parameters (N, prime chain, scale).

Each timed quantity is the median of ``--inner`` timings inside a
subprocess (one timing when the warm-up round trip took longer than
``--long-roundtrip`` seconds); the table reports the median over the ``--repeats``
subprocesses and the ratio skhepex / HElayers of those medians (< 1: skhepex
faster / smaller).  A network HElayers (or skhepex) cannot build is recorded
with its error and the benchmark moves on.

Usage::

    python benchmarks/vs_helayers.py --quick --out /tmp/vs_helayers_quick.json   # ~1 min
    python benchmarks/vs_helayers.py --out benchmarks/results/vs_helayers.json   # 2-3 h
    python benchmarks/vs_helayers.py --networks 64-128-10 --batches 1 16 --repeats 3
    python benchmarks/vs_helayers.py --variants dense hepex --out NEW.json   # HE-PEx deployment
    python benchmarks/vs_helayers.py --out benchmarks/results/vs_helayers.json \\
        --merge NEW.json "reason"            # replace / add the cells of a partial re-run
    python benchmarks/vs_helayers.py --render benchmarks/results/vs_helayers.json \\
        --rst docs/vs_helayers.rst          # (re)write the documentation page
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"          # before NumPy / SEAL / HElayers start any pool

import argparse
import copy
import json
import math
import pickle
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import warnings

import numpy as np

NETWORKS = {
    "64-128-10": dict(hidden=(128,), data="digits"),
    "64-128-128-10": dict(hidden=(128, 128), data="digits"),
    "784-256-128-10": dict(hidden=(256, 128), data="random"),
}
BATCHES = (1, 16, 64, 256)
VARIANTS = ("dense", "pruned", "hepex")
#: Tile budgets ``HEPEx(search=...)`` chooses from (those of ``skhepex demo``'s PPTE grid).
HEPEX_BUDGETS = (0.3, 0.5, 0.7, 0.8, 0.85, 0.9, 0.93)
SYSTEMS = ("skhepex", "helayers")
MB = 2.0 ** 20


# ============================================================== helpers
def _proc_status(field):
    """A ``/proc/self/status`` memory field in bytes (Linux), or None."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:  # pragma: no cover - not Linux
        return None
    return None


def _rss_now():
    """Current resident set size in bytes (Linux /proc), or None."""
    return _proc_status("VmRSS")


def _peak_rss():
    """Peak RSS of this process in bytes: ``VmHWM``, the high-water mark of its own memory.

    Not ``ru_maxrss``: on Linux it survives ``fork`` + ``exec``, so a worker
    would report at least the RSS the parent had when it started it.
    """
    hwm = _proc_status("VmHWM")
    if hwm is not None:
        return hwm
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss   # pragma: no cover
    return int(kb) * (1 if sys.platform == "darwin" else 1024)


def _median(values):
    values = [v for v in values if v is not None]
    return float(np.median(values)) if values else None


def _timed(fn, inner):
    """Median wall and CPU seconds of ``inner`` calls of ``fn`` (after the caller's warm-up)."""
    wall, cpu, out = [], [], None
    for _ in range(inner):
        c0, t0 = time.process_time(), time.perf_counter()
        out = fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return float(np.median(wall)), float(np.median(cpu)), out


def _inner(spec, warmup_s):
    """Timings inside a subprocess: ``--inner``, or 1 when a round trip is long."""
    return 1 if warmup_s > spec.get("long_s", 20.0) else int(spec["inner"])


# ============================================================== networks
def forward64(coefs, intercepts, X):
    """Float64 NumPy forward of a square-activation MLP (sklearn weight orientation)."""
    h = np.asarray(X, dtype=np.float64)
    for i, (W, b) in enumerate(zip(coefs, intercepts)):
        h = h @ W + b
        if i < len(coefs) - 1:
            h = h * h
    return h


def build_network(name, quick=False):
    """The dense network, its training data and the evaluation inputs."""
    from sklearn.exceptions import ConvergenceWarning

    from skhepex import MLPClassifier

    spec = NETWORKS[name]
    if spec["data"] == "digits":
        X_tr, X_te, y_tr, _ = digits_split()
        net = MLPClassifier(hidden_layer_sizes=spec["hidden"], activation="square",
                            max_iter=30 if quick else 200, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            net.fit(X_tr, y_tr)
        X_eval = X_te[:max(BATCHES)]
        return net, X_tr, y_tr, X_eval
    rng = np.random.default_rng(0)
    n_in = 784
    X_tr = rng.random((1024, n_in))
    y_tr = rng.integers(0, 10, len(X_tr))
    y_tr[:10] = np.arange(10)
    net = MLPClassifier(hidden_layer_sizes=spec["hidden"], activation="square", max_iter=1,
                        random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        net.fit(X_tr, y_tr)
    h = X_tr
    for i in range(len(net.coefs_)):          # views on the layers: overwrite in place
        W = rng.standard_normal(net.coefs_[i].shape)
        b = 0.1 * rng.standard_normal(net.intercepts_[i].shape)
        z = h @ W + b
        last = i == len(net.coefs_) - 1
        scale = (3.0 if last else 1.0) / z.std()            # logits O(1-10)
        if not last:                                       # centred unit pre-activations
            b = b - z.mean(axis=0)
        net.coefs_[i][...] = W * scale
        net.intercepts_[i][...] = b * scale
        h = h @ net.coefs_[i] + net.intercepts_[i]
        if not last:
            h = h * h
    y_tr = net.predict(X_tr)                 # labels of the random network itself
    X_eval = np.random.default_rng(1).random((max(BATCHES), n_in))
    return net, X_tr, y_tr, X_eval


def prune_network(dense, X_tr, y_tr, tile_shape, quick=False):
    """HE-PEx (prune -> permute -> tile-prune) of a copy of ``dense`` at ``tile_shape``.

    The steps ``HEPEx`` would apply after its dense stage, applied to the
    already-trained dense network (so that the dense and pruned variants share
    their starting weights, and the random network is not retrained).
    """
    from sklearn.exceptions import ConvergenceWarning

    from skhepex import MagnitudePruner, Permuter, TilePruner
    from skhepex.tiling import TileLayout

    ft = 2 if quick else 10
    steps = [("prune", MagnitudePruner(sparsity=0.8, scope="global", fine_tune_iter=ft)),
             ("permute", Permuter(random_state=0)),
             ("tiles", TilePruner(tile_sparsity=0.5, random_state=0, fine_tune_iter=ft))]
    est = copy.deepcopy(dense)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _, step in steps:
            est = step.prune(est, X_tr, y_tr, tuple(tile_shape))
    lay_d, lay_p = TileLayout(dense, tuple(tile_shape)), TileLayout(est, tuple(tile_shape))
    info = dict(tile_shape=list(tile_shape),
                steps=[f"{n}={type(s).__name__}({s.get_params(deep=False)})"
                       for n, s in steps],
                weight_sparsity=float(sum(np.sum(W == 0) for W in est.coefs_)
                                      / sum(W.size for W in est.coefs_)),
                layer_sparsity=[float(np.mean(W == 0)) for W in est.coefs_],
                nonzero_tiles=int(lay_p.n_nonzero_tiles), tiles=int(lay_p.n_tiles),
                dense_nonzero_tiles=int(lay_d.n_nonzero_tiles))
    return est, info


def digits_split(upscale=False, quick=False):
    """Digits / 16 (features in [0, 1]), split 75/25, stratified, seed 0.

    ``upscale``: every 8 x 8 image zoomed bilinearly by 3.5 to 28 x 28 (784
    features, ``scipy.ndimage.zoom``), a real task for 784-256-128-10
    (``quick``: its first 400 images only).
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    if upscale:
        from scipy.ndimage import zoom

        if quick:
            X, y = X[:400], y[:400]
        X = np.stack([zoom(im.reshape(8, 8), 3.5, order=1) for im in X])
        X = np.clip(X.reshape(len(X), -1), 0.0, 1.0)
    return train_test_split(X, y, test_size=0.25, stratify=y, random_state=0)


def hepex_network(name, B, quick=False, memory=None):
    """``HEPEx`` (PPTE) fitted for requests of ``B`` samples, with its own data.

    ``HEPEx(MLPClassifier(...), variant_steps("PPTE"), tile_shape="auto",
    request_size=B, search={"tiles__tile_sparsity": HEPEX_BUDGETS})``: the
    tile shape is chosen for ``B`` before pruning, the budget is the fewest
    ciphertexts within 2.5% of dense on a validation split of the training
    data.  Digits networks: the digits split of :func:`build_network`;
    784-256-128-10: ``digits_split(upscale=True)`` (the dense variant of that network keeps
    its random weights: the HE cost of a dense network does not depend on
    them).  Returns the pruned network, its evaluation inputs and a record.
    """
    from sklearn.exceptions import ConvergenceWarning

    from skhepex import HEPEx, MLPClassifier
    from skhepex.experiments import variant_steps

    spec = NETWORKS[name]
    X_tr, X_te, y_tr, y_te = digits_split(upscale=spec["data"] != "digits", quick=quick)
    est = MLPClassifier(hidden_layer_sizes=spec["hidden"], activation="square",
                        max_iter=30 if quick else 200, random_state=0)
    budgets = (0.5, 0.9) if quick else HEPEX_BUDGETS
    h = HEPEx(est, variant_steps("PPTE", fine_tune_iter=2 if quick else 10, random_state=0),
              tile_shape="auto", request_size=int(B),
              search={"tiles__tile_sparsity": list(budgets)}, random_state=0, memory=memory)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        h.fit(X_tr, y_tr)
    net = h.estimator_
    info = dict(tile_shape=[int(t) for t in h.tile_shape_],
                steps="variant_steps('PPTE', random_state=0)",
                search=dict(budgets=list(budgets), best=h.best_params_,
                            results=[{k: (float(v) if isinstance(v, (float, np.floating))
                                          else v) for k, v in r.items()}
                                     for r in h.search_results_]),
                nonzero_tiles=int(h.n_ciphertexts_), dense_nonzero_tiles=int(h.n_ciphertexts_dense_),
                test_accuracy=float(net.score(X_te, y_te)),
                dense_test_accuracy=float(h.dense_estimator_.score(X_te, y_te)),
                weight_sparsity=float(sum(np.sum(W == 0) for W in net.coefs_)
                                      / sum(W.size for W in net.coefs_)),
                layer_sparsity=[float(np.mean(W == 0)) for W in net.coefs_],
                fit_s=time.perf_counter() - t0)
    return net, X_te[:max(BATCHES)], info


def export_onnx(net, path):
    """ONNX graph of ``net`` in its packed order: Gemm(transB=1) + Mul(x, x), float64.

    Returns the input and output permutations the client applies (or None).
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inner = net.network_
    nodes, inits, cur = [], [], "input"
    n_layers = len(net.coefs_)
    for i, (W, b) in enumerate(zip(net.coefs_, net.intercepts_)):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(W.T, dtype=np.float64),
                                             f"W{i}"))
        inits.append(numpy_helper.from_array(np.asarray(b, dtype=np.float64), f"b{i}"))
        nodes.append(helper.make_node("Gemm", [cur, f"W{i}", f"b{i}"], [f"dense{i}"],
                                      transB=1, name=f"dense{i}"))
        cur = f"dense{i}"
        if i < n_layers - 1:
            nodes.append(helper.make_node("Mul", [cur, cur], [f"square{i}"], name=f"square{i}"))
            cur = f"square{i}"
    n_in, n_out = net.coefs_[0].shape[0], net.coefs_[-1].shape[1]
    graph = helper.make_graph(
        nodes, "mlp",
        [helper.make_tensor_value_info("input", TensorProto.DOUBLE, ["batch", n_in])],
        [helper.make_tensor_value_info(cur, TensorProto.DOUBLE, ["batch", n_out])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    onnx.save(model, path)
    perm_in = None if inner.input_perm is None else np.asarray(inner.input_perm).tolist()
    perm_out = None if inner.output_perm is None else np.asarray(inner.output_perm).tolist()
    return perm_in, perm_out


# ============================================================== workers
def worker_skhepex(spec):
    """One skhepex run: the deployment flow (``spec["plan"]``) or ``HEPredictor`` in-process."""
    if spec.get("plan"):
        return _worker_skhepex_deployment(spec)
    from skhepex.he import HEPredictor

    rss_import = _rss_now()
    with open(spec["pickle"], "rb") as fh:
        net = pickle.load(fh)
    data = np.load(spec["data"])
    B = spec["batch"]
    X, ref = data["X"][:B], data["ref"][:B]
    ts = "auto" if spec.get("tile_shape") is None else tuple(spec["tile_shape"])
    t0 = time.perf_counter()
    he = HEPredictor(net, prefit=True, batch_size=B, tile_shape=ts).fit()
    build_s = time.perf_counter() - t0
    rss_build = _rss_now()
    warm, _, _ = _timed(lambda: he.decision_function(X), 1)              # warm-up
    inner = _inner(spec, warm)
    e2e, e2e_cpu, out = _timed(lambda: he.decision_function(X), inner)
    reps = [he.measure(X).measured for _ in range(inner)]
    server = _median([m["seconds"] for m in reps])
    enc = he.encrypt(X)            # the same evaluation timed from outside, wall and CPU
    server_ext, server_cpu, _ = _timed(lambda: he.server_.evaluate(enc), inner)
    rep, p = he.report_, he.params_
    return dict(
        flow="predictor", build_s=build_s, warmup_s=warm, inner=inner, e2e_s=e2e,
        e2e_cpu_s=e2e_cpu, server_s=server, server_external_s=server_ext,
        server_cpu_s=server_cpu,
        encrypt_s=_median([m["encrypt_seconds"] for m in reps]),
        decrypt_s=_median([m["decrypt_seconds"] for m in reps]),
        n_ciphertext_batches=int(reps[0]["n_batches"]),
        max_abs_err=float(np.abs(np.asarray(out, dtype=np.float64) - ref).max()),
        peak_rss=_peak_rss(), rss_after_import=rss_import, rss_after_build=rss_build,
        rss_end=_rss_now(),
        layout=dict(tile_shape=list(he.tile_shape_), samples_per_ciphertext=int(he.plan_.batch),
                    n_input_ciphertexts=int(rep.memory["n_input_ciphertexts"]),
                    n_galois_keys=int(rep.memory["n_galois_keys"]),
                    weight_plaintexts=int(rep.n_weight_ciphertexts),
                    weight_tiles=int(rep.n_tiles), depth=int(rep.depth)),
        ckks=_skhepex_ckks(p),
        predicted_server_s=rep.predicted_seconds_per_batch,
    )


def _skhepex_ckks(p):
    return dict(N=int(p.poly_modulus_degree), slots=int(p.poly_modulus_degree // 2),
                chain_bits=list(p.coeff_mod_bit_sizes), scale_bits=int(p.scale_bits),
                note="chain_bits end with the special (key-switching) prime")


def pack_simulated(files, B):
    """``HEPredictor(net, prefit=True, batch_size=B, mode="simulate").fit()`` of a prepared net.

    The packing ``fit`` does (tile shape, CKKS parameters, plan), without keys;
    the tile shape is the one the network was pruned for when ``files`` has one.
    """
    from skhepex.he import HEPredictor

    with open(files["pickle"], "rb") as fh:
        net = pickle.load(fh)
    ts = "auto" if files.get("tile_shape") is None else tuple(files["tile_shape"])
    return HEPredictor(net, prefit=True, batch_size=B, tile_shape=ts, mode="simulate").fit()


def prepare_skhepex_plan(files, B, workdir):
    """Compile skhepex's plan for ``B`` samples in this (parent) process.

    ``HEPredictor(net, prefit=True, batch_size=B, tile_shape=..., mode="simulate")``
    packs the network (tile shape, parameters, plan: what ``fit`` does,
    without keys); the plan is written with ``plan_to_bytes`` together with
    the client's encoded inputs (``encode_input``) and the output map of
    ``unpermute_outputs`` as a matrix.  The worker loads them like a deployed
    client + server, without scikit-learn.
    """
    from skhepex.he.serialization import plan_to_bytes

    t0 = time.perf_counter()
    he = pack_simulated(files, B)
    compile_s = time.perf_counter() - t0
    data = np.load(files["data"])
    network = he.network_estimator_
    X = data["X"][:B]
    if he.preprocessor_ is not None:
        X = he.preprocessor_.transform(X)
    n_out = int(he.plan_.n_outputs)
    base = os.path.join(workdir, f"plan_{os.path.basename(files['pickle'])}_{B}")
    with open(base + ".plan", "wb") as fh:
        fh.write(plan_to_bytes(he.plan_))
    np.savez(base + ".npz", X=network.encode_input(X),
             out_map=network.network_.unpermute_outputs(np.eye(n_out)))
    rep = he.report_
    return dict(plan=base + ".plan", client_data=base + ".npz", compile_s=compile_s,
                n_weight_ciphertexts=int(rep.n_weight_ciphertexts), n_tiles=int(rep.n_tiles),
                depth=int(rep.depth),
                n_input_ciphertexts=int(rep.memory["n_input_ciphertexts"]),
                n_galois_keys=int(rep.memory["n_galois_keys"]),
                predicted_server_s=rep.predicted_seconds_per_batch)


def _worker_skhepex_deployment(spec):
    """A deployed skhepex client + server in one process: no estimator, no scikit-learn.

    The plan compiled by :func:`prepare_skhepex_plan` is loaded with
    ``plan_from_bytes``; ``Client(plan)`` makes the keys and
    ``client.server_model()`` encodes the weights (what ``HEPredictor.fit``
    does after packing); a round trip is ``client.encrypt`` ->
    ``server.evaluate`` -> ``client.decrypt`` and the output map.
    """
    from skhepex.he.client import Client
    from skhepex.he.serialization import plan_from_bytes

    rss_import = _rss_now()
    data, cdata = np.load(spec["data"]), np.load(spec["client_data"])
    B = spec["batch"]
    ref, X, out_map = data["ref"][:B], cdata["X"], cdata["out_map"]
    t0 = time.perf_counter()
    with open(spec["plan"], "rb") as fh:
        plan = plan_from_bytes(fh.read())
    client = Client(plan)
    server = client.server_model(plan, name="predict")
    build_s = time.perf_counter() - t0
    rss_build = _rss_now()
    parts = {}

    def round_trip():
        t = time.perf_counter()
        enc = client.encrypt(X)
        t1 = time.perf_counter()
        res = server.evaluate(enc)
        t2 = time.perf_counter()
        raw = client.decrypt(res, n_samples=len(X))
        t3 = time.perf_counter()
        parts.setdefault("encrypt", []).append(t1 - t)
        parts.setdefault("server", []).append(float(sum(res.stats["stage_seconds"])))
        parts.setdefault("decrypt", []).append(t3 - t2)
        parts["n_batches"] = res.stats["n_batches"]
        return raw @ out_map

    warm, _, _ = _timed(round_trip, 1)
    parts.clear()
    inner = _inner(spec, warm)
    e2e, e2e_cpu, out = _timed(round_trip, inner)
    enc = client.encrypt(X)        # the same evaluation timed from outside, wall and CPU
    server_ext, server_cpu, _ = _timed(lambda: server.evaluate(enc), inner)
    from skhepex.he.costs import memory_estimate

    mem = memory_estimate(plan)
    return dict(
        flow="deployment", build_s=build_s, compile_s=spec.get("compile_s"), warmup_s=warm,
        inner=inner, e2e_s=e2e, e2e_cpu_s=e2e_cpu, server_s=_median(parts["server"]),
        server_external_s=server_ext, server_cpu_s=server_cpu,
        encrypt_s=_median(parts["encrypt"]), decrypt_s=_median(parts["decrypt"]),
        n_ciphertext_batches=int(parts["n_batches"]),
        max_abs_err=float(np.abs(np.asarray(out, dtype=np.float64) - ref).max()),
        peak_rss=_peak_rss(), rss_after_import=rss_import, rss_after_build=rss_build,
        rss_end=_rss_now(), sklearn_imported="sklearn" in sys.modules,
        layout=dict(tile_shape=list(plan.tile_shape), samples_per_ciphertext=int(plan.batch),
                    n_input_ciphertexts=int(mem["n_input_ciphertexts"]),
                    n_galois_keys=int(mem["n_galois_keys"]),
                    weight_plaintexts=spec.get("n_weight_ciphertexts"),
                    weight_tiles=spec.get("n_tiles"), depth=spec.get("depth")),
        ckks=_skhepex_ckks(plan.params), predicted_server_s=spec.get("predicted_server_s"),
    )


def _helayers_profile(profile):
    try:
        return json.loads(profile.to_string())
    except ValueError:
        return {"raw": profile.to_string()}


def worker_helayers(spec):
    import pyhelayers

    rss_import = _rss_now()
    B = spec["batch"]
    data = np.load(spec["data"])
    X, ref = data["X"][:B], data["ref"][:B]
    pin = None if spec.get("perm_in") is None else np.asarray(spec["perm_in"])
    pout = None if spec.get("perm_out") is None else np.argsort(np.asarray(spec["perm_out"]))

    def client_in(Xs):
        return np.ascontiguousarray(Xs if pin is None else Xs[:, pin], dtype=np.float64)

    def client_out(out):
        out = np.asarray(out, dtype=np.float64).reshape(len(X), -1)
        return out if pout is None else out[:, pout]

    t0 = time.perf_counter()
    plain = pyhelayers.NeuralNetPlain()
    plain.init_from_files(pyhelayers.PlainModelHyperParams(), [spec["onnx"]])
    plain_out = client_out(plain.predict([client_in(X)])[0])
    plain_err = float(np.abs(plain_out - ref).max())
    if not plain_err <= 1e-8 * max(1.0, float(np.abs(ref).max())):
        raise RuntimeError(f"HElayers' plaintext forward differs from NumPy by {plain_err:g}")
    req = pyhelayers.HeRunRequirements()
    req.set_he_context_options([pyhelayers.DefaultContext()])
    req.optimize_for_batch_size(B)
    req.set_model_encrypted(False)
    profile = pyhelayers.HeModel.compile(plain, req)
    if profile is None:
        raise RuntimeError("HeModel.compile found no feasible profile")
    ctx = pyhelayers.HeModel.create_context(profile)
    model = plain.get_empty_he_model(ctx)
    model.encode(plain, profile)
    flags = pyhelayers.helayers_internal_flags()
    flags.set_bool("pruneZeroPTiles", bool(spec["prune_zero_ptiles"]))   # after encode
    io = model.create_model_io_encoder()
    build_s = time.perf_counter() - t0
    rss_build = _rss_now()

    def end_to_end():
        enc = pyhelayers.EncryptedData(ctx)
        io.encode_encrypt(enc, [client_in(X)])
        res = pyhelayers.EncryptedData(ctx)
        model.predict(res, enc)
        return client_out(io.decrypt_decode_output(res))

    warm, _, _ = _timed(end_to_end, 1)                                     # warm-up
    inner = _inner(spec, warm)
    e2e, e2e_cpu, out = _timed(end_to_end, inner)
    enc = pyhelayers.EncryptedData(ctx)
    tenc, _, _ = _timed(lambda: io.encode_encrypt(enc, [client_in(X)]), 1)

    def server():
        res = pyhelayers.EncryptedData(ctx)
        model.predict(res, enc)
        return res

    server_s, server_cpu, res = _timed(server, inner)
    tdec, _, _ = _timed(lambda: io.decrypt_decode_output(res), 1)
    prof = _helayers_profile(profile)
    chain = [int(q) for q in np.asarray(ctx.get_modulus_chain()).ravel()]
    tl = prof.get("tile_layout", {})
    pub = prof.get("public_functions", {})
    return dict(
        build_s=build_s, warmup_s=warm, inner=inner, e2e_s=e2e, e2e_cpu_s=e2e_cpu,
        server_s=server_s, server_cpu_s=server_cpu, encrypt_s=tenc, decrypt_s=tdec,
        n_ciphertext_batches=int(enc.get_num_batches()),
        max_abs_err=float(np.abs(out - ref).max()), plain_max_abs_err=plain_err,
        peak_rss=_peak_rss(), rss_after_import=rss_import, rss_after_build=rss_build,
        rss_end=_rss_now(),
        prune_zero_ptiles=bool(flags.get_bool("pruneZeroPTiles")),
        layout=dict(tile_layout=[int(tl[k]) for k in sorted(tl) if k.startswith("t")],
                    tile_layout_str=profile.get_tile_layout().to_string(),
                    mode=prof.get("mode_name"),
                    optimal_batch_size=int(profile.get_optimal_batch_size()),
                    n_rotation_keys=int(pub.get("num_rotation_steps", -1)),
                    rotation_steps=[int(v) for _, v in sorted(
                        pub.get("rotation_steps", {}).items(), key=lambda kv: int(kv[0]))]),
        ckks=dict(N=2 * int(ctx.slot_count()), slots=int(ctx.slot_count()),
                  chain_bits=[int(round(math.log2(q))) for q in chain],
                  scale_bits=float(round(math.log2(ctx.get_default_scale()), 2)),
                  multiplication_depth=int(prof.get("he_conf_req", {})
                                           .get("multiplication_depth", -1)),
                  fractional_part_precision=int(prof.get("he_conf_req", {})
                                                .get("fractional_part_precision", -1)),
                  note="get_modulus_chain(): the data primes (no special prime)"),
        predicted=prof.get("measures"),
    )


def worker_main(system, spec_path):
    with open(spec_path) as fh:
        spec = json.load(fh)
    try:
        rec = (worker_skhepex if system == "skhepex" else worker_helayers)(spec)
        rec["ok"] = True
        rec["rss_method"] = "VmHWM"
    except Exception as exc:   # recorded, the parent moves on
        rec = dict(ok=False, error=f"{type(exc).__name__}: {exc}",
                   traceback=traceback.format_exc()[-2000:], peak_rss=_peak_rss())
    sys.stdout.write("\n@@RESULT@@" + json.dumps(rec) + "\n")
    sys.stdout.flush()


# ============================================================== parent
def run_worker(system, spec, workdir, timeout, log):
    path = os.path.join(workdir, f"spec_{system}_{os.getpid()}_{time.monotonic_ns()}.json")
    with open(path, "w") as fh:
        json.dump(spec, fh)
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONWARNINGS="ignore")
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", system,
                               "--spec", path], capture_output=True, text=True, env=env,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return dict(ok=False, error=f"timeout after {timeout} s")
    finally:
        os.unlink(path)
    wall = time.perf_counter() - t0
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("@@RESULT@@"):
            rec = json.loads(line[len("@@RESULT@@"):])
            rec["subprocess_s"] = wall
            return rec
    tail = (proc.stderr or proc.stdout or "")[-1500:]
    log(f"    {system} worker died (exit {proc.returncode}): {tail[-300:]}")
    return dict(ok=False, error=f"worker exited with code {proc.returncode} "
                                f"(e.g. killed for memory)", stderr_tail=tail)


def summarise(runs, B):
    """Medians over the repeats of one system."""
    ok = [r for r in runs if r.get("ok")]
    out = dict(n_ok=len(ok), n_runs=len(runs))
    if not ok:
        out["error"] = runs[0].get("error") if runs else "not run"
        return out
    out.update(
        e2e_ms_per_sample=1e3 * _median([r["e2e_s"] for r in ok]) / B,
        server_ms_per_sample=1e3 * _median([r["server_s"] for r in ok]) / B,
        encrypt_ms=1e3 * _median([r["encrypt_s"] for r in ok]),
        decrypt_ms=1e3 * _median([r["decrypt_s"] for r in ok]),
        e2e_cpu_ms_per_sample=1e3 * _median([r["e2e_cpu_s"] for r in ok]) / B,
        server_cpu_ms_per_sample=1e3 * _median([r["server_cpu_s"] for r in ok]) / B,
        e2e_cpu_over_wall=_median([r["e2e_cpu_s"] / r["e2e_s"] for r in ok]),
        build_s=_median([r["build_s"] for r in ok]),
        peak_rss_MB=_median([r["peak_rss"] for r in ok]) / MB,
        rss_after_import_MB=_median([r["rss_after_import"] for r in ok]) / MB,
        rss_after_build_MB=_median([r["rss_after_build"] for r in ok]) / MB,
        max_abs_err=float(max(r["max_abs_err"] for r in ok)),
        layout=ok[0]["layout"], ckks=ok[0]["ckks"],
        layouts_agree=all(r["layout"] == ok[0]["layout"] for r in ok))
    return out


def _ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def run_cell(net_name, variant, B, files, args, workdir, log):
    specs = dict(
        skhepex=dict(pickle=files["pickle"], data=files["data"], batch=B, inner=args.inner,
                     long_s=args.long_roundtrip, tile_shape=files.get("tile_shape")),
        helayers=dict(onnx=files["onnx"], data=files["data"], batch=B, inner=args.inner,
                      long_s=args.long_roundtrip,
                      perm_in=files["perm_in"], perm_out=files["perm_out"],
                      prune_zero_ptiles=variant != "dense"))
    if args.skhepex_flow == "deployment" and "skhepex" in args.systems:
        t0 = time.perf_counter()
        specs["skhepex"].update(prepare_skhepex_plan(files, B, workdir))
        log(f"  [{net_name} {variant} B={B}] skhepex plan compiled in the parent "
            f"({time.perf_counter() - t0:.1f} s)")
    runs = {s: [] for s in SYSTEMS}
    for rep in range(args.repeats):
        for system in args.systems:              # alternate A, B, A, B, ...
            if runs[system] and not any(r.get("ok") for r in runs[system]) \
                    and not runs[system][-1].get("error", "").startswith("timeout"):
                continue                          # failed deterministically once: skip
            rec = run_worker(system, specs[system], workdir, args.timeout, log)
            runs[system].append(rec)
            msg = (f"e2e {1e3 * rec['e2e_s'] / B:8.3f} ms/sample, server "
                   f"{1e3 * rec['server_s'] / B:8.3f} ms/sample, peak RSS "
                   f"{rec['peak_rss'] / MB:7.1f} MB, err {rec['max_abs_err']:.1e}"
                   if rec.get("ok") else f"FAILED: {rec.get('error')}")
            log(f"  [{net_name} {variant} B={B} rep {rep + 1}/{args.repeats}] {system:8s} {msg}")
    summ = {s: summarise(runs[s], B) for s in args.systems}
    cell = dict(network=net_name, variant=variant, batch=B, runs=runs, summary=summ)
    if variant != "dense":
        cell["pruning"] = files.get("pruning")
    if all(s in summ for s in SYSTEMS):
        a, b = summ["skhepex"], summ["helayers"]
        cell["ratio_skhepex_over_helayers"] = dict(
            e2e=_ratio(a.get("e2e_ms_per_sample"), b.get("e2e_ms_per_sample")),
            server=_ratio(a.get("server_ms_per_sample"), b.get("server_ms_per_sample")),
            peak_rss=_ratio(a.get("peak_rss_MB"), b.get("peak_rss_MB")),
            e2e_cpu=_ratio(a.get("e2e_cpu_ms_per_sample"), b.get("e2e_cpu_ms_per_sample")),
            server_cpu=_ratio(a.get("server_cpu_ms_per_sample"),
                              b.get("server_cpu_ms_per_sample")))
    return cell


def prepare(net, name, workdir, X_eval, tag):
    """Write the pickled estimator, the ONNX graph and the inputs + float64 reference."""
    base = os.path.join(workdir, f"{name}_{tag}")
    with open(base + ".pkl", "wb") as fh:
        pickle.dump(net, fh)
    perm_in, perm_out = export_onnx(net, base + ".onnx")
    ref = net.decision_function(X_eval)
    assert np.allclose(ref, forward64(net.coefs_, net.intercepts_,
                                      X_eval if perm_in is None else X_eval[:, perm_in])
                       [:, slice(None) if perm_out is None else np.argsort(perm_out)],
                       rtol=1e-12, atol=1e-10)
    np.savez(base + ".npz", X=X_eval, ref=ref)
    return dict(pickle=base + ".pkl", onnx=base + ".onnx", data=base + ".npz",
                perm_in=perm_in, perm_out=perm_out, max_abs_logit=float(np.abs(ref).max()))


def environment():
    import sklearn
    env = dict(python=platform.python_version(), platform=platform.platform(),
               processor=platform.processor(), cpu_count=os.cpu_count(),
               numpy=np.__version__, sklearn=sklearn.__version__,
               OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS"))
    for mod in ("skhepex", "tenseal", "pyhelayers", "onnx"):
        try:
            from importlib.metadata import version
            env[mod] = version(mod)
        except Exception:  # pragma: no cover
            env[mod] = None
    try:
        with open("/proc/cpuinfo") as fh:
            env["cpu_model"] = next((ln.split(":", 1)[1].strip() for ln in fh
                                     if ln.startswith("model name")), None)
    except OSError:  # pragma: no cover
        pass
    return env


def main(args):
    t_start = time.perf_counter()

    def log(msg):
        print(f"[{time.perf_counter() - t_start:7.1f}s] {msg}", flush=True)

    result = dict(benchmark="vs_helayers", args=vars(args), environment=environment(),
                  started=time.strftime("%Y-%m-%d %H:%M:%S"), cells=[], networks={})
    workdir = tempfile.mkdtemp(prefix="vs_helayers_")

    def save():
        if args.out:
            os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
            with open(args.out + ".tmp", "w") as fh:
                json.dump(result, fh, indent=1, default=float)
            os.replace(args.out + ".tmp", args.out)

    try:
        for name in args.networks:
            t0 = time.perf_counter()
            dense, X_tr, y_tr, X_eval = build_network(name, quick=args.quick)
            dense_files = prepare(dense, name, workdir, X_eval, "dense")
            result["networks"][name] = dict(
                layers=[int(dense.coefs_[0].shape[0])] + [int(W.shape[1]) for W in dense.coefs_],
                data=NETWORKS[name]["data"], build_s=time.perf_counter() - t0,
                max_abs_logit=dense_files["max_abs_logit"])
            log(f"{name}: dense network ready ({time.perf_counter() - t0:.1f} s)")
            pruned_cache = {}
            for B in args.batches:
                tile = None
                for variant in args.variants:
                    if variant == "dense":
                        files = dense_files
                    elif variant == "hepex":
                        t1 = time.perf_counter()
                        net_h, X_h, info = hepex_network(name, B, args.quick, memory=workdir)
                        files = prepare(net_h, name, workdir, X_h, f"hepex_B{B}")
                        files.update(tile_shape=info["tile_shape"], pruning=info)
                        log(f"  {name} B={B}: HEPEx at tile {tuple(info['tile_shape'])}: "
                            f"{info['nonzero_tiles']}/{info['dense_nonzero_tiles']} tiles, "
                            f"budget {info['search']['best']}, test accuracy "
                            f"{info['test_accuracy']:.3f} (dense "
                            f"{info['dense_test_accuracy']:.3f}) "
                            f"({time.perf_counter() - t1:.1f} s)")
                    else:
                        if tile is None:     # skhepex's layout for the dense network at B
                            tile = tuple(pack_simulated(dense_files, B).tile_shape_)
                        if tile not in pruned_cache:
                            t1 = time.perf_counter()
                            net_p, info = prune_network(dense, X_tr, y_tr, tile, args.quick)
                            f = prepare(net_p, name, workdir, X_eval,
                                        f"pruned_{tile[0]}x{tile[1]}")
                            f.update(tile_shape=list(tile), pruning=info)
                            pruned_cache[tile] = f
                            log(f"  {name}: HE-PEx at tile {tile}: {info['nonzero_tiles']}/"
                                f"{info['tiles']} tiles non-zero (dense "
                                f"{info['dense_nonzero_tiles']}), weight sparsity "
                                f"{info['weight_sparsity']:.2f} "
                                f"({time.perf_counter() - t1:.1f} s)")
                        files = pruned_cache[tile]
                    cell = run_cell(name, variant, B, files, args, workdir, log)
                    if variant == "dense" and cell["summary"].get("skhepex", {}).get("layout"):
                        tile = tuple(cell["summary"]["skhepex"]["layout"]["tile_shape"])
                    result["cells"].append(cell)
                    save()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result["total_s"] = time.perf_counter() - t_start
    save()
    print()
    print(render_table(result))
    return result


# ============================================================== tables
def _f(v, fmt="{:.3g}"):
    return "--" if v is None else fmt.format(v)


def _layout_str(system, s):
    if not s:
        return "--"                   # not run
    if "layout" not in s:
        return "failed"
    lay, ck = s["layout"], s["ckks"]
    if system == "skhepex":
        t = "x".join(map(str, lay["tile_shape"]))
    else:
        t = "x".join(map(str, lay["tile_layout"])) or lay.get("tile_layout_str", "?")
    return f"{t}, N={ck['N'] // 1024}K"


def table_rows(result):
    rows = []
    for c in result["cells"]:
        s = c["summary"]
        a, b = s.get("skhepex", {}), s.get("helayers", {})
        r = c.get("ratio_skhepex_over_helayers", {})
        rows.append([
            c["network"], c["variant"], str(c["batch"]),
            _f(a.get("e2e_ms_per_sample")), _f(b.get("e2e_ms_per_sample")),
            _f(r.get("e2e"), "{:.2f}"),
            _f(a.get("server_ms_per_sample")), _f(b.get("server_ms_per_sample")),
            _f(r.get("server"), "{:.2f}"),
            _f(a.get("peak_rss_MB"), "{:.0f}"), _f(b.get("peak_rss_MB"), "{:.0f}"),
            _f(r.get("peak_rss"), "{:.2f}"),
            _f(a.get("max_abs_err"), "{:.1e}"), _f(b.get("max_abs_err"), "{:.1e}"),
            _layout_str("skhepex", a), _layout_str("helayers", b)])
    return rows


HEADER = ["network", "variant", "B",
          "e2e ours", "e2e HEl", "ratio",
          "server ours", "server HEl", "ratio",
          "RSS ours", "RSS HEl", "ratio",
          "err ours", "err HEl", "layout ours", "layout HEl"]


def merge_results(path, new_path, reason):
    """Replace the cells of the results file ``path`` by those of a partial re-run."""
    with open(path) as fh:
        result = json.load(fh)
    with open(new_path) as fh:
        new = json.load(fh)
    fresh = {(c["network"], c["variant"], c["batch"]): c for c in new["cells"]}
    old = {(c["network"], c["variant"], c["batch"]) for c in result["cells"]}
    result["cells"] = [dict(fresh[k], rerun=new["started"]) if k in fresh else c
                       for c in result["cells"]
                       for k in [(c["network"], c["variant"], c["batch"])]]
    result["cells"] += [dict(c, rerun=new["started"]) for k, c in fresh.items()
                        if k not in old]      # cells (e.g. a new variant) not run before
    result["cells"].sort(key=lambda c: (list(NETWORKS).index(c["network"]), c["batch"],
                                        VARIANTS.index(c["variant"])))
    result.setdefault("reruns", []).append(dict(
        started=new["started"], total_s=new.get("total_s"), args=new.get("args"),
        cells=[list(k) for k in fresh], reason=reason))
    for name, info in new.get("networks", {}).items():
        old = result["networks"].setdefault(name, {})
        for k, v in info.items():
            old[k] = ({**old[k], **v} if isinstance(v, dict) and isinstance(old.get(k), dict)
                      else v)
    with open(path, "w") as fh:
        json.dump(result, fh, indent=1)


def render_table(result):
    rows = table_rows(result)
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(HEADER)]
    line = lambda cells: "  ".join(c.rjust(w) for c, w in zip(cells, widths))  # noqa: E731
    out = ["times in ms/sample (median of repeats), RSS = peak RSS in MB, "
           "ratio = skhepex / HElayers", line(HEADER), line(["-" * w for w in widths])]
    out += [line(r) for r in rows]
    errors = [(c["network"], c["variant"], c["batch"], sys_, s["error"])
              for c in result["cells"] for sys_, s in c["summary"].items() if "error" in s]
    for e in errors:
        out.append("failed: %s %s B=%s %s: %s" % e)
    return "\n".join(out)


def _csv_table(header, rows, widths=None):
    out = [".. csv-table::", "   :header: " + ", ".join('"%s"' % h for h in header)]
    if widths:
        out.append("   :widths: " + ", ".join(map(str, widths)))
    out.append("")
    out += ["   " + ", ".join('"%s"' % c for c in r) for r in rows]
    return out + [""]


def _ckks_str(ck, special_last):
    chain = ck["chain_bits"]
    inner = chain[1:-1] if special_last else chain[1:]
    mid = f"{inner[0]}x{len(inner)}" if inner and len(set(inner)) == 1 else \
        ",".join(map(str, inner))
    tail = f",{chain[-1]}sp" if special_last else ""
    return f"N={ck['N'] // 1024}K [{chain[0]},{mid}{tail}] 2^{ck['scale_bits']:g}"


HEPEX_HEADER = ["network", "B", "tile", "weight tiles", "budget", "test acc. dense / pruned",
                "e2e CPU pruned", "e2e CPU HElayers dense", "ratio", "e2e CPU ours dense",
                "ratio", "server CPU pruned", "server CPU HElayers dense", "ratio"]
HEPEX_INTRO = [
    "HE-PEx for the request size against HElayers' dense network", "-" * 60, "",
    "Variant *hepex*: ``HEPEx(MLPClassifier(...), variant_steps('PPTE'), tile_shape='auto', "
    "request_size=B, search={'tiles__tile_sparsity': [0.3, 0.5, 0.7, 0.8, 0.85, 0.9, 0.93]}, "
    "random_state=0).fit(X_train, y_train)``: the tile shape is chosen for B before pruning "
    "and the budget is the fewest ciphertexts within 2.5% of dense accuracy on a "
    "validation split of the training data (the test split is only reported).  Digits "
    "networks: the digits split; 784-256-128-10: digits upscaled to 28 x 28 "
    "(``digits_split(upscale=True)``), while its dense cells keep their random weights (the cost of a "
    "dense network does not depend on its weights).  Times in CPU ms per sample; "
    "*ratio* = the pruned skhepex model / the dense network on HElayers, then on "
    "skhepex, cells of the same run.", ""]


def hepex_rows(cells):
    """Rows of the *hepex* table: the pruned model against both systems' dense cells."""
    dense = {(c["network"], c["batch"]): c["summary"] for c in cells if c["variant"] == "dense"}
    rows = []
    for c in cells:
        p = c.get("pruning")
        if c["variant"] != "hepex" or not p:
            continue
        d = dense.get((c["network"], c["batch"]), {})
        ours = c["summary"].get("skhepex", {})
        hd, od = d.get("helayers", {}), d.get("skhepex", {})
        best = p["search"]["best"] or {}
        rows.append([
            c["network"], str(c["batch"]), "x".join(map(str, p["tile_shape"])),
            f"{p['nonzero_tiles']}/{p['dense_nonzero_tiles']}",
            _f(best.get("tiles__tile_sparsity"), "{:g}"),
            f"{p['dense_test_accuracy']:.3f} / {p['test_accuracy']:.3f}",
            _f(ours.get("e2e_cpu_ms_per_sample")), _f(hd.get("e2e_cpu_ms_per_sample")),
            _f(_ratio(ours.get("e2e_cpu_ms_per_sample"), hd.get("e2e_cpu_ms_per_sample")),
               "{:.2f}"),
            _f(od.get("e2e_cpu_ms_per_sample")),
            _f(_ratio(ours.get("e2e_cpu_ms_per_sample"), od.get("e2e_cpu_ms_per_sample")),
               "{:.2f}"),
            _f(ours.get("server_cpu_ms_per_sample")), _f(hd.get("server_cpu_ms_per_sample")),
            _f(_ratio(ours.get("server_cpu_ms_per_sample"),
                      hd.get("server_cpu_ms_per_sample")), "{:.2f}")])
    return rows


def _note_lines(notes):
    """reST bullets of the hand-written notes; lines starting with "- " nest."""
    out = []
    for note in notes:
        first, *rest = note.split("\n")
        out.append(f"* {first}")
        in_list = False
        for line in rest:
            nested = line.startswith("- ")
            if nested != in_list or not nested:
                out.append("")
            out.append(("  " + line) if nested else f"  {line}")
            in_list = nested
        out.append("")
    return out


def render_rst(result, json_path):
    """The documentation page (reST) of a results file."""
    env, a = result.get("environment", {}), result.get("args", {})
    cells = result["cells"]

    def key(c):
        return [c["network"], c["variant"], str(c["batch"])]

    def get(c, system, field, fmt="{:.3g}"):
        return _f(c["summary"].get(system, {}).get(field), fmt)

    def ratio(c, field):
        return _f(c.get("ratio_skhepex_over_helayers", {}).get(field), "{:.2f}")

    wall = [key(c) + [get(c, "skhepex", "e2e_ms_per_sample"),
                      get(c, "helayers", "e2e_ms_per_sample"), ratio(c, "e2e"),
                      get(c, "skhepex", "server_ms_per_sample"),
                      get(c, "helayers", "server_ms_per_sample"), ratio(c, "server"),
                      get(c, "skhepex", "max_abs_err", "{:.1e}"),
                      get(c, "helayers", "max_abs_err", "{:.1e}")] for c in cells]
    cpu = [key(c) + [get(c, "skhepex", "e2e_cpu_ms_per_sample"),
                     get(c, "helayers", "e2e_cpu_ms_per_sample"), ratio(c, "e2e_cpu"),
                     get(c, "skhepex", "server_cpu_ms_per_sample"),
                     get(c, "helayers", "server_cpu_ms_per_sample"), ratio(c, "server_cpu"),
                     get(c, "skhepex", "peak_rss_MB", "{:.0f}"),
                     get(c, "helayers", "peak_rss_MB", "{:.0f}"), ratio(c, "peak_rss"),
                     get(c, "skhepex", "rss_after_build_MB", "{:.0f}"),
                     get(c, "helayers", "rss_after_build_MB", "{:.0f}")] for c in cells]
    lay = []
    for c in cells:
        sk, hl = c["summary"].get("skhepex", {}), c["summary"].get("helayers", {})
        row = key(c)
        if "layout" in sk:
            L = sk["layout"]
            row += ["%s (%d/ct)%s" % ("x".join(map(str, L["tile_shape"])),
                                      L["samples_per_ciphertext"],
                                      "" if sk.get("layouts_agree", True) else " *"),
                    str(L["n_input_ciphertexts"]), str(L["weight_plaintexts"]),
                    str(L["n_galois_keys"]), _ckks_str(sk["ckks"], True)]
        else:
            row += ["failed"] + ["--"] * 4
        if "layout" in hl:
            L = hl["layout"]
            row += ["x".join(map(str, L["tile_layout"])), str(L["n_rotation_keys"]),
                    _ckks_str(hl["ckks"], False)]
        else:
            row += ["failed", "--", "--"]
        lay.append(row)
    pruning = []
    for c in cells:
        p = c.get("pruning")
        if c["variant"] == "pruned" and p:
            pruning.append(f"* {c['network']}, B={c['batch']}: pruned at tile "
                           f"{p['tile_shape'][0]}x{p['tile_shape'][1]}, "
                           f"{p['nonzero_tiles']}/{p['tiles']} weight tiles non-zero "
                           f"(dense: {p['dense_nonzero_tiles']}), weight sparsity "
                           f"{p['weight_sparsity']:.2f} (per layer "
                           + ", ".join(f"{v:.2f}" for v in p.get("layer_sparsity", []))
                           + ")")
    pruning = list(dict.fromkeys(pruning))
    hepex = hepex_rows(cells)
    errors = [f"* {c['network']} {c['variant']} B={c['batch']}, {sys_}: ``{s['error']}``"
              for c in cells for sys_, s in c["summary"].items() if "error" in s]
    title = "skhepex and HElayers side by side"
    lines = [
        ".. This page is written by benchmarks/vs_helayers.py --render ... --rst; "
        "do not edit by hand.",
        "",
        title, "=" * len(title), "",
        "``benchmarks/vs_helayers.py`` runs skhepex and IBM HElayers (``pyhelayers``, an "
        "optional peer of this benchmark only, never a dependency of skhepex) on the very "
        "same float64 weights: MLPs with square activations, 64-128-10 and 64-128-128-10 "
        "trained on digits and 784-256-128-10 with random weights (inputs uniform in "
        "[0, 1]); variants *dense*, *pruned* (HE-PEx steps at a fixed budget on the dense "
        "weights) and *hepex* (``HEPEx`` fitted for the request size, its own table "
        "below); requests of B = 1, 16, 64, 256 samples; weights in plaintext on the "
        "server.",
        "",
        "* **skhepex**: ``HEPredictor(net, prefit=True, batch_size=B, mode='simulate')"
        ".fit()`` packs the network in the parent (automatic tile shape for the request "
        "size B; pruned and HEPEx networks are packed with the tile shape they were "
        "pruned for); the worker is a deployed client + server without scikit-learn: "
        "``plan_from_bytes``, ``Client(plan)`` (keys), ``client.server_model(plan)`` "
        "(weights encoded), round trips ``client.encrypt`` -> ``server.evaluate`` -> "
        "``client.decrypt`` (``--skhepex-flow predictor``: ``HEPredictor`` in the worker, "
        "as runs before 2026-12-02 did).",
        "* **HElayers**: the weights as ONNX (``Gemm`` with ``transB=1``, ``Mul(x, x)`` "
        "for the square, float64), ``NeuralNetPlain`` (its plaintext forward is checked "
        "against NumPy before timing), ``HeRunRequirements`` with the default context "
        "(SEAL CKKS), ``optimize_for_batch_size(B)``, ``set_model_encrypted(False)``, "
        "``HeModel.compile`` / ``create_context`` / ``encode``; for the pruned networks "
        "the internal flag ``pruneZeroPTiles`` is set right after ``encode``.",
        "* **pruned**: magnitude pruning (80%, global), permutation, tile pruning (50%) "
        "-- the steps ``HEPEx`` applies after its dense stage, applied to the dense "
        "weights -- at the tile shape skhepex picks for the *dense* network at that B, "
        "so the pruned weights differ per B.  HElayers gets them, zeros included, in "
        "skhepex's packed (permuted) order.",
        "",
        "Every system runs in its own subprocess (``OMP_NUM_THREADS=1``) per network, "
        "variant, B and repeat, alternating skhepex, HElayers, skhepex, HElayers; each "
        "subprocess makes one warm-up round trip before timing.  Figures are medians "
        f"over {a.get('repeats')} subprocess repeats, each the median of "
        f"{a.get('inner')} timings inside the subprocess (1 when a round trip takes "
        f"more than {a.get('long_roundtrip', 20):g} s).  *ratio* = skhepex / HElayers: "
        "below 1, skhepex is faster or smaller.",
        "",
        "* **e2e**: client encoding + encryption + server evaluation + decryption + "
        "decoding of B samples, ms per sample;",
        "* **server**: the evaluation of the encrypted request only, ms per sample "
        "(skhepex: the stage seconds of ``server.evaluate``; HElayers: ``HeModel.predict``);",
        "* **CPU**: the same in process CPU time (the machine was shared: CPU time is "
        "less sensitive to other load than wall time);",
        "* **RSS**: peak resident memory of the subprocess in MB (``VmHWM``), imports "
        "included (NumPy + TenSEAL for a deployed skhepex client + server, the HElayers "
        "library for HElayers); *built*: the RSS once the model is packed and the keys "
        "exist (runs before 2026-12-02 read ``ru_maxrss``, which on Linux survives "
        "``fork`` + ``exec`` and floored every worker at the parent's RSS);",
        "* **err**: max abs error of the decrypted logits against the float64 NumPy "
        "forward (``net.decision_function``).",
        "",
        f"Machine: {env.get('cpu_model')}, {env.get('cpu_count')} cores shared with other "
        f"jobs; Python {env.get('python')}, skhepex {env.get('skhepex')}, TenSEAL "
        f"{env.get('tenseal')}, pyhelayers {env.get('pyhelayers')}; run of "
        f"{result.get('started')} ({result.get('total_s', 0) / 60:.0f} min); raw data in "
        f"``{json_path}``.  To reproduce::",
        "",
        "   pip install pyhelayers onnx",
        f"   python benchmarks/vs_helayers.py --out {json_path}",
        f"   python benchmarks/vs_helayers.py --render {json_path} --rst docs/vs_helayers.rst",
        "",
    ]
    for rerun in result.get("reruns", []):   # cells replaced by a later run (merged JSON)
        lines += [
            f"Re-run of {rerun['started']} ({(rerun.get('total_s') or 0) / 60:.0f} min): "
            + ", ".join(f"{n} {v} B={b}" for n, v, b in rerun["cells"])
            + f" -- {rerun['reason']}.", ""]
    lines += [
        "Wall time and accuracy", "----------------------", "",
    ] + _csv_table(["network", "variant", "B", "e2e ours", "e2e HElayers", "ratio",
                    "server ours", "server HElayers", "ratio", "err ours", "err HElayers"],
                   wall) + [
        "CPU time and memory", "-------------------", "",
    ] + _csv_table(["network", "variant", "B", "e2e CPU ours", "e2e CPU HElayers", "ratio",
                    "server CPU ours", "server CPU HElayers", "ratio", "peak RSS ours",
                    "peak RSS HElayers", "ratio", "built ours", "built HElayers"], cpu) + [
        "Layouts and CKKS parameters", "---------------------------", "",
        "skhepex: tile ``t1 x t2`` (samples per ciphertext), input ciphertexts per "
        "ciphertext batch, weight plaintexts, Galois keys; a ``*`` marks a layout that "
        "differed between repeats (possible only in the runs before 2026-12-01 18:00, "
        "when the automatic choice used measured unit costs; it uses tabulated ones "
        "since).  "
        "HElayers: tile layout (the last dimension is the batch), rotation keys.  CKKS: "
        "ring dimension, prime chain in bits (skhepex's ends with its special "
        "key-switching prime, *sp*; HElayers' ``get_modulus_chain()`` lists the data "
        "primes only), scale.", "",
    ] + _csv_table(["network", "variant", "B", "ours: tile", "ours: input cts",
                    "ours: weight pts", "ours: keys", "ours: CKKS", "HElayers: tiles",
                    "HElayers: keys", "HElayers: CKKS"], lay)
    if hepex:
        lines += HEPEX_INTRO + _csv_table(HEPEX_HEADER, hepex)
    if pruning:
        lines += ["HE-PEx pruning", "--------------", ""] + pruning + [""]
    if errors:
        lines += ["Failures", "--------", ""] + errors + [""]
    notes = result.get("notes")
    if notes:
        lines += ["Observations", "------------", ""] + _note_lines(notes)
    return "\n".join(lines)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--networks", nargs="+", choices=list(NETWORKS), default=list(NETWORKS))
    ap.add_argument("--batches", nargs="+", type=int, default=list(BATCHES))
    ap.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    ap.add_argument("--systems", nargs="+", choices=SYSTEMS, default=list(SYSTEMS),
                    help="run only one side (no ratios then)")
    ap.add_argument("--repeats", type=int, default=3,
                    help="subprocess runs per system (alternating), default 3")
    ap.add_argument("--inner", type=int, default=3,
                    help="timed round trips inside each subprocess after the warm-up "
                         "(median), default 3")
    ap.add_argument("--long-roundtrip", type=float, default=20.0,
                    help="time once (not --inner times) when the warm-up round trip takes "
                         "longer than this many seconds, default 20")
    ap.add_argument("--timeout", type=float, default=3600.0,
                    help="seconds before a subprocess is abandoned")
    ap.add_argument("--skhepex-flow", choices=("deployment", "predictor"), default="deployment",
                    help="skhepex worker: a deployed client + server loading the plan compiled "
                         "in the parent (no scikit-learn in the process; default), or "
                         "HEPredictor(...).fit() and decision_function in the worker")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 64-128-10, B = 1 and 16, 1 repeat, 1 timing, "
                         "short training")
    ap.add_argument("--out", default=None, help="JSON results file")
    ap.add_argument("--render", metavar="JSON", default=None,
                    help="print the table of an existing results file (no benchmark)")
    ap.add_argument("--rst", default=None, help="with --render: write the docs page here")
    ap.add_argument("--notes", default=None,
                    help="with --render: JSON list of observations appended to the page "
                         "(default: <results>_notes.json when it exists)")
    ap.add_argument("--merge", nargs=2, metavar=("NEW", "REASON"), default=None,
                    help="replace the cells of --out by those of the results file NEW "
                         "(a partial re-run), recording REASON")
    ap.add_argument("--worker", choices=SYSTEMS, help=argparse.SUPPRESS)
    ap.add_argument("--spec", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.quick:
        args.networks, args.batches, args.repeats, args.inner = ["64-128-10"], [1, 16], 1, 1
    if args.repeats < 1 or args.inner < 1:
        ap.error("--repeats and --inner must be >= 1")
    return args


if __name__ == "__main__":
    _args = parse_args()
    if _args.worker:
        worker_main(_args.worker, _args.spec)
    elif _args.merge:
        merge_results(_args.out, *_args.merge)
    elif _args.render:
        with open(_args.render) as _fh:
            _res = json.load(_fh)
        _notes = _args.notes or os.path.splitext(_args.render)[0] + "_notes.json"
        if os.path.exists(_notes):        # hand-written observations on the run, if any
            with open(_notes) as _fh:
                _res["notes"] = json.load(_fh)
        print(render_table(_res))
        if _args.rst:
            with open(_args.rst, "w") as _fh:
                _fh.write(render_rst(_res, os.path.relpath(_args.render)))
    else:
        main(_args)
