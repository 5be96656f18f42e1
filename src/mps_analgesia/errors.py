"""Errors raised by mps_analgesia.

Every error the library raises derives from :class:`MpsAnalgesiaError`.  Each leaf also derives
from the builtin that matches it, so a caller may catch either::

    MpsAnalgesiaError
    ├── ArgumentError (TypeError)            a public function given a value of the wrong type
    ├── UnitError (ValueError)               a unit that is unknown, unsafe or of the wrong kind
    │   └── DimensionError                   a quantity of the wrong dimension (mg for mL/h)
    ├── StepError (ValueError)               a step or patient that cannot be right (field named)
    ├── UnknownNameError (LookupError)       a name not in a catalog ("did you mean ...")
    │   ├── UnknownDrugError
    │   ├── UnknownRouteError
    │   └── UnknownProductError              a product code or name that cannot be resolved
    ├── CaseFileError (ValueError)           a case or protocol file with problems (all listed)
    │   └── TableFileError                   a local conversion table file with problems
    ├── DataFileError (RuntimeError)         a packaged data file that is broken (a library bug)
    ├── ConversionError (ValueError)         a conversion the tables cannot do (never a number)
    └── ProtocolError (ValueError)           a protocol that cannot be loaded or instantiated
        └── ProtocolFileError                a protocol file with problems (all listed)

Messages say what is wrong, where (file, line, key path, step) and how to fix it.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs

__all__ = [
    "ArgumentError",
    "CaseFileError",
    "ConversionError",
    "DataFileError",
    "DimensionError",
    "MpsAnalgesiaError",
    "Problem",
    "ProtocolError",
    "ProtocolFileError",
    "StepError",
    "TableFileError",
    "UnitError",
    "UnknownDrugError",
    "UnknownNameError",
    "UnknownProductError",
    "UnknownRouteError",
]


class MpsAnalgesiaError(Exception):
    """The root of every error that mps_analgesia raises."""


class ArgumentError(MpsAnalgesiaError, TypeError):
    """A public function called with an argument of the wrong type (a list where a Regimen is
    needed, say).

    Attributes
    ----------
    argument:
        The name of the argument.
    expected:
        What it must be, with an example.
    got:
        The type name of what was given.
    """

    def __init__(self, argument: str, expected: str, got: object) -> None:
        self.argument = argument
        self.expected = expected
        self.got = type(got).__name__
        super().__init__(argument, expected, self.got)

    def __str__(self) -> str:
        return f"{self.argument}: must be {self.expected}, not {self.got}"


def expect(value: object, types: type | tuple[type, ...], argument: str, expected: str) -> None:
    """Raise :class:`ArgumentError` unless ``value`` is one of ``types`` (the entry-point check)."""
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in _as_tuple(types)):
        raise ArgumentError(argument, expected, value)


def _as_tuple(types: type | tuple[type, ...]) -> tuple[type, ...]:
    return types if isinstance(types, tuple) else (types,)


class UnitError(MpsAnalgesiaError, ValueError):
    """A quantity text or unit that cannot be used.

    Attributes
    ----------
    text:
        The text as the user wrote it.
    reason:
        What is wrong with it.
    suggestion:
        A safe spelling to use instead, or ``""``.
    field:
        The field or key path it was read for, or ``""``.
    """

    def __init__(self, text: str, reason: str, suggestion: str = "", field: str = "") -> None:
        self.text = text
        self.reason = reason
        self.suggestion = suggestion
        self.field = field
        super().__init__(text, reason, suggestion, field)

    def __str__(self) -> str:
        where = f"{self.field}: " if self.field else ""
        hint = f"; {self.suggestion}" if self.suggestion else ""
        return f"{where}{self.text!r} {self.reason}{hint}"


class DimensionError(UnitError):
    """A quantity whose dimension cannot be right for its field (for example mg for a volume)."""


class StepError(MpsAnalgesiaError, ValueError):
    """A step, patient or schedule that cannot be right.

    Attributes
    ----------
    field:
        The field at fault (``"dose"``, ``"rate"``, ``"route"`` ...).
    reason:
        What is wrong and how to fix it.
    """

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(field, reason)

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


class UnknownNameError(MpsAnalgesiaError, LookupError):
    """A name that is not in one of the library's catalogs.

    Attributes
    ----------
    kind:
        What was looked up (``"drug"``, ``"route"``, ``"conversion table"`` ...).
    name:
        The name as given.
    suggestions:
        Close known names, best first.
    field:
        The field it was read for, or ``""``.
    """

    def __init__(
        self,
        kind: str,
        name: str,
        suggestions: Sequence[str] = (),
        field: str = "",
        reason: str = "",
    ) -> None:
        self.kind = kind
        self.name = name
        self.suggestions = tuple(suggestions)
        self.field = field
        self.reason = reason or f"unknown {kind} {name!r}"
        super().__init__(kind, name, self.suggestions, field)

    def __str__(self) -> str:
        where = f"{self.field}: " if self.field else ""
        hint = ""
        if self.suggestions:
            hint = "; did you mean " + " or ".join(repr(s) for s in self.suggestions[:3]) + "?"
        return f"{where}{self.reason}{hint}"


class UnknownDrugError(UnknownNameError):
    """A drug name that the drug catalog does not know."""


class UnknownRouteError(UnknownNameError):
    """A route that is unknown, or that the drug does not have."""


class UnknownProductError(UnknownNameError):
    """A medicinal product (RxNorm code, brand, NDC, name) that cannot be resolved."""


@attrs.define(frozen=True)
class Problem:
    """One problem found in a file: where it is and what is wrong.

    ``path`` is the key path (``step[2].dose``), ``line`` the 1-based line in the file when it
    is known, else ``None``.
    """

    path: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class _FileProblems(MpsAnalgesiaError):
    """Shared by the file errors: a file name and every problem found in it, listed at once."""

    def __init__(self, file: str, problems: Sequence[Problem]) -> None:
        self.file = file
        self.problems = tuple(problems)
        super().__init__(file, self.problems)

    def __str__(self) -> str:
        n = len(self.problems)
        head = f"{self.file}: {n} problem{'s' if n != 1 else ''}"
        lines = []
        for p in self.problems:
            loc = f"{self.file}:{p.line}" if p.line is not None else self.file
            lines.append(f"  {loc}: {p}")
        return head + "\n" + "\n".join(lines)


class CaseFileError(_FileProblems, ValueError):
    """A case file (TOML or JSON) with one or more problems; every problem is listed at once.

    Attributes
    ----------
    file:
        The file name, or ``"<data>"`` for in-memory data.
    problems:
        Every :class:`Problem` found, in file order.
    """


class TableFileError(CaseFileError):
    """A local conversion table file (:func:`mps_analgesia.load_table`) with one or more
    problems; every problem is listed at once with its key path and line.

    Attributes
    ----------
    file:
        The file name, or ``"<string>"`` for text.
    problems:
        Every :class:`Problem` found.
    """


class DataFileError(MpsAnalgesiaError, RuntimeError):
    """A packaged data file that is missing or malformed: a defect of the library, please report."""


class ConversionError(MpsAnalgesiaError, ValueError):
    """A conversion the chosen table or scheme cannot do; the library never guesses a number."""


class ProtocolError(MpsAnalgesiaError, ValueError):
    """A protocol that cannot be loaded or instantiated."""


class ProtocolFileError(_FileProblems, ProtocolError):
    """A protocol file with one or more problems; every problem is listed at once.

    Attributes
    ----------
    file:
        The file name, or ``"<data>"`` for in-memory data.
    problems:
        Every :class:`~mps_analgesia.errors.Problem` found (key path, message, line).
    """
