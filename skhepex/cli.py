"""Command-line interface: ``skhepex demo`` and ``skhepex bench``.

``skhepex demo`` is the main job: on the embedded digits data it trains a
dense network, runs the HE-PEx variants (dense, magnitude only, Hunter-style
tiles, PPTE), runs real encrypted inference (TenSEAL CKKS) for each selected
model and prints/writes the comparison. ``skhepex bench`` runs the paper-style
evaluation over four tasks and writes JSON, a Markdown table, an RST page for
the docs and Pareto plots.
"""

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

logger = logging.getLogger("skhepex")

NOT_WITHIN = ("* no candidate of this variant was within the tolerance on the validation "
              "split; the one with the best validation score is shown.")
DEMO_COLUMNS = ["variant", "weight_ct", "ct_reduction", "score", "degradation",
                "he_ms_per_sample", "packed_MB", "he_agreement"]


class Progress:
    """One line per stage with the elapsed time, on stderr; silent when quiet."""

    def __init__(self, quiet=False):
        self.quiet = quiet
        self.t0 = time.perf_counter()

    def __call__(self, message):
        if not self.quiet:
            print(f"[{time.perf_counter() - self.t0:7.1f}s] {message}", file=sys.stderr,
                  flush=True)


def format_table(rows, columns, markdown=False):
    """Render ``rows`` (dicts) as an aligned text or Markdown table."""
    cells = [[str(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) if cells else len(c)
              for i, c in enumerate(columns)]
    if markdown:
        out = ["| " + " | ".join(c.ljust(w) for c, w in zip(columns, widths)) + " |",
               "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
        out += ["| " + " | ".join(v.ljust(w) for v, w in zip(row, widths)) + " |"
                for row in cells]
        return "\n".join(out)
    out = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)),
           "  ".join("-" * w for w in widths)]
    out += ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(out)


def _row(variant, rec, he):
    row = {
        "variant": variant,
        "weight_ct": rec["n_ciphertexts"],
        "ct_reduction": f"{100 * rec['ciphertext_reduction']:.1f}%",
        "score": f"{rec['score']:.4f}",
        "degradation": f"{100 * rec['degradation']:.2f}%"
                       + ("" if rec.get("within_tolerance", True) else " *"),
    }
    if he is not None:
        row["he_ms_per_sample"] = f"{1e3 * he['seconds_per_sample']:.2f}"
        row["packed_MB"] = f"{he['packed_model_bytes'] / 2 ** 20:.1f}"
        row["he_agreement"] = f"{100 * he['agreement']:.1f}%"
    return row


def _clean(rec):
    """A JSON-friendly copy of a sweep record (without the fitted model)."""
    return {k: v for k, v in rec.items() if k != "model"}


def run_task(task_name, tile_shape, *, quick, n_samples, tolerance, progress, memory,
             encrypted=True):
    """Sweep, select within tolerance and measure encrypted inference for one task."""
    from .experiments import VARIANTS, load_task, measure_encrypted, select_within, sweep

    task = load_task(task_name)
    progress(f"task {task_name}: {task.description}; tile shape {tile_shape[0]}x{tile_shape[1]}")
    records = sweep(task, tile_shape, memory=memory, progress=progress, quick=quick)
    selected = select_within(records, tolerance)
    X_he = task.X_test[:n_samples]
    results = []
    for variant in VARIANTS:
        rec = selected[variant]
        he = None
        if encrypted:
            progress(f"encrypted inference: {variant} ({rec['n_ciphertexts']} weight ciphertexts,"
                     f" {len(X_he)} samples)")
            he = measure_encrypted(rec["model"], X_he)
            progress(f"  {1e3 * he['seconds_per_sample']:.2f} ms/sample, agreement "
                     f"{100 * he['agreement']:.1f}%")
        results.append({"variant": variant, "selected": _clean(rec), "he": he,
                        "row": _row(variant, rec, he)})
    return task, records, results


def _pareto_png(records, task, metric, path):
    from .plotting import ParetoDisplay

    disp = ParetoDisplay.from_json([_clean(r) for r in records], task=task, score_name=metric)
    disp.ax_.set_title(f"{task}: weight ciphertexts vs held-out {metric}")
    disp.figure_.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(disp.figure_)


