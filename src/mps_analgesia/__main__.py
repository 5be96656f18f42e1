"""``python -m mps_analgesia`` runs the command line."""

from .cli import main

raise SystemExit(main())
