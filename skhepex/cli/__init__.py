"""Command-line interface: ``skhepex demo``, ``skhepex bench`` and ``skhepex serve``.

``skhepex demo`` is the main job: on the embedded digits data it trains a
dense network, runs the HE-PEx variants (dense, magnitude only, Hunter-style
tiles, PPTE), runs real encrypted inference (TenSEAL CKKS) for each selected
model and prints/writes the comparison. ``skhepex bench`` runs the paper-style
evaluation over four tasks and writes JSON, a Markdown table, an RST page for
the docs and Pareto plots. ``skhepex serve`` serves a saved server package
over HTTP (the ``[serve]`` extra, see :mod:`skhepex.serve`).

This module (the parser and :func:`main`) and :mod:`skhepex.cli.output`
(progress lines, tables) import only the standard library, so that
``skhepex --help`` and argument errors are instantaneous; the commands live
in :mod:`skhepex.cli.commands`, imported by :func:`main` when one runs, and
NumPy, scikit-learn, TenSEAL and matplotlib are imported from there
(:mod:`skhepex.cli.serve` for ``serve``: TenSEAL, Starlette, uvicorn).
"""

import argparse
import textwrap
from pathlib import Path

from .output import COLUMN_HELP, DEMO_COLUMNS, Progress, columns_text, format_table

__all__ = ["BENCH_TASKS", "COLUMN_HELP", "DEMO_COLUMNS", "DEFAULT_N_SAMPLES",
           "DEFAULT_REPEATS", "DEFAULT_TILE_SHAPE", "DEFAULT_TOLERANCE", "DEFAULT_HOST",
           "DEFAULT_PORT", "DEFAULT_MAX_BODY_MB", "Progress", "build_parser", "format_table",
           "main"]

#: Tasks of ``skhepex bench`` (names of :data:`skhepex.experiments.TASKS`).
BENCH_TASKS = ("ae", "dae", "mlp", "cnn")

#: Default ``--tile-shape`` of both commands.
DEFAULT_TILE_SHAPE = (8, 8)
#: Default ``--tolerance`` of both commands.
DEFAULT_TOLERANCE = 0.025
#: Default ``--n-samples`` of each command.
DEFAULT_N_SAMPLES = {"demo": 64, "bench": 128}
#: Default ``--repeats`` of both commands: timed encrypted runs per variant.
DEFAULT_REPEATS = 5
#: Default ``--host`` of ``skhepex serve`` (loopback only).
DEFAULT_HOST = "127.0.0.1"
#: Default ``--port`` of ``skhepex serve``.
DEFAULT_PORT = 8000
#: Default ``--max-body-mb`` of ``skhepex serve`` (MiB).
DEFAULT_MAX_BODY_MB = 64.0

_VARIANTS_TEXT = """\
variants (steps of one HEPEx pipeline, with the same settings; only the
presence of each step differs):
  dense   no pruning
  P       magnitude pruning only
  Hunter  tile pruning of the dense network, without permutation
          (Hunter-style structured pruning)
  PPTE    prune, permute, tile-prune, expand (HE-PEx)"""

_SELECTION_TEXT = """\
The digits data is split into training, validation and test parts. Every
variant is fitted on the training part over a grid of sparsities; for each
variant, the candidate with the fewest weight ciphertexts whose validation
score is within --tolerance (relative) of the dense model's is selected. The
test part is used only to report: the test score, and the encrypted inference
of --n-samples test samples, timed --repeats times after a warm-up (median and
spread)."""


def _fill(text):
    """Wrap one paragraph of a help description to 79 columns."""
    return textwrap.fill(text, width=79)


