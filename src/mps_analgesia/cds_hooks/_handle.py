"""Answering one request: read it once, validate once, write the cards."""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import attrs

from ..errors import MpsAnalgesiaError, Problem
from ..regimen import Regimen
from ..report import SEVERITIES, Report
from ._cards import finding_card, names_opioid, not_checked_card, unreadable_card
from ._errors import CdsRequestError, outcome
from ._markdown import plain
from ._request import Order as _Order
from ._request import Unreadable, parse_body, read_request
from ._suggest import dose_family, suggestion

if TYPE_CHECKING:
    from ..rules import RuleRegistry

__all__ = ["handle", "internal_error"]

log = logging.getLogger("mps_analgesia.cds_hooks")


#: The patient's numbers a check may compute with, tried one by one when a check overflows.
_PATIENT_NUMBERS: Final = ("age", "weight", "height", "egfr", "creatinine_clearance", "qtc")


def _overflow_text(exc: ArithmeticError) -> str:
    return (
        f"a number is too large or too small for the checks to compute with "
        f"({type(exc).__name__}: {exc})"
    )


def _validate(
    orders: list[_Order],
    patient: Any,
    rules: RuleRegistry | None,
    unreadable: list[Unreadable],
    problems: list[Problem],
    options: Mapping[str, Any] | None = None,
) -> tuple[Report, list[_Order], Any]:
    """Validate; if a check overflows, find the orders and patient values that make it overflow.

    Every value was finite when read, but a finite extreme (``1e300 mg``, a weight of ``1e-300
    kg``) can still overflow inside a check.  Then the orders are re-checked one by one against
    the patient without numbers (an order that overflows on its own gets a not-checked order
    card), and the patient's numbers are added back one by one (one that overflows is reported
    under *could not be read* and left out, so the checks needing it report *not checked*).
    """
    from ..rules import validate

    def attempt(kept: Sequence[_Order], who: Any) -> Report | ArithmeticError:
        try:
            return validate(Regimen([o.step for o in kept]), who, rules=rules, options=options)
        except ArithmeticError as exc:
            return exc

    first = attempt(orders, patient)
    if isinstance(first, Report):
        return first, orders, patient
    bare = attrs.evolve(patient, **dict.fromkeys(_PATIENT_NUMBERS))
    kept: list[_Order] = []
    for order in orders:
        result = attempt([*kept, order], bare)
        if isinstance(result, Report):
            kept.append(order)
        else:
            name = getattr(order.step, "drug", None) or order.step.kind.replace("_", " ")
            unreadable.append(Unreadable(order.reference, str(name), _overflow_text(result)))
    for field in _PATIENT_NUMBERS:
        value = getattr(patient, field)
        if value is None:
            continue
        trial = attrs.evolve(bare, **{field: value})
        result = attempt(kept, trial)
        if isinstance(result, Report):
            bare = trial
        else:
            problems.append(Problem(f"Patient.{field}", _overflow_text(result)))
    final = attempt(kept, bare)
    if isinstance(final, ArithmeticError):  # pragma: no cover - each part passed on its own
        raise final
    return final, kept, bare


def _cards(
    data: Mapping[str, Any],
    rules: RuleRegistry | None,
    not_fetched: Mapping[str, str],
    options: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    request = read_request(data)
    unreadable, problems = request.unreadable, request.problems
    report, orders, _patient = _validate(
        request.orders, request.patient, rules, unreadable, problems, options
    )
    findings = sorted(report.findings, key=lambda f: SEVERITIES.index(f.severity))
    suggestions = {
        i: suggestion(i, orders, report.findings)
        for i in sorted({f.step for f in findings if f.step is not None and dose_family(f.code)})
        if 0 <= i < len(orders)
    }
    # the orders a total may leave out: draft orders not read, and active ones naming an opioid
    left_out = [u for u in unreadable if u.draft or names_opioid(u.name)]
    cards = [finding_card(f, orders, suggestions, left_out) for f in findings]
    cards.extend(unreadable_card(u) for u in unreadable if u.draft)
    nc = not_checked_card(report, orders, request, not_fetched)
    if nc is not None:
        cards.append(nc)
    return cards


def internal_error(exc: BaseException, where: str) -> tuple[int, dict[str, Any]]:
    """A 500 answer for an unexpected exception, logged without any request data.

    The log names the exception type and the code locations (file, line, function) only: an
    exception's message may quote the request, so it is never logged or sent.
    """
    frames = traceback.extract_tb(exc.__traceback__)[-6:]
    trail = " <- ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in reversed(frames))
    log.error("internal error in %s: %s at %s", where, type(exc).__name__, trail)
    return 500, outcome(500, f"internal error ({type(exc).__name__}); it has been logged")


def handle(
    body: bytes | str | Mapping[str, Any],
    *,
    rules: RuleRegistry | None = None,
    not_fetched: Mapping[str, str] | None = None,
    options: Mapping[str, Any] | None = None,
) -> tuple[int, dict[str, Any]]:
    """Answer one CDS Hooks service request: ``(HTTP status, JSON body)``; never raises.

    ``body`` is the request body (bytes or text) or the already parsed JSON object.  A checked
    request gives 200 with ``{"cards": [...]}``; a request that cannot be read gives 400, one
    the library refuses to check 422, and an internal error 500 (logged); every error body is
    OperationOutcome-shaped (:func:`outcome`).  No 200 is ever without ``cards``.
    ``not_fetched`` names prefetch keys the service could not fetch, and why.  ``options``
    are the rule options of the server's configuration (``{"ome_table": table}`` for a local
    conversion table, ``serve --table-file``); a request never sets them.

    Example
    -------
    >>> from mps_analgesia.cds_hooks import handle
    >>> handle(b"{not json")[0]
    400
    >>> status, body = handle({"hook": "order-sign", "hookInstance": "x",
    ...                        "context": {"draftOrders": {"resourceType": "Bundle"}}})
    >>> status, [c["indicator"] for c in body["cards"]]
    (200, [])
    """
    try:
        data = parse_body(body)
        cards = _cards(data, rules, not_fetched or {}, options)
        payload: dict[str, Any] = {"cards": cards}
        json.dumps(payload, allow_nan=False)
        return 200, payload
    except CdsRequestError as exc:
        return exc.status, exc.body()
    except MpsAnalgesiaError as exc:
        return 422, outcome(422, f"the request could not be checked: {plain(str(exc), 300)}")
    except RecursionError as exc:
        return 400, outcome(400, f"the request is nested too deeply ({type(exc).__name__})")
    except Exception as exc:  # the service answers every request; a 500 is a defect, logged
        return internal_error(exc, "handle")
