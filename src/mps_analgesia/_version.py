"""The package version (one place; read by hatchling and by ``mps_analgesia.__version__``)."""

__version__ = "0.1.0"
