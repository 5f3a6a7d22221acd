"""Honest HE-PEx pruning benchmark on digits: equal budgets, validation selection.

Every compared variant gets the same number of candidates (one per point of
a common tile-budget grid), the same total fine-tuning epochs (split over its
rounds by :func:`skhepex.experiments.build_steps`) and the same tile-pruner
settings (global, Taylor-scored, gradual, regrowth, per-layer floor); only
the presence of the steps differs. Candidates are fitted on the task's
``X_fit``; the point of each variant within ``--tolerance`` of the dense
model is selected on the *validation* split ``X_val`` (fewest tiles); the
test split is only reported. Repeated over seeds (data split, dense
training) and fine-tuning draws (the ``random_state`` of the steps).

Variants (:data:`skhepex.experiments.ABLATION_STEPS`; letters Prune,
Permute, Tile-prune, Expand): ``P``, ``T`` (Hunter-style: tile pruning of
the dense network), ``TE``, ``PT``, ``PPT``, ``PPTE`` (HE-PEx,
budget-aware permutation), plus the permutation study: ``PPTE-tiles``
(the original objective: fewest non-zero tiles of the magnitude-pruned
network, permuted once), ``pT`` / ``pTE`` (budget-aware permutation inside
the tile pruner, no magnitude pruning), ``pTE-in`` (also the input
features), and ``default`` (``TilePruner(tile_sparsity=b)`` + ``Expander()``
with every other parameter at its default, including the automatic
fine-tuning length: not an equal-budget variant).

Reported per network and variant: mean ± sd over seeds x draws of the
validation-selected tiles, their test degradation and their tiles relative to
``T``; and, more robust, the tiles at which the test curve *averaged over
seeds x draws* (accuracy or R² against tiles, one point per budget) crosses
dense - tolerance (linear interpolation).

Usage::

    # full (about 30 minutes, one process): JSON with every record and the summary
    OMP_NUM_THREADS=1 python benchmarks/pruning.py --out benchmarks/results/pruning.json
    python benchmarks/pruning.py --quick --seeds 1 --draws 1 --out /tmp/quick.json  # smoke
    python benchmarks/pruning.py --summarise benchmarks/results/pruning.json  # tables
"""

import argparse
import json
import os
import platform
import tempfile
import time
import warnings

import numpy as np
from joblib import Memory
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_limits

from skhepex.experiments import load_task, variant_steps
from skhepex.experiments.variants import ABLATION_STEPS, build_steps
from skhepex.pruning import Expander, HEPEx, TilePruner
from skhepex.tiling import TileLayout

#: Networks that are tasks of :func:`skhepex.experiments.load_task` as is.
NETWORKS = ("mlp", "ae", "cnn")

#: Every network of the benchmark: (task, estimator parameters, image size).
#: Training parameters are pinned (not the estimators' defaults): the dense
#: networks converge (the autoencoder in ~280 epochs) and fine-tuning uses the
#: same learning rate whatever the defaults become.
NETWORK_SPECS = {
    "mlp": ("mlp", {"hidden_layer_sizes": (128, 128), "learning_rate_init": 1e-3,
                    "max_iter": 200, "tol": 1e-4}, 8),
    "ae": ("ae", {"hidden_layer_sizes": (128, 32, 128), "learning_rate_init": 1e-3,
                  "max_iter": 1000, "tol": 1e-4}, 8),
    "cnn": ("cnn", {"learning_rate_init": 1e-2, "max_iter": 100, "tol": 1e-4}, 8),
    "mlp16": ("mlp", {"hidden_layer_sizes": (128, 64), "learning_rate_init": 1e-3,
                      "max_iter": 200, "tol": 1e-4}, 16),
}

#: The variants of :data:`skhepex.experiments.VARIANT_DOC` (kept for ``candidates``).
BENCH_VARIANTS = ("dense", "P", "Hunter", "prune+tiles", "PPTE")

#: Ablation and permutation-study variants: steps used and permutation objective.
STUDY = {
    **{name: (used, "budget") for name, used in ABLATION_STEPS.items()},
    "PPTE-tiles": (ABLATION_STEPS["PPTE"], "tiles"),
    "pT": (("tiles",), "inside"),
    "pTE": (("tiles", "expand"), "inside"),
    "pTE-in": (("tiles", "expand"), "inside-inputs"),
    "default": (("tiles", "expand"), "defaults"),
}

