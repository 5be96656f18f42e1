"""Findings and reports: severities, the [U] downgrade, CDS/FHIR mapping, JSON and text."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mps_analgesia as mps
from mps_analgesia.cds_hooks import CDS_INDICATOR
from mps_analgesia.fhir import FHIR_SEVERITY
from mps_analgesia.report import (
    INTENDED_USE,
    SEVERITIES,
    Finding,
    NotChecked,
    Report,
)


def _finding(severity: str = "error", level: str = "V", **kw: object) -> Finding:
    return Finding("dose.max-daily", severity, "Too much.", level=level, **kw)  # type: ignore[arg-type]


def _report(*findings: Finding, not_checked: tuple[NotChecked, ...] = (), **kw: object) -> Report:
    return Report(findings=findings, not_checked=not_checked, **kw)  # type: ignore[arg-type]


class TestFinding:
    @pytest.mark.parametrize("severity", SEVERITIES)
    def test_severities(self, severity: str) -> None:
        """error, warning and info are the severities."""
        assert _finding(severity).severity == severity

    def test_unknown_severity_is_refused(self) -> None:
        """Any other severity is a ValueError."""
        with pytest.raises(ValueError, match="severity must be one of"):
            _finding("critical")

    def test_unverified_error_becomes_warning(self) -> None:
        """An error resting on a [U] value becomes a warning, and the message says why."""
        f = _finding("error", level="U")
        assert f.severity == "warning"
        assert f.message.startswith("Too much.")
        assert "unverified [U] value" in f.message
        assert "warning, not an error" in f.message

    @pytest.mark.parametrize("level", ["V", "S"])
    def test_verified_error_stays_error(self, level: str) -> None:
        """An error on a [V] or [S] value stays an error, message unchanged."""
        f = _finding("error", level=level)
        assert (f.severity, f.message) == ("error", "Too much.")

    @pytest.mark.parametrize("severity", ["warning", "info"])
    def test_unverified_warning_is_unchanged(self, severity: str) -> None:
        """A [U] warning or info is left as it is."""
        f = _finding(severity, level="U")
        assert (f.severity, f.message) == (severity, "Too much.")

    @pytest.mark.parametrize(
        ("severity", "cds", "fhir"),
        [
            ("error", "critical", "high"),
            ("warning", "warning", "moderate"),
            ("info", "info", "low"),
        ],
    )
    def test_cds_and_fhir_mapping(self, severity: str, cds: str, fhir: str) -> None:
        """Severities map to CDS Hooks indicators and FHIR DetectedIssue severities."""
        f = _finding(severity)
        assert (f.cds_indicator, f.fhir_severity) == (cds, fhir)
        assert (CDS_INDICATOR[severity], FHIR_SEVERITY[severity]) == (cds, fhir)

    def test_to_dict(self) -> None:
        """to_dict has every field, the mappings, and JSON-ready values."""
        f = Finding(
            "dose.max-daily",
            "error",
            "Too much.",
            step=2,
            source=["acetaminophen-otc-label"],
            detail={"daily_dose": "5000 mg/day"},
            arithmetic="1250 mg × 4 doses/day = 5000 mg/day > 4000 mg/day",
            level="S",
        )
        d = f.to_dict()
        assert d == {
            "code": "dose.max-daily",
            "severity": "error",
            "message": "Too much.",
            "step": 2,
            "source": ["acetaminophen-otc-label"],
            "level": "S",
            "arithmetic": "1250 mg × 4 doses/day = 5000 mg/day > 4000 mg/day",
            "detail": {"daily_dose": "5000 mg/day"},
            "cds_indicator": "critical",
            "fhir_severity": "high",
        }
        assert json.loads(json.dumps(d)) == d

    def test_source_is_a_tuple_and_finding_hashes(self) -> None:
        """Sources are kept as a tuple; a finding is hashable (detail is not hashed)."""
        f = _finding(source=["a", "b"], detail={"x": [1]})
        assert f.source == ("a", "b")
        assert hash(f) == hash(_finding(source=["a", "b"], detail={"x": [2]}))


class TestReport:
    def test_empty_report(self) -> None:
        """A report with nothing in it reads 'no findings', never 'ok', and is complete."""
        r = Report()
        assert r.status == "no findings"
        assert r.complete
        assert not r.has_errors
        assert r.steps == ()

    def test_status_order(self) -> None:
        """errors > warnings > incomplete > no findings."""
        missing = (NotChecked("dose.max-daily", 0, "catalog limit"),)
        assert _report(_finding("error"), _finding("warning")).status == "errors"
        assert _report(_finding("warning"), not_checked=missing).status == "warnings"
        assert _report(_finding("info"), not_checked=missing).status == "incomplete"
        assert _report(_finding("info")).status == "no findings"

    @settings(max_examples=50)
    @given(
        st.lists(st.sampled_from(SEVERITIES)),
        st.lists(st.sampled_from(["weight", "catalog limit"]), max_size=2),
    )
    def test_status_is_never_ok(self, severities: list[str], missing: list[str]) -> None:
        """Whatever the findings, the status is one of four words, never 'ok'."""
        r = _report(
            *(_finding(s) for s in severities),
            not_checked=tuple(NotChecked("x", None, m) for m in missing),
        )
        assert r.status in ("errors", "warnings", "incomplete", "no findings")
        assert r.complete == (not missing)
        assert r.has_errors == ("error" in severities)

    def test_severity_views_and_counts(self) -> None:
        """errors, warnings, infos and counts split the findings by severity."""
        r = Report(
            findings=(_finding("error", step=0), _finding("warning", step=1), _finding("info")),
            passed=(("dose.max-single", 0),),
            not_checked=(NotChecked("dose.max-single", 1, "catalog limit"),),
        )
        assert [f.severity for f in r.errors + r.warnings + r.infos] == ["error", "warning", "info"]
        assert r.counts == {
            "flagged": 3,
            "passed": 1,
            "not_checked": 1,
            "not_applicable": 0,
            "error": 1,
            "warning": 1,
            "info": 1,
        }
        assert r.summary() == "1 error(s), 1 warning(s), 1 info; 1 check(s) passed, 1 not checked"

    def test_flagged_counts_rule_and_step_once(self) -> None:
        """Two findings of one rule on one step count as one flagged check."""
        r = _report(_finding("error", step=0), _finding("warning", step=0))
        assert r.counts["flagged"] == 1

    def test_to_dict_and_json(self) -> None:
        """to_json is valid JSON holding status, counts, findings, not checked and editions."""
        r = Report(
            findings=(_finding("error", step=0),),
            passed=(("dose.max-single", 0),),
            not_checked=(NotChecked("dose.max-single", 1, "catalog limit", "no limit"),),
            editions={"drugs.toml": "2026-11"},
        )
        data = json.loads(r.to_json())
        assert data == r.to_dict()
        assert data["status"] == "errors"
        assert data["findings"][0]["code"] == "dose.max-daily"
        assert data["not_checked"] == [
            {"rule": "dose.max-single", "step": 1, "missing": "catalog limit", "reason": "no limit"}
        ]
        assert data["passed"] == [{"rule": "dose.max-single", "step": 0}]
        assert data["editions"] == {"drugs.toml": "2026-11"}
        assert data["intended_use"] == INTENDED_USE
        assert "\n" not in r.to_json(indent=None)

    def test_to_json_keeps_non_ascii(self) -> None:
        """The × of the arithmetic is written as is."""
        r = _report(_finding(arithmetic="2 × 3"))
        assert "2 × 3" in r.to_json()

    def test_to_text_has_not_checked_section(self) -> None:
        """The text report lists checks not run, saying they are NOT passed."""
        r = Report(
            findings=(_finding("warning", step=0, arithmetic="a > b", source=["x"]),),
            not_checked=(NotChecked("dose.max-daily", 1, "catalog limit", "no published maximum"),),
            editions={"drugs.toml": "2026-11"},
        )
        text = r.to_text(title="my case")
        assert text.startswith("my case\n")
        assert text.removeprefix("my case\n\n") == mps.render(r, "text")
        words = " ".join(text.split())
        assert "NOT CHECKED" in text
        assert "dose.max-daily (step 2): missing catalog limit: no published maximum" in words
        assert "WARNING dose.max-daily (step 1)" in text
        assert "calculation: a > b" in text
        assert "Data tables: drugs@2026-11" in text  # compact; in full at the end
        assert "drugs.toml: 2026-11" in text
        assert words.endswith(INTENDED_USE)

    def test_to_text_without_findings(self) -> None:
        """A report without findings says so, for the checks that ran only."""
        text = Report().to_text()
        assert "No findings from the checks that ran." in text
        assert "Not checked" not in text

    def test_to_text_orders_by_severity(self) -> None:
        """Errors come before warnings and infos in the text."""
        text = _report(_finding("info"), _finding("error")).to_text()
        assert text.index("ERROR") < text.index("INFO")

    def test_steps_from_regimen(self) -> None:
        """A report keeps the plain-language line of each checked step."""
        reg = mps.Regimen([mps.RadiotherapyStep(total_dose="8 Gy", site="L3")])
        r = Report(regimen=reg)
        assert r.steps == ("radiotherapy to L3: 8 Gy in 1 fraction",)
        assert r.to_text() == mps.render(r, "text")
        assert "1. radiotherapy to L3" in r.to_text()

    def test_not_checked_to_dict(self) -> None:
        """NotChecked has a JSON-ready dict."""
        assert NotChecked("r", None, "weight").to_dict() == {
            "rule": "r",
            "step": None,
            "missing": "weight",
            "reason": "",
        }
