"""A Report as FHIR R4 DetectedIssue resources."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from .. import _catalog
from ..errors import MpsAnalgesiaError
from ..report import Report
from ._base import CS_FINDING, CS_NOT_CHECKED, X_LEVEL, X_NOT_CHECKED, _coding, _ext
from ._write import _resource_type

#: The code (system ``.../CodeSystem/not-checked``) of the DetectedIssue of an order not read.
UNREAD_ORDER: Final = "order.unread"
#: FHIR ``DetectedIssue.severity`` for each finding severity.
FHIR_SEVERITY: Final[Mapping[str, str]] = {"error": "high", "warning": "moderate", "info": "low"}


# ---- Report -> DetectedIssue --------------------------------------------------------------------


def _default_reference(report: Report, index: int) -> str:
    regimen = report.regimen
    if regimen is not None and 0 <= index < len(regimen):
        return f"{_resource_type(regimen[index])}/step-{index}"
    return f"MedicationRequest/step-{index}"


def _source_url(source_ids: Iterable[str]) -> str:
    for sid in source_ids:
        try:
            url = _catalog.source(sid).url
        except MpsAnalgesiaError:
            continue
        if url:
            return url
    return ""


def report_to_fhir(
    report: Report,
    *,
    patient_reference: str = "Patient/patient",
    references: Mapping[int, str] | None = None,
    include_not_checked: bool = True,
) -> list[dict[str, Any]]:
    """The report's findings as FHIR R4 DetectedIssue resources.

    ``severity`` follows :data:`~mps_analgesia.fhir.FHIR_SEVERITY` (error → high, warning →
    moderate, info → low); ``code`` is the finding code; ``detail`` is the message and the
    arithmetic; ``implicated`` references the step's MedicationRequest or ServiceRequest
    (``references`` maps a step index to a reference, default ``MedicationRequest/step-<i>`` as
    written by :func:`to_bundle`); ``reference`` is the DOI link of the first source that has
    one.  With ``include_not_checked``, each check that could not run is also a low-severity
    DetectedIssue (code system ``.../CodeSystem/not-checked``), so an incomplete check never
    reads as clean.  Each of the report's :attr:`~mps_analgesia.report.Report.unread_orders` is
    always a DetectedIssue (code ``order.unread`` in that system, ``implicated`` the order,
    severity ``moderate`` when it may be an opioid, else ``low``): the checks and totals left it
    out.  The ``opioid.ome-total`` finding's detail then says the total is incomplete.

    Example
    -------
    >>> import mps_analgesia as mps
    >>> from mps_analgesia.fhir import report_to_fhir
    >>> step = mps.AdjuvantStep(drug="acetaminophen", role="nociceptive",
    ...                         dose="1250 mg", every="6 h")
    >>> issues = report_to_fhir(mps.validate(mps.Regimen([step])))
    >>> issue = [i for i in issues if i["code"]["coding"][0]["code"] == "dose.max-daily"][0]
    >>> issue["severity"], issue["implicated"][0]["reference"]
    ('high', 'MedicationRequest/step-0')
    """
    references = references or {}
    out: list[dict[str, Any]] = []
    for n, f in enumerate(report.findings):
        detail = f.message
        if f.arithmetic:
            detail += f"\nCalculation: {f.arithmetic}"
        res: dict[str, Any] = {
            "resourceType": "DetectedIssue",
            "id": f"finding-{n}",
            "extension": [_ext(X_LEVEL, valueCode=f.level)],
            "status": "preliminary",
            "code": {"coding": [_coding(CS_FINDING, f.code)], "text": f.code},
            "severity": FHIR_SEVERITY[f.severity],
            "patient": {"reference": patient_reference},
            "detail": detail,
        }
        if f.step is not None:
            ref = references.get(f.step) or _default_reference(report, f.step)
            implicated: dict[str, Any] = {"reference": ref}
            if report.regimen is not None and 0 <= f.step < len(report.regimen):
                implicated["display"] = report.regimen[f.step].describe()
            res["implicated"] = [implicated]
        url = _source_url(f.source)
        if url:
            res["reference"] = url
        if f.source:
            res["evidence"] = [{"detail": [{"display": sid} for sid in f.source]}]
        out.append(res)
    if include_not_checked:
        for n, nc in enumerate(report.not_checked):
            why = f": {nc.reason}" if nc.reason else ""
            res = {
                "resourceType": "DetectedIssue",
                "id": f"not-checked-{n}",
                "extension": [_ext(X_NOT_CHECKED, valueString=nc.missing)],
                "status": "preliminary",
                "code": {"coding": [_coding(CS_NOT_CHECKED, nc.rule)], "text": nc.rule},
                "severity": "low",
                "patient": {"reference": patient_reference},
                "detail": f"Not checked (this is not a pass): missing {nc.missing}{why}",
            }
            if nc.step is not None:
                ref = references.get(nc.step) or _default_reference(report, nc.step)
                res["implicated"] = [{"reference": ref}]
            out.append(res)
    for n, u in enumerate(report.unread_orders):
        opioid = " It may be an opioid." if u.may_be_opioid else ""
        out.append(
            {
                "resourceType": "DetectedIssue",
                "id": f"unread-order-{n}",
                "extension": [_ext(X_NOT_CHECKED, valueString=u.reference)],
                "status": "preliminary",
                "code": {"coding": [_coding(CS_NOT_CHECKED, UNREAD_ORDER)], "text": UNREAD_ORDER},
                "severity": "moderate" if u.may_be_opioid else "low",
                "patient": {"reference": patient_reference},
                "implicated": [{"reference": u.reference, "display": u.name}],
                "detail": f"Order not read (this is not a pass): none of its checks ran and any "
                f"total over the orders, such as the daily OME, leaves it out and is incomplete."
                f"{opioid} Why: {u.message}",
            }
        )
    return out