#: Total fine-tuning epochs of every variant, split over its rounds (the
#: remainder goes to the expander; without one, up to 2 epochs are unused).
#: The autoencoder recovers slowly (measured: 80 epochs leave it 11% below
#: dense at 70% tile sparsity, 400 within 1.2%).
EPOCHS = {"mlp": 80, "ae": 480, "cnn": 80, "mlp16": 80}

#: Weight sparsity of the magnitude pruner (variants with P).
SPARSITY = {"mlp": 0.9, "ae": 0.8, "cnn": 0.8, "mlp16": 0.9}

#: Tile budgets (tile_sparsity), the same for every variant; P uses SPARSITY_GRID.
TILE_GRID = {"mlp": (0.85, 0.9, 0.93, 0.95, 0.97),
             "ae": (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9),
             "cnn": (0.8, 0.85, 0.9, 0.95, 0.97),
             "mlp16": (0.85, 0.9, 0.95, 0.97)}
SPARSITY_GRID = (0.5, 0.7, 0.9, 0.95, 0.99)

#: Variants run per network by default (the CNN is the slowest: fewer variants).
DEFAULT_VARIANTS = {
    "mlp": ("P", "T", "TE", "PT", "PPT", "PPTE", "PPTE-tiles", "pTE", "default"),
    "ae": ("T", "PPTE", "pTE", "default"),
    "cnn": ("T", "pTE", "default"), "mlp16": ("T", "pTE", "pTE-in", "default"),
}

#: TilePruner ``row_cost`` of the compatibility helper :func:`candidates`.
ROW_COST = {"mlp": 0.0, "ae": 0.0, "cnn": 0.0}


def network_task(name, quick=False, seed=0):
    """The task of a benchmark network (:data:`NETWORK_SPECS`) for one seed."""
    task, params, size = NETWORK_SPECS[name]
    params = dict(params)
    if quick:
        params["max_iter"] = 30 if name != "cnn" else 10
    return load_task(task, random_state=seed, estimator_params=params, image_size=size)


def grids(name, quick):
    """Sparsity grids of :func:`candidates` (compatibility with ``skhepex bench``)."""
    if quick:
        return {"P": [0.9], "Hunter": [0.8], "mp": [0.9], "tiles": [0.8]}
    return {"P": list(SPARSITY_GRID), "Hunter": list(TILE_GRID[name]),
            "mp": [SPARSITY[name]], "tiles": list(TILE_GRID[name])}


def candidates(name, quick, ft, row_cost=0.0, row_weight=1.0, grid=None):
    """Yield ``(variant, params, steps)`` of the :data:`BENCH_VARIANTS` over a grid."""
    g = grid or grids(name, quick)

    def steps(variant, s=0.0, t=0.0):
        return variant_steps(variant, s, t, ft, row_weight=row_weight, row_cost=row_cost)

    yield "dense", {}, steps("dense")
    for s in g["P"]:
        yield "P", {"sparsity": s}, steps("P", s=s)
    for t in g["Hunter"]:
        yield "Hunter", {"tile_sparsity": t}, steps("Hunter", t=t)
    for variant in ("prune+tiles", "PPTE"):
        for s in g["mp"]:
            for t in g["tiles"]:
                yield variant, {"sparsity": s, "tile_sparsity": t}, steps(variant, s, t)


def study_steps(variant, net, budget, epochs, random_state):
    """Steps of a :data:`STUDY` variant at one budget (tile sparsity, or sparsity for P)."""
    used, perm = STUDY[variant]
    if perm == "defaults":   # every parameter at its default but the budget and the seed
        return [("tiles", TilePruner(tile_sparsity=budget, random_state=random_state)),
                ("expand", Expander(random_state=random_state))]
    s = budget if used == ("prune",) else SPARSITY[net]
    steps = build_steps(used, s, budget, epochs=epochs, random_state=random_state,
                        permutation="tiles" if perm == "tiles" else "budget")
    if perm.startswith("inside"):
        steps[2][1].set_params(permute=True, permute_inputs=perm.endswith("inputs"))
    return steps


