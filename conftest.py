"""Repository-level pytest configuration: doctests run from the repository root."""

collect_ignore = ["src/mps_analgesia/__main__.py"]