def build_parser():
    """The argument parser of the ``skhepex`` command.

    Building it imports nothing beyond the standard library.

    Returns
    -------
    parser : argparse.ArgumentParser
        The parser, with the sub-commands ``demo``, ``bench`` and ``serve``.
    """
    parser = argparse.ArgumentParser(
        prog="skhepex",
        description="HE-PEx: pruning neural networks for homomorphic encryption. "
                    "Run 'skhepex COMMAND --help' for the options of a command.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                title="commands")

    def common(p, command):
        n_samples = DEFAULT_N_SAMPLES[command]
        p.add_argument("--tile-shape", type=int, nargs=2, default=DEFAULT_TILE_SHAPE,
                       metavar=("T1", "T2"),
                       help="tile shape of the weight packing: rows and columns of a "
                            "tile, powers of two (default: 8 8)")
        p.add_argument("--n-samples", type=int, default=n_samples, metavar="N",
                       help="held-out samples run encrypted per variant "
                            "(default: %(default)s)")
        p.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE, metavar="TOL",
                       help="allowed relative degradation of the validation score "
                            "against dense, in [0, 1) (default: %(default)s)")
        p.add_argument("--repeats", type=int, default=DEFAULT_REPEATS, metavar="R",
                       help="timed encrypted runs per variant after one warm-up, "
                            "interleaved across the variants; latencies are their median "
                            "(default: %(default)s)")
        p.add_argument("--quiet", action="store_true",
                       help="no progress lines on stderr")

    demo = sub.add_parser(
        "demo", formatter_class=argparse.RawDescriptionHelpFormatter,
        help="HE-PEx variants and encrypted inference of one network on digits",
        description=_fill("Train a network on the embedded digits data, prune it with "
                          "each HE-PEx variant, run real encrypted inference (TenSEAL "
                          "CKKS) of the selected models and print the comparison.")
        + f"\n\n{_SELECTION_TEXT}\n\n{_VARIANTS_TEXT}",
        epilog=columns_text())
    demo.add_argument("--model", choices=("mlp", "ae", "dae", "cnn"), default="mlp",
                      help="network: mlp (MLP 64-128-10 classifier), ae (autoencoder "
                           "64-32-64, image compression), dae (autoencoder 64-64-64, "
                           "denoising) or cnn (CNN classifier); the tasks of 'skhepex "
                           "bench' (default: %(default)s)")
    demo.add_argument("--out", type=Path, default=None, metavar="DIR",
                      help="folder to write demo.json (every candidate and the selected "
                           "models) and pareto.png into; default: print only")
    demo.add_argument("--quick", action="store_true",
                      help="small sparsity grids and fewer fine-tuning epochs: about "
                           "half the time of a full run (which takes about a minute for "
                           "mlp on 2 cores); a smoke test, the full grids find cheaper "
                           "models")
    common(demo, "demo")

    bench = sub.add_parser(
        "bench", formatter_class=argparse.RawDescriptionHelpFormatter,
        help="paper-style evaluation over four tasks (JSON, tables, plots)",
        description=_fill("The paper's evaluation on the embedded digits data: every "
                          "task with every variant, then encrypted inference of the "
                          "selected models. Writes into --out: results.json (every "
                          "candidate under 'records', per-task selections under "
                          "'summary'), results.md, results.rst (for the docs) and "
                          "pareto_<task>.png.")
        + f"\n\n{_SELECTION_TEXT}\n\n{_VARIANTS_TEXT}\n\n"
                    "tasks:\n"
                    "  ae   image compression, autoencoder 64-32-64\n"
                    "  dae  denoising, autoencoder 64-64-64 (Gaussian noise, sigma 0.2)\n"
                    "  mlp  classification, MLP 64-128-10\n"
                    "  cnn  classification, CNN conv(16)-conv(32)-dense",
        epilog=columns_text())
    bench.add_argument("--out", type=Path, required=True, metavar="DIR",
                       help="output folder (required); created if missing")
    bench.add_argument("--force", action="store_true",
                       help="write into --out even if it is not empty (its results.* and "
                            "pareto_*.png files are overwritten)")
    bench.add_argument("--tasks", nargs="+", choices=BENCH_TASKS, default=list(BENCH_TASKS),
                       metavar="TASK",
                       help="tasks to run, among %(choices)s (default: all)")
    bench.add_argument("--quick", action="store_true",
                       help="small sparsity grids and fewer fine-tuning epochs")
    bench.add_argument("--no-he", action="store_true",
                       help="skip encrypted inference (no TenSEAL; the latency, memory "
                            "and agreement columns are left out)")
    common(bench, "bench")
    _add_serve(sub)
    return parser