def _min_layer_tiles(est, tile_shape):
    return min(lt.n_nonzero_tiles for lt in TileLayout(est, tile_shape).layers)


def fit_points(net, seeds, draws, variants, tile_shape, memory, quick=False, log=print):
    """Fit every candidate; one JSON-friendly record per fitted model."""
    records = []
    grid = TILE_GRID[net][1::2] if quick else TILE_GRID[net]
    pgrid = SPARSITY_GRID[1::2] if quick else SPARSITY_GRID
    epochs = 12 if quick else EPOCHS[net]
    for seed in seeds:
        task = network_task(net, quick, seed)
        for draw in draws:
            rs = 1000 * seed + draw
            todo = [("dense", None, build_steps((), epochs=epochs))] if draw == draws[0] else []
            for v in variants:
                for b in (pgrid if v == "P" else grid):
                    todo.append((v, b, study_steps(v, net, b, epochs, rs)))
            for variant, budget, steps in todo:
                t0 = time.time()
                h = HEPEx(task.estimator, steps, tile_shape=tile_shape, memory=memory)
                h.fit(task.X_fit, task.y_fit)
                rec = {"network": net, "seed": seed, "draw": draw, "variant": variant,
                       "budget": budget, "n_ciphertexts": int(h.n_ciphertexts_),
                       "n_tiles": int(h.history_[0]["n_tiles"]),
                       "min_layer_tiles": _min_layer_tiles(h.estimator_, tile_shape),
                       "val_score": float(h.score(task.X_val, task.y_val)),
                       "test_score": float(h.score(task.X_test, task.y_test)),
                       "seconds": time.time() - t0}
                records.append(rec)
                log(f"{net:<6}s{seed} d{draw} {variant:<10} b={budget!s:<5} "
                    f"tiles={rec['n_ciphertexts']:>4} val={rec['val_score']:.4f} "
                    f"test={rec['test_score']:.4f} ({rec['seconds']:.1f}s)")
    return records


def select_on_validation(points, dense, tolerance):
    """Fewest tiles among ``points`` whose *validation* score is within tolerance.

    Reads only ``"val_score"`` and ``"n_ciphertexts"`` (never the test score).

    Parameters
    ----------
    points : list of dict
        Candidates of one variant, seed and draw.
    dense : dict
        The dense record of the same seed.
    tolerance : float
        Allowed relative degradation of the validation score.

    Returns
    -------
    selected : dict or None
        The selected record, ``None`` when no candidate is within tolerance.
    """
    floor = dense["val_score"] - tolerance * abs(dense["val_score"])
    ok = [p for p in points if p["val_score"] >= floor]
    if not ok:
        return None
    return min(ok, key=lambda p: (p["n_ciphertexts"], -p["val_score"]))


def _ms(values):
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return None
    return [float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0]


def crossing(tiles, degradation, tolerance):
    """Fewest tiles at which a curve is still within tolerance (interpolated).

    The curve's points are sorted by decreasing tiles; the last point within
    ``tolerance`` is found, and the crossing is interpolated linearly towards
    the next point (out of tolerance). ``None`` if no point is within.

    Parameters
    ----------
    tiles : sequence of float
        Tiles of every point.
    degradation : sequence of float
        Relative degradation of every point.
    tolerance : float
        Allowed degradation.

    Returns
    -------
    tiles : float or None
    """
    order = np.argsort(-np.asarray(tiles, dtype=float), kind="stable")
    t = np.asarray(tiles, dtype=float)[order]
    d = np.asarray(degradation, dtype=float)[order]
    ok = np.flatnonzero(d <= tolerance)
    if ok.size == 0:
        return None
    i = int(ok[-1])
    if i == len(t) - 1:
        return float(t[i])
    f = (tolerance - d[i]) / (d[i + 1] - d[i])
    return float(t[i] + f * (t[i + 1] - t[i]))


