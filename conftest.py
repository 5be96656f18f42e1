"""Repository-level pytest configuration: doctests run from the repository root."""

from typing import Any

collect_ignore = ["src/mps_analgesia/__main__.py"]


def pytest_addoption(parser: Any) -> None:
    parser.addoption(
        "--run-slow", action="store_true", help="also run the tests marked slow (load, faults)"
    )


def pytest_configure(config: Any) -> None:
    config.addinivalue_line(
        "markers", "slow: load and fault tests over real HTTP; run with --run-slow or -m slow"
    )


def pytest_collection_modifyitems(config: Any, items: list[Any]) -> None:
    import pytest

    if config.getoption("--run-slow") or config.getoption("markexpr", "") == "slow":
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow (or -m slow)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
