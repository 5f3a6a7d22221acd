"""Default HEPredictor against the layout optimised for each request size, side by side.

Run by hand (never by CI)::

    OMP_NUM_THREADS=1 python benchmarks/request_sizes.py \
        --out benchmarks/results/request_sizes.json

For every network of ``benchmarks/vs_helayers.py`` (64-128-10 and
64-128-128-10 trained on digits, 784-256-128-10 with random weights) and every
request size ``n`` (1, 8, 64, 512, 4096; the 784 network stops at 512):

- ``default``: one ``HEPredictor(net, prefit=True).fit()`` per network, all
  settings at their defaults; every request runs on the packing its
  request-size class gets (compiled on the class's first request: one
  warm-up request per size before timing);
- ``explicit``: ``HEPredictor(net, prefit=True, batch_size=n).fit()``, the
  layout the engine optimises for ``n`` (tile shape and CKKS parameters
  chosen for ``n``), ``n`` samples per round trip.

``decision_function`` on the same ``n`` inputs, end to end (encoding,
encryption, evaluation, decryption); the two alternate (default, explicit,
default, ...), ``--repeats`` times after the warm-up; medians of the process
CPU time and of the wall time; the ratio default / explicit (acceptance of the
request-sized issue: <= 1.25 for every network and size).
"""
import argparse
import json
import os
import statistics
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

SIZES = (1, 8, 64, 512, 4096)
MAX_SIZE = {"784-256-128-10": 512}


def _timed(fn):
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


def bench_network(name, sizes, repeats):
    from vs_helayers import build_network

    from skhepex.he import HEPredictor

    net, _, _, X_eval = build_network(name)
    default = HEPredictor(net, prefit=True).fit()
    rows = []
    for n in [s for s in sizes if s <= MAX_SIZE.get(name, max(sizes))]:
        X = np.resize(X_eval, (n, X_eval.shape[1]))
        explicit = HEPredictor(net, prefit=True, batch_size=n).fit()
        ref = net.decision_function(X)
        times = {"default": [], "explicit": []}
        errors = {}
        for key, he in (("default", default), ("explicit", explicit)):   # warm-up
            errors[key] = float(np.abs(he.decision_function(X) - ref).max())
        for _ in range(repeats):
            for key, he in (("default", default), ("explicit", explicit)):
                times[key].append(_timed(lambda: he.decision_function(X)))
        plan = default._sized("predict", n)[0]
        med = {k: dict(wall=statistics.median(t[0] for t in v),
                       cpu=statistics.median(t[1] for t in v)) for k, v in times.items()}
        rows.append(dict(
            network=name, n_samples=n, times=times, median=med,
            ratio_cpu=med["default"]["cpu"] / med["explicit"]["cpu"],
            ratio_wall=med["default"]["wall"] / med["explicit"]["wall"],
            max_abs_err=errors,
            default_layout=dict(tile_shape=list(plan.tile_shape), batch=int(plan.batch),
                                N=int(plan.params.poly_modulus_degree),
                                own_keys=plan.params != default.params_),
            explicit_layout=dict(tile_shape=list(explicit.tile_shape_),
                                 batch=int(explicit.plan_.batch),
                                 N=int(explicit.params_.poly_modulus_degree))))
        r = rows[-1]
        print(f"{name:>15} n={n:<5} default {1e3 * med['default']['cpu'] / n:8.2f} ms/sample "
              f"{r['default_layout']['tile_shape']} | explicit "
              f"{1e3 * med['explicit']['cpu'] / n:8.2f} {r['explicit_layout']['tile_shape']}"
              f" | ratio cpu {r['ratio_cpu']:.2f} wall {r['ratio_wall']:.2f}", flush=True)
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--networks", nargs="+",
                   default=["64-128-10", "64-128-128-10", "784-256-128-10"])
    p.add_argument("--sizes", nargs="+", type=int, default=list(SIZES))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", help="write JSON results here")
    args = p.parse_args()
    warnings.filterwarnings("ignore")
    t0 = time.time()
    rows = [r for name in args.networks for r in bench_network(name, args.sizes, args.repeats)]
    res = dict(benchmark="request_sizes", cpu_count=os.cpu_count(),
               omp_num_threads=os.environ.get("OMP_NUM_THREADS"), repeats=args.repeats,
               rows=rows, worst_ratio_cpu=max(r["ratio_cpu"] for r in rows),
               total_s=time.time() - t0)
    print(f"worst default/explicit (CPU): {res['worst_ratio_cpu']:.2f}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