def _headline(results):
    """Reductions of PPTE vs dense and vs Hunter (ciphertexts, latency, memory)."""
    by = {r["variant"]: r for r in results}
    if "PPTE" not in by or "dense" not in by:
        return {}
    ppte, dense, hunter = by["PPTE"], by["dense"], by.get("Hunter")
    out = {"ciphertexts_vs_dense": 1 - ppte["selected"]["n_ciphertexts"]
           / dense["selected"]["n_ciphertexts"]}
    if hunter is not None and hunter["selected"]["n_ciphertexts"] \
            and hunter["selected"].get("within_tolerance", True) \
            and ppte["selected"].get("within_tolerance", True):
        # only a comparison at the same degradation budget is meaningful
        out["ciphertexts_vs_hunter"] = 1 - ppte["selected"]["n_ciphertexts"] \
            / hunter["selected"]["n_ciphertexts"]
    if ppte["he"] and dense["he"]:
        out["latency_vs_dense"] = 1 - ppte["he"]["seconds_per_sample"] \
            / dense["he"]["seconds_per_sample"]
        out["memory_vs_dense"] = 1 - ppte["he"]["packed_model_bytes"] \
            / dense["he"]["packed_model_bytes"]
    return out


def cmd_demo(args, progress):
    """``skhepex demo``: one task, four variants, real encrypted inference."""
    with tempfile.TemporaryDirectory() as cache:
        task, records, results = run_task(
            args.model, tuple(args.tile_shape), quick=args.quick, n_samples=args.n_samples,
            tolerance=args.tolerance, progress=progress, memory=cache)
    rows = [r["row"] for r in results]
    print(f"HE-PEx demo: {task.description}, digits, tile {args.tile_shape[0]}x"
          f"{args.tile_shape[1]}, {args.n_samples} encrypted test samples, "
          f"selection within {100 * args.tolerance:.1f}% degradation")
    print(format_table(rows, DEMO_COLUMNS))
    if any(r["degradation"].endswith("*") for r in rows):
        print(NOT_WITHIN)
    head = _headline(results)
    if head:
        print("PPTE vs dense: " + ", ".join(f"{k.split('_vs_')[0]} -{100 * v:.1f}%"
                                           for k, v in head.items() if k.endswith("dense"))
              + (f"; vs Hunter: ciphertexts -{100 * head['ciphertexts_vs_hunter']:.1f}%"
                 if "ciphertexts_vs_hunter" in head else ""))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        payload = {"task": task.name, "description": task.description, "metric": task.metric,
                   "tile_shape": list(args.tile_shape), "tolerance": args.tolerance,
                   "records": [_clean(r) for r in records],
                   "selected": [{k: v for k, v in r.items() if k != "row"} for r in results],
                   "headline": head}
        (args.out / "demo.json").write_text(json.dumps(payload, indent=2, default=float))
        try:
            _pareto_png(records, task.name, task.metric, args.out / "pareto.png")
        except ImportError as exc:
            progress(f"no Pareto plot: {exc}")
        progress(f"wrote {args.out / 'demo.json'} and {args.out / 'pareto.png'}")
    return 0


BENCH_TASKS = ("ae", "dae", "mlp", "cnn")


def _rst_table(rows, columns):
    lines = [".. list-table::", "   :header-rows: 1", ""]
    for i, row in enumerate([dict(zip(columns, columns))] + rows):
        for j, c in enumerate(columns):
            cell = str(row.get(c, "")).replace("*", r"\*")  # a footnote mark, not emphasis
            lines.append(("   * - " if j == 0 else "     - ") + cell)
    return "\n".join(lines)


