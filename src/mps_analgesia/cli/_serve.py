"""``mps-analgesia serve``: run the CDS Hooks service (the ``serve`` extra)."""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from ._common import EXIT_INPUT, EXIT_OK

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> None:
    """Add ``serve`` to the subcommands (its options: add them here)."""
    serve = sub.add_parser(
        "serve",
        help="run the CDS Hooks service",
        description="Run the CDS Hooks 2.0 service (needs the 'serve' extra: "
        "pip install 'mps-analgesia[serve]').  Every request needs a JWT bearer token from a "
        "trusted CDS client, configured with --config or the MPS_CDS_* environment variables.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port to bind (default 8080)")
    serve.add_argument(
        "--config",
        metavar="PATH",
        help="the service configuration (TOML: service URL, trusted clients, limits); "
        "default: the file named by MPS_CDS_CONFIG and the environment",
    )
    serve.add_argument(
        "--insecure-no-auth",
        action="store_true",
        help="answer callers without verifying them: for local testing only (logged at start)",
    )
    serve.add_argument(
        "--workers", type=int, default=1, metavar="N", help="worker processes (default 1)"
    )
    serve.add_argument(
        "--table-file",
        metavar="PATH",
        help="a local OME conversion table file (the shipped tables' format) for every request "
        "(server configuration, never from a request); default: service.table_file of the "
        "configuration, else cdc-2022",
    )
    serve.add_argument("--certfile", metavar="PATH", help="TLS certificate (PEM) to serve HTTPS")
    serve.add_argument("--keyfile", metavar="PATH", help="TLS private key (PEM) to serve HTTPS")
    serve.add_argument(
        "--log-level",
        default="info",
        choices=("critical", "error", "warning", "info", "debug"),
        help="log level (default info); request data are never logged",
    )
    serve.set_defaults(handler=run)


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Serve until interrupted; returns the exit code."""
    try:
        from ..cds_hooks import serve as serve_forever

        host = f"[{args.host}]" if ":" in args.host else args.host
        scheme = "https" if args.certfile else "http"
        print(
            f"mps-analgesia serve: CDS Hooks discovery at {scheme}://{host}:{args.port}"
            "/cds-services (Ctrl-C stops)",
            file=err,
            flush=True,
        )
        serve_forever(
            args.host,
            args.port,
            config_file=args.config,
            insecure_no_auth=args.insecure_no_auth,
            workers=args.workers,
            certfile=args.certfile,
            keyfile=args.keyfile,
            log_level=args.log_level,
            table_file=args.table_file,
        )
    except (ImportError, OSError, ValueError) as exc:  # ServiceConfigError is a ValueError
        print(f"mps-analgesia serve: {exc}", file=err)
        return EXIT_INPUT
    return EXIT_OK
