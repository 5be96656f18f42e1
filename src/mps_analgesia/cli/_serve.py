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
        "pip install 'mps-analgesia[serve]').",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port to bind (default 8080)")
    serve.set_defaults(handler=run)


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """Serve until interrupted; returns the exit code."""
    try:
        from ..cds_hooks import serve as serve_forever

        host = f"[{args.host}]" if ":" in args.host else args.host
        print(
            f"mps-analgesia serve: CDS Hooks discovery at http://{host}:{args.port}/cds-services"
            " (Ctrl-C stops)",
            file=err,
            flush=True,
        )
        serve_forever(args.host, args.port)
    except (ImportError, OSError) as exc:
        print(f"mps-analgesia serve: {exc}", file=err)
        return EXIT_INPUT
    return EXIT_OK