def summarise(records, tolerance, reference="T"):
    """Per network and variant: validation-selected points and averaged curves."""
    out = {}
    for net in dict.fromkeys(r["network"] for r in records):
        recs = [r for r in records if r["network"] == net]
        dense = {r["seed"]: r for r in recs if r["variant"] == "dense"}
        runs = sorted({(r["seed"], r["draw"]) for r in recs if r["variant"] != "dense"})
        variants = list(dict.fromkeys(r["variant"] for r in recs if r["variant"] != "dense"))
        sel = {}
        for v in variants:
            sel[v] = {}
            for seed, draw in runs:
                pts = [r for r in recs if r["variant"] == v and r["seed"] == seed
                       and r["draw"] == draw]
                if pts:
                    sel[v][(seed, draw)] = select_on_validation(pts, dense[seed], tolerance)
        n_dense = _ms([d["n_ciphertexts"] for d in dense.values()])
        rows = {}
        for v in variants:
            chosen = {k: p for k, p in sel[v].items() if p is not None}
            deg = [(dense[k[0]]["test_score"] - p["test_score"]) / abs(dense[k[0]]["test_score"])
                   for k, p in chosen.items()]
            vs_ref = [p["n_ciphertexts"] / sel[reference][k]["n_ciphertexts"] - 1.0
                      for k, p in chosen.items()
                      if reference in sel and sel[reference].get(k) is not None]
            vs_dense = [1.0 - p["n_ciphertexts"] / dense[k[0]]["n_ciphertexts"]
                        for k, p in chosen.items()]
            # curves averaged over seeds x draws, one point per budget
            budgets = list(dict.fromkeys(r["budget"] for r in recs if r["variant"] == v))
            curve = []
            for b in budgets:
                pts = [r for r in recs if r["variant"] == v and r["budget"] == b]
                rel = lambda p, key: ((dense[p["seed"]][key] - p[key])  # noqa: E731
                                      / abs(dense[p["seed"]][key]))
                curve.append({"budget": b,
                              "tiles": float(np.mean([p["n_ciphertexts"] for p in pts])),
                              "test_degradation": float(np.mean([rel(p, "test_score")
                                                                 for p in pts])),
                              "val_degradation": float(np.mean([rel(p, "val_score")
                                                                for p in pts])),
                              "min_layer_tiles": int(min(p["min_layer_tiles"] for p in pts))})
            rows[v] = {
                "n_runs": len(sel[v]), "n_within": len(chosen),
                "tiles": _ms([p["n_ciphertexts"] for p in chosen.values()]),
                "reduction_vs_dense": _ms(vs_dense),
                "test_degradation": _ms(deg),
                f"tiles_vs_{reference}": _ms(vs_ref),
                "curve": curve,
                "curve_tiles_test": crossing([c["tiles"] for c in curve],
                                             [c["test_degradation"] for c in curve], tolerance),
                "curve_tiles_val": crossing([c["tiles"] for c in curve],
                                            [c["val_degradation"] for c in curve], tolerance),
            }
        out[net] = {"dense_tiles": n_dense,
                    "dense_test_score": _ms([d["test_score"] for d in dense.values()]),
                    "dense_val_score": _ms([d["val_score"] for d in dense.values()]),
                    "variants": rows}
    return out


def _pm(ms, fmt="{:.0f}", scale=1.0):
    if ms is None:
        return "-"
    return fmt.format(scale * ms[0]) + " ± " + fmt.format(abs(scale) * ms[1]).lstrip("+")


def table(summary, reference="T"):
    """The summary as a reStructuredText list-table (also readable as text)."""
    lines = [".. list-table::", "   :header-rows: 1", "",
             "   * - network", "     - variant", "     - within budget",
             "     - tiles (val-selected)", "     - vs dense", f"     - vs {reference}",
             "     - test degradation", "     - tiles on averaged curve (test / val)"]
    for net, s in summary.items():
        lines += [f"   * - {net}", "     - dense", "     -", f"     - {_pm(s['dense_tiles'])}",
                  "     -", "     -", "     -", "     -"]
        for v, r in s["variants"].items():
            cross = "/".join("-" if c is None else f"{c:.0f}"
                             for c in (r["curve_tiles_test"], r["curve_tiles_val"]))
            lines += [f"   * - {net}", f"     - {v}", f"     - {r['n_within']}/{r['n_runs']}",
                      f"     - {_pm(r['tiles'])}",
                      f"     - {_pm(r['reduction_vs_dense'], '{:+.0f}%', -100)}",
                      f"     - {_pm(r[f'tiles_vs_{reference}'], '{:+.0f}%', 100)}",
                      f"     - {_pm(r['test_degradation'], '{:.1f}%', 100)}",
                      f"     - {cross}"]
    return "\n".join(lines)


