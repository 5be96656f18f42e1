"""The public API: one curated, sorted ``__all__`` whose every name resolves."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

import pytest

import mps_analgesia as mps
from mps_analgesia import errors


def _isort_key(name: str) -> tuple[int, str]:
    """ruff's RUF022 'isort-style' order: CONSTANTS, then Classes, then everything else."""
    if len(name) > 1 and name.isupper():
        return (0, name)
    if name[:1].isupper():
        return (1, name)
    return (2, name)


def _modules() -> list[str]:
    names = ["mps_analgesia"]
    for info in pkgutil.walk_packages(mps.__path__, prefix="mps_analgesia."):
        if info.name.endswith("__main__"):
            continue  # importing it runs the command line
        names.append(info.name)
    return names


class TestPackageAll:
    def test_all_is_sorted_and_unique(self) -> None:
        """mps.__all__ has no duplicates and is in isort-style order."""
        names = list(mps.__all__)
        assert len(names) == len(set(names))
        assert names == sorted(names, key=_isort_key)

    @pytest.mark.parametrize("name", mps.__all__)
    def test_every_name_resolves(self, name: str) -> None:
        """Every name in __all__ resolves on the package (lazily loaded ones included)."""
        assert getattr(mps, name) is not None

    def test_unknown_attribute_raises(self) -> None:
        """A name the package does not have raises AttributeError, naming it."""
        with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
            mps.nonexistent  # noqa: B018

    def test_public_classes_and_functions_are_exported(self) -> None:
        """Every public class or function of the package found on it is in __all__."""
        for name in mps.__all__:
            getattr(mps, name)  # load the lazy names, as a user would
        missing = []
        for name, value in vars(mps).items():
            if name.startswith("_") or inspect.ismodule(value):
                continue
            if not (inspect.isclass(value) or inspect.isfunction(value)):
                continue
            defined_here = getattr(value, "__module__", "").startswith("mps_analgesia")
            if defined_here and name not in mps.__all__:
                missing.append(name)
        assert missing == []

    def test_issue_contract_names(self) -> None:
        """The names integrators code against (issue 2) are public."""
        contract = {
            "Q",
            "load_case",
            "dump_case",
            "validate",
            "Case",
            "Patient",
            "Regimen",
            "Report",
            "Finding",
            "MpsAnalgesiaError",
            "OpioidStep",
            "MethadoneAdjuvantStep",
            "AdjuvantStep",
            "PsoasCompartmentBlockStep",
            "RadiotherapyStep",
            "data_editions",  # issue 10: editions tied to content
        }
        assert contract <= set(mps.__all__)

    def test_every_library_error_is_exported(self) -> None:
        """Every public MpsAnalgesiaError subclass of errors.py is exported, and rooted."""
        for name, value in vars(errors).items():
            if inspect.isclass(value) and issubclass(value, Exception) and name[0] != "_":
                assert issubclass(value, mps.MpsAnalgesiaError), name
                assert name in mps.__all__, name

    def test_version(self) -> None:
        """__version__ is a PEP 440 style version string."""
        assert re.fullmatch(r"\d+\.\d+(\.\d+)?([ab]|rc|\.dev|\.post)?\d*", mps.__version__)


class TestModuleAll:
    @pytest.mark.parametrize("module", _modules())
    def test_module_all_resolves(self, module: str) -> None:
        """Each module's __all__ (when it has one) is unique and every name resolves."""
        mod = importlib.import_module(module)
        names = getattr(mod, "__all__", None)
        if names is None:
            return
        assert len(names) == len(set(names)), module
        for name in names:
            assert hasattr(mod, name), f"{module}.{name}"
