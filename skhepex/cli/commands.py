"""The ``skhepex demo`` and ``skhepex bench`` commands (imported when a command runs)."""

import json
import tempfile
import time

from ..experiments import (VARIANTS, json_record, load_task, measure_encrypted, select_within,
                           sweep)
from . import BENCH_TASKS, DEFAULT_N_SAMPLES, DEFAULT_TILE_SHAPE, DEFAULT_TOLERANCE
from .output import DEMO_COLUMNS, NOT_WITHIN, format_table, rst_table

__all__ = ["cmd_bench", "cmd_demo", "run_task"]


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


def run_task(task_name, tile_shape, *, quick, n_samples, tolerance, progress, memory,
             encrypted=True):
    """Sweep, select within tolerance and measure encrypted inference for one task.

    Parameters
    ----------
    task_name : str
        Name of the task (see :func:`skhepex.experiments.load_task`).
    tile_shape : tuple of int (t1, t2)
        Tile shape of every pruning step and of the encrypted inference.
    quick : bool
        Small sparsity grids.
    n_samples : int
        Held-out samples run encrypted per variant.
    tolerance : float
        Allowed relative degradation of the validation score.
    progress : callable
        Called with one message per stage (e.g. a :class:`skhepex.cli.Progress`).
    memory : str or joblib.Memory
        Cache of the fitted steps (the dense network is trained once).
    encrypted : bool, default=True
        Run the encrypted inference; ``False`` skips it (no TenSEAL needed).

    Returns
    -------
    task : skhepex.experiments.Task
        The task.
    records : list of dict
        Every fitted candidate (see :func:`skhepex.experiments.sweep`).
    results : list of dict
        One per variant of :data:`skhepex.experiments.VARIANTS`, with keys
        ``"variant"``, ``"selected"`` (the JSON record of the selected
        model), ``"he"`` (the measurement of
        :func:`skhepex.experiments.measure_encrypted`, or ``None``) and
        ``"row"`` (the table row, keys of :data:`skhepex.cli.COLUMN_HELP`).
    """
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
        results.append({"variant": variant, "selected": json_record(rec), "he": he,
                        "row": _row(variant, rec, he)})
    return task, records, results


def _json_records(records):
    return [json_record(r) for r in records]


def _pareto_png(records, task, metric, path):
    from ..plotting import ParetoDisplay

    disp = ParetoDisplay.from_json(_json_records(records), task=task, score_name=metric)
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


#: Parameters and Returns of a command function, appended by :func:`_command_doc`.
_COMMAND_SECTIONS = """Parameters
----------
args : argparse.Namespace
    Parsed and validated arguments of the ``{name}`` command.
progress : callable
    Called with one message per stage.

Returns
-------
status : int
    Exit status, 0.
"""


def _command_doc(name):
    """Decorator appending :data:`_COMMAND_SECTIONS` for command ``name`` to a docstring."""
    def decorate(func):
        from inspect import cleandoc

        if func.__doc__:  # None under python -OO
            func.__doc__ = f"{cleandoc(func.__doc__)}\n\n{_COMMAND_SECTIONS.format(name=name)}"
        return func

    return decorate


@_command_doc("demo")
def cmd_demo(args, progress):
    """Run ``skhepex demo``: one task, four variants, real encrypted inference."""
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
                   "records": _json_records(records),
                   "selected": [{k: v for k, v in r.items() if k != "row"} for r in results],
                   "headline": head}
        (args.out / "demo.json").write_text(json.dumps(payload, indent=2, default=float))
        try:
            _pareto_png(records, task.name, task.metric, args.out / "pareto.png")
        except ImportError as exc:
            progress(f"no Pareto plot: {exc}")
        progress(f"wrote {args.out / 'demo.json'} and {args.out / 'pareto.png'}")
    return 0


def _bench_command(args):
    """The ``skhepex bench`` command line that reproduces ``args`` (non-defaults only)."""
    parts = ["skhepex", "bench", "--out", str(args.out)]
    if tuple(args.tasks) != BENCH_TASKS:
        parts += ["--tasks", *args.tasks]
    if args.quick:
        parts.append("--quick")
    if args.no_he:
        parts.append("--no-he")
    if tuple(args.tile_shape) != DEFAULT_TILE_SHAPE:
        parts += ["--tile-shape", *map(str, args.tile_shape)]
    if args.n_samples != DEFAULT_N_SAMPLES["bench"]:
        parts += ["--n-samples", str(args.n_samples)]
    if args.tolerance != DEFAULT_TOLERANCE:
        parts += ["--tolerance", str(args.tolerance)]
    return " ".join(parts)


@_command_doc("bench")
def cmd_bench(args, progress):
    """Run ``skhepex bench``: the paper's evaluation structure on digits.

    Writes ``results.json``, ``results.md``, ``results.rst`` and
    ``pareto_<task>.png`` into ``args.out``.
    """
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    all_records, summary, tables_md, tables_rst = [], [], [], []
    with tempfile.TemporaryDirectory() as cache:
        for name in args.tasks:
            task, records, results = run_task(
                name, tuple(args.tile_shape), quick=args.quick, n_samples=args.n_samples,
                tolerance=args.tolerance, progress=progress, memory=cache,
                encrypted=not args.no_he)
            all_records += _json_records(records)
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
                   rst_table(rows, cols), ""] + ([note.replace("*", r"\*", 1), ""] if note
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
    cmd = _bench_command(args)
    he_text = ("no encrypted inference" if args.no_he else
               f"{args.n_samples} encrypted test samples per variant (TenSEAL CKKS)")
    header = [".. generated by `skhepex bench`; do not edit, regenerate with:",
              f"   {cmd} --force", "",
              f"Generated {meta['generated']} by ``{cmd}``: digits data, tile shape "
              f"{args.tile_shape[0]}x{args.tile_shape[1]}, selection within "
              f"{100 * args.tolerance:.1f}% degradation on a validation split, "
              f"{he_text}.", ""]
    (out / "results.rst").write_text("\n".join(header) + "\n" + "\n".join(tables_rst))
    progress(f"wrote {out / 'results.json'}, results.md, results.rst and plots")
    return 0
