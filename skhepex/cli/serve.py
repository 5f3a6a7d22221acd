"""The ``skhepex serve`` command (imported when it runs: TenSEAL, Starlette, uvicorn)."""

import os
import sys

__all__ = ["cmd_serve"]

_EXTRA = "skhepex serve needs the [serve] extra: pip install 'skhepex[serve]'"


def _summary(info):
    c = info["ckks"]
    rc = info["request_size_classes"][0]
    return (f"model {info['name'] or '(unnamed)'}: {info['input_size']} inputs -> "
            f"{info['output_size']} outputs, tile {info['tile_shape'][0]}x"
            f"{info['tile_shape'][1]}, CKKS N={c['poly_modulus_degree']}, "
            f"{rc['samples_per_ciphertext']} samples per ciphertext, at most "
            f"{rc['max_samples_per_request']} samples per request")


def cmd_serve(args, progress):
    """Run ``skhepex serve``: serve a server package over HTTP until interrupted.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed and validated arguments of the ``serve`` command.
    progress : callable
        Called with one message per stage.

    Returns
    -------
    status : int
        Exit status: 0 after Ctrl+C (SIGINT; SIGTERM also shuts down
        gracefully, then ends the process by the signal, as uvicorn does), 1
        when the extra is missing, the package is invalid or the address is
        taken.
    """
    try:
        import uvicorn

        from ..serve.app import ENVIRON, create_app, public_metadata
    except ImportError as exc:
        print(f"{_EXTRA} (missing module: {exc.name})", file=sys.stderr)
        return 1
    from ..he import SerializationError, ServerModel

    max_body = int(args.max_body_mb * (1 << 20))
    try:
        server = ServerModel.load(args.package)
    except (OSError, SerializationError) as exc:
        print(f"skhepex serve: cannot load the server package {args.package}: {exc}",
              file=sys.stderr)
        return 1
    progress(f"loaded {args.package}; {_summary(public_metadata(server, max_body))}")
    log = dict(log_level="warning" if args.quiet else "info", access_log=not args.quiet,
               server_header=False, timeout_keep_alive=5, timeout_graceful_shutdown=10)
    if args.workers > 1:
        del server    # each worker process loads its own copy
        os.environ.update({ENVIRON["package"]: str(args.package.resolve()),
                           ENVIRON["max_body_bytes"]: str(max_body),
                           ENVIRON["threads"]: str(args.threads)})
        progress(f"starting {args.workers} worker processes on http://{args.host}:"
                 f"{args.port}")
        try:
            uvicorn.run("skhepex.serve.app:app_from_environ", factory=True, host=args.host,
                        port=args.port, workers=args.workers, **log)
        except KeyboardInterrupt:
            pass
        return 0
    app = create_app(server, max_body_bytes=max_body, threads=args.threads)
    config = uvicorn.Config(app, host=args.host, port=args.port, **log)
    try:
        sock = config.bind_socket()
    except SystemExit:            # uvicorn logged why (e.g. address in use)
        return 1
    port = sock.getsockname()[1]
    progress(f"serving on http://{args.host}:{port} (GET /health, POST /evaluate)")
    try:
        uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:     # uvicorn re-raises Ctrl+C after its graceful shutdown
        pass
    return 0