def cmd_bench(args, progress):
    """``skhepex bench``: the paper's evaluation structure on digits."""
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    all_records, summary, tables_md, tables_rst = [], [], [], []
    with tempfile.TemporaryDirectory() as cache:
        for name in args.tasks:
            task, records, results = run_task(
                name, tuple(args.tile_shape), quick=args.quick, n_samples=args.n_samples,
                tolerance=args.tolerance, progress=progress, memory=cache,
                encrypted=not args.no_he)
            all_records += [_clean(r) for r in records]
            head = _headline(results)
            summary.append({"task": name, "description": task.description,
                            "metric": task.metric, "headline": head,
                            "selected": [{k: v for k, v in r.items() if k != "row"}
                                         for r in results]})
            rows = [r["row"] for r in results]
            cols = [c for c in DEMO_COLUMNS if c in rows[0]]
            tables_md.append(f"### {task.description}\n\n{format_table(rows, cols, True)}\n")
            png = f"pareto_{name}.png"
            try:
                _pareto_png(records, name, task.metric, out / png)
            except ImportError as exc:  # matplotlib missing: tables only
                progress(f"no plot: {exc}")
                png = None
            head_txt = ", ".join(f"{k.replace('_', ' ')} -{100 * v:.1f}%"
                                 for k, v in head.items())
            note = NOT_WITHIN if any(r["degradation"].endswith("*") for r in rows) else ""
            rst = [task.description, "-" * len(task.description), "",
                   _rst_table(rows, cols), ""] + ([note.replace("*", r"\*", 1), ""] if note
                                                  else []) + [f"PPTE: {head_txt}.", ""]
            if png:
                rst += [f".. image:: /benchmarks/{png}", "   :width: 70%", ""]
            tables_rst.append("\n".join(rst))
            tables_md[-1] += f"\n{note}\n" if note else ""
            print(f"\n{task.description}\n{format_table(rows, cols)}\n{note}"
                  f"{chr(10) if note else ''}PPTE: {head_txt}")
    meta = {"tile_shape": list(args.tile_shape), "tolerance": args.tolerance,
            "n_samples": args.n_samples, "quick": args.quick,
            "generated": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    (out / "results.json").write_text(json.dumps(
        {**meta, "records": all_records, "summary": summary}, indent=2, default=float))
    (out / "results.md").write_text(
        f"# skhepex bench ({meta['generated']})\n\n" + "\n".join(tables_md))
    cmd = " ".join(["skhepex", "bench", "--out", str(out)] + (["--quick"] if args.quick else []))
    header = [".. generated by `skhepex bench`; do not edit, regenerate with:",
              f"   {cmd}", "",
              f"Generated {meta['generated']} by ``{cmd}``: digits data, tile shape "
              f"{args.tile_shape[0]}x{args.tile_shape[1]}, selection within "
              f"{100 * args.tolerance:.1f}% degradation on a validation split, "
              f"{args.n_samples} encrypted test samples per variant (TenSEAL CKKS).", ""]
    (out / "results.rst").write_text("\n".join(header) + "\n" + "\n".join(tables_rst))
    progress(f"wrote {out / 'results.json'}, results.md, results.rst and plots")
    return 0


def build_parser():
    """The argument parser of the ``skhepex`` command."""
    parser = argparse.ArgumentParser(
        prog="skhepex",
        description="HE-PEx: pruning neural networks for homomorphic encryption.")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p, n_samples):
        p.add_argument("--tile-shape", type=int, nargs=2, default=(8, 8),
                       metavar=("T1", "T2"), help="tile shape, powers of two (default: 8 8)")
        p.add_argument("--n-samples", type=int, default=n_samples,
                       help=f"encrypted test samples per variant (default: {n_samples})")
        p.add_argument("--tolerance", type=float, default=0.025,
                       help="allowed relative degradation (default: 0.025)")
        p.add_argument("--quiet", action="store_true", help="no progress lines")

    demo = sub.add_parser("demo", help="HE-PEx variants + encrypted inference on digits")
    demo.add_argument("--model", choices=("mlp", "ae", "cnn"), default="mlp",
                      help="network (default: mlp)")
    demo.add_argument("--out", type=Path, default=None,
                      help="folder for demo.json and pareto.png")
    demo.add_argument("--quick", action="store_true",
                      help="small sparsity grids (seconds instead of a minute)")
    common(demo, 64)

    bench = sub.add_parser("bench", help="paper-style evaluation (JSON, tables, plots)")
    bench.add_argument("--out", type=Path, default=Path("docs/benchmarks"),
                       help="output folder (default: docs/benchmarks)")
    bench.add_argument("--tasks", nargs="+", choices=BENCH_TASKS, default=list(BENCH_TASKS))
    bench.add_argument("--quick", action="store_true", help="small sparsity grids")
    bench.add_argument("--no-he", action="store_true", help="skip encrypted inference")
    common(bench, 128)
    return parser


def _validate(parser, args):
    t1, t2 = args.tile_shape
    for t in (t1, t2):
        if t < 1 or t & (t - 1):
            parser.error(f"--tile-shape values must be powers of two, got {t1} {t2}")
    if args.n_samples < 1:
        parser.error("--n-samples must be at least 1")
    if not 0 <= args.tolerance < 1:
        parser.error("--tolerance must be in [0, 1)")
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        parser.error(f"--out {args.out} exists and is not a folder")


def main(argv=None):
    """Entry point of the ``skhepex`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _validate(parser, args)
    progress = Progress(args.quiet)
    if args.command == "demo":
        return cmd_demo(args, progress)
    return cmd_bench(args, progress)