def _add_serve(sub):
    serve = sub.add_parser(
        "serve", formatter_class=argparse.RawDescriptionHelpFormatter,
        help="serve a saved server package over HTTP (needs the [serve] extra)",
        description=_fill("Serve a server package written by HEPredictor.save_server "
                          "(public keys and packed model, no secret key) over HTTP with "
                          "uvicorn. Needs the [serve] extra: pip install 'skhepex[serve]'.")
        + "\n\nendpoints:\n"
          "  GET /health     JSON: the model's public metadata (input size, request-size\n"
          "                  classes, CKKS parameters, fingerprints; no key material)\n"
          "  POST /evaluate  body: EncryptedBatch.serialize() bytes; answer:\n"
          "                  EncryptedResult.serialize() bytes; errors: 4xx/5xx with\n"
          "                  JSON {\"error\": message}\n\n"
          "client: skhepex.he.RemoteServer(url).evaluate(he.encrypt(X)) returns the\n"
          "result bytes for he.decrypt.")
    serve.add_argument("package", type=Path, metavar="PACKAGE",
                       help="server package file (he.save_server(PACKAGE))")
    serve.add_argument("--host", default=DEFAULT_HOST,
                       help="address to bind (default: %(default)s, loopback only; "
                            "the service has no authentication and no TLS: put a "
                            "reverse proxy in front to expose it)")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT,
                       help="TCP port (default: %(default)s; 0 picks a free one)")
    serve.add_argument("--max-body-mb", type=float, default=DEFAULT_MAX_BODY_MB,
                       metavar="MB",
                       help="largest request body in MiB; longer ones are answered 413 "
                            "(default: %(default)g)")
    serve.add_argument("--threads", type=int, default=2, metavar="N",
                       help="evaluations run at once per process, in threads (default: "
                            "%(default)s; SEAL holds the GIL, so more threads add no "
                            "throughput)")
    serve.add_argument("--workers", type=int, default=1, metavar="N",
                       help="worker processes, each with a copy of the model: use the "
                            "cores (default: %(default)s)")
    serve.add_argument("--quiet", action="store_true",
                       help="no start-up lines and no access log on stderr")


def _validate_serve(parser, args):
    if not args.package.is_file():
        parser.error(f"server package {args.package} is not a file")
    if not 0 <= args.port <= 65535:
        parser.error("--port must be in [0, 65535]")
    if not 0 < args.max_body_mb < float("inf"):
        parser.error("--max-body-mb must be positive and finite")
    if args.threads < 1 or args.workers < 1:
        parser.error("--threads and --workers must be at least 1")


def _validate(parser, args):
    if args.command == "serve":
        _validate_serve(parser, args)
        return
    t1, t2 = args.tile_shape
    for t in (t1, t2):
        if t < 1 or t & (t - 1):
            parser.error(f"--tile-shape values must be powers of two, got {t1} {t2}")
    if args.n_samples < 1:
        parser.error("--n-samples must be at least 1")
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if not 0 <= args.tolerance < 1:
        parser.error("--tolerance must be in [0, 1)")
    if args.out is not None and args.out.exists():
        if not args.out.is_dir():
            parser.error(f"--out {args.out} exists and is not a folder")
        if args.command == "bench" and not args.force and any(args.out.iterdir()):
            parser.error(f"--out {args.out} is not empty; pass --force to overwrite "
                         "the results in it")


def main(argv=None):
    """Entry point of the ``skhepex`` console script.

    Parameters
    ----------
    argv : list of str, default=None
        Command-line arguments without the program name; ``None`` reads
        ``sys.argv[1:]``.

    Returns
    -------
    status : int
        Exit status, 0 on success. Argument errors exit with status 2.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    _validate(parser, args)
    progress = Progress(args.quiet)
    if args.command == "serve":
        from .serve import cmd_serve  # TenSEAL, Starlette, uvicorn: only to run

        return cmd_serve(args, progress)
    from . import commands  # NumPy, scikit-learn, the experiments: only to run

    if args.command == "demo":
        return commands.cmd_demo(args, progress)
    return commands.cmd_bench(args, progress)