def curves_table(summary):
    """Averaged curves: mean tiles and mean test degradation per budget (list-table)."""
    lines = [".. list-table::", "   :header-rows: 1", "",
             "   * - network", "     - variant", "     - budget: mean tiles (test degradation)"]
    for net, s in summary.items():
        for v, r in s["variants"].items():
            pts = "; ".join(f"{c['budget']}: {c['tiles']:.0f} ({100 * c['test_degradation']:.1f}%)"
                            for c in r["curve"])
            lines += [f"   * - {net}", f"     - {v}", f"     - {pts}"]
    return "\n".join(lines)


def build_parser():
    """The benchmark's argument parser."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="pruning_benchmark.json",
                        help="JSON output path (default: %(default)s)")
    parser.add_argument("--table", default=None, help="also write the table (.rst) here")
    parser.add_argument("--quick", action="store_true", help="tiny smoke run")
    parser.add_argument("--networks", nargs="+", choices=list(NETWORK_SPECS),
                        default=list(NETWORK_SPECS), metavar="NET",
                        help="networks among %(choices)s (default: all)")
    parser.add_argument("--variants", nargs="+", choices=list(STUDY), default=None,
                        help="variants (default: DEFAULT_VARIANTS of each network)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds (default: 3)")
    parser.add_argument("--draws", type=int, default=2,
                        help="fine-tuning draws per seed (default: 2)")
    parser.add_argument("--tile-shape", default="8x8", metavar="T1xT2")
    parser.add_argument("--tolerance", type=float, default=0.025,
                        help="relative degradation allowed w.r.t. dense (default: 0.025)")
    parser.add_argument("--summarise", default=None, metavar="JSON",
                        help="only re-summarise the records of a previous run's JSON")
    parser.add_argument("--cache", default=None,
                        help="joblib cache directory (default: a new temporary one)")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.summarise:
        with open(args.summarise) as f:
            records = json.load(f)["records"]
        summary = summarise(records, args.tolerance)
        text = table(summary) + "\n\n" + curves_table(summary)
        if args.table:
            with open(args.table, "w") as f:
                f.write(text + "\n")
        print(text)
        return summary
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    tile_shape = tuple(int(v) for v in args.tile_shape.split("x"))
    memory = Memory(args.cache or tempfile.mkdtemp(prefix="skhepex-bench-"), verbose=0)
    seeds, draws = list(range(args.seeds)), list(range(args.draws))
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    t_start = time.time()
    records = []
    with threadpool_limits(limits=1):
        for net in args.networks:
            variants = args.variants or DEFAULT_VARIANTS[net]
            records += fit_points(net, seeds, draws, variants, tile_shape, memory,
                                  quick=args.quick, log=lambda m: print(m, flush=True))
            with open(args.out + ".partial", "w") as f:   # until the run completes
                json.dump({"records": records}, f)
    summary = summarise(records, args.tolerance)
    results = {"config": {"quick": args.quick, "tolerance": args.tolerance,
                          "tile_shape": list(tile_shape), "seeds": seeds, "draws": draws,
                          "epochs": EPOCHS, "sparsity": SPARSITY,
                          "tile_grid": TILE_GRID, "sparsity_grid": SPARSITY_GRID,
                          "networks": {n: NETWORK_SPECS[n][0] + " "
                                       + network_task(n, args.quick).description
                                       for n in args.networks},
                          "platform": platform.platform()},
               "summary": summary, "records": records,
               "seconds": time.time() - t_start}
    with open(args.out, "w") as f:
        json.dump(results, f, indent=1)
    if os.path.exists(args.out + ".partial"):
        os.remove(args.out + ".partial")
    text = table(summary) + "\n\n" + curves_table(summary)
    if args.table:
        with open(args.table, "w") as f:
            f.write(text + "\n")
    print(text)
    print(f"\ntotal {results['seconds']:.0f}s; JSON written to {args.out}")
    return results


if __name__ == "__main__":
    main()
