"""Red team: the methadone peak day on every methadone line, and the shipped multimodal example.

Methadone's respiratory depression peaks later and lasts longer than its analgesia (US Dolophine
label [V]), so wherever a titrated methadone step is shown — its dosage line, its receipt, each
methadone finding, the OME line — the day of its peak daily dose is shown too.  The multimodal
example (Takase 2015 adjuvant methadone 15–30 mg/day, titrated no sooner than every 7 days) must
raise no false warning, and its "not checked" items must be ones a user can act on.
"""

from __future__ import annotations

from pathlib import Path

import mps_analgesia as mps
from mps_analgesia.render import render

M = mps.MethadoneAdjuvantStep
Op = mps.OpioidStep
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "mps-multimodal.toml"


def _takase() -> M:
    """The example's adjuvant methadone: 5 mg every 8 h, 7.5 mg from day 7, 10 mg from day 14
    (Takase 2015 range 15-30 mg/day [S]; Methapain label: no increase for 7 days [V])."""
    return M(
        dose="5 mg",
        every="8 h",
        titration=[{"day": 7, "dose": "7.5 mg"}, {"day": 14, "dose": "10 mg"}],
    )


def test_the_step_line_names_the_peak_day() -> None:
    """The dosage line of a titrated methadone step ends with its peak and the day it starts."""
    text = render(_takase(), "text")
    assert "peak 30 mg/day from day 14" in text


def test_an_untitrated_methadone_line_has_no_peak() -> None:
    """Without a titration there is nothing to say: the line is unchanged."""
    assert "peak" not in render(M(dose="5 mg", every="8 h"), "text")


def test_a_first_line_methadone_titration_names_its_peak() -> None:
    """Methadone first-line (Mercadante 2022 [V]: 6 mg/day start) titrated on day 7 (VA 2016):
    its line names the peak too."""
    step = Op(drug="methadone", dose="2 mg", every="8 h", titration=[{"day": 7, "dose": "3 mg"}])
    assert step.peak_day == 7
    assert "peak 9 mg/day from day 7" in render(step, "text")


def test_the_peak_is_the_first_day_of_the_largest_dose() -> None:
    """A titration that comes back down: the peak is the first day of the largest dose."""
    step = M(
        dose="5 mg",
        every="8 h",
        titration=[{"day": 7, "dose": "10 mg"}, {"day": 14, "dose": "7.5 mg"}],
    )
    assert step.peak_day == 7
    assert step.daily_dose_mg == 30


def test_the_receipt_names_the_peak_day() -> None:
    """The report's calculation lines for the step end with its peak day."""
    report = mps.validate(
        mps.Regimen(
            [
                Op(drug="oxycodone", dose="10 mg", every="12 h", formulation="modified-release"),
                _takase(),
            ]
        ),
        mps.Patient(opioid_tolerant=True),
    )
    assert "peak: 30 mg/day from day 14" in report.to_text()


def test_every_methadone_finding_carries_the_peak_day() -> None:
    """A methadone finding on a titrated step names the peak day (message and detail):
    here the ECG warning (no QTc recorded; VA/DoD schedule [V])."""
    report = mps.validate(
        mps.Regimen(
            [
                Op(drug="oxycodone", dose="10 mg", every="12 h", formulation="modified-release"),
                _takase(),
            ]
        ),
        mps.Patient(opioid_tolerant=True, medications=[]),
    )
    found = [f for f in report.findings if f.code.startswith("methadone.") and f.step == 1]
    assert found
    for f in found:
        assert f.detail["peak_day"] == 14
        assert "day 14" in f.message


def test_an_adjuvant_range_error_names_the_day() -> None:
    """Adjuvant methadone titrated to 20 mg every 8 h (60 mg/day, twice the Takase top [S]):
    the warning-or-error names day 14, the peak."""
    step = M(
        dose="5 mg",
        every="8 h",
        titration=[{"day": 7, "dose": "10 mg"}, {"day": 14, "dose": "20 mg"}],
    )
    report = mps.validate(
        mps.Regimen(
            [Op(drug="oxycodone", dose="20 mg", every="12 h", formulation="modified-release"), step]
        ),
        mps.Patient(opioid_tolerant=True, qtc="420 ms", medications=[]),
    )
    (f,) = [f for f in report.findings if f.code == "methadone.adjuvant-range"]
    assert "day 14" in f.message
    assert f.detail["peak_day"] == 14


class TestMultimodalExample:
    """examples/mps-multimodal.toml, a pharmacist's reading of it."""

    def _report(self) -> mps.Report:
        case = mps.load_case(EXAMPLE)
        return mps.validate(case.regimen, case.patient)

    def test_no_false_warning(self) -> None:
        """The published regimen raises no error and no warning."""
        report = self._report()
        assert not report.errors
        assert not report.warnings

    def test_not_checked_only_what_a_user_can_act_on(self) -> None:
        """Only letrozole, a medicine the library's lists do not know, is not checked (the issue
        keeps missing knowledge as not checked); pregabalin's single dose is not among them."""
        report = self._report()
        reasons = [n.reason for n in report.not_checked]
        assert reasons
        assert all("letrozole" in r for r in reasons)

    def test_pregabalin_single_dose_is_not_applicable(self) -> None:
        """The pregabalin label states a daily maximum only (600 mg/day in two or three divided
        doses; pregabalin-label-secondary [S]): not applicable, with its source."""
        report = self._report()
        (na,) = [a for a in report.not_applicable if a.rule == "dose.max-single" and a.step == 3]
        assert "per day only" in na.reason
        assert na.source == "pregabalin-label-secondary"

    def test_the_ome_line_shows_adjuvant_methadone_apart(self) -> None:
        """The OME finding keeps CDC's MME for reporting (231 MME/day) but its calculation shows
        adjuvant methadone apart: not converted for dosing (CDC 2022: the calculated MME must
        not choose a dose), its peak day, and the total without it (oxycodone 60 mg/day × 1.5
        = 90 MME/day [V])."""
        report = self._report()
        (f,) = [f for f in report.findings if f.code == "opioid.ome-total"]
        assert f.severity == "info"
        assert "231 MME/day" in f.message
        assert "adjuvant methadone not converted for dosing" in f.arithmetic
        assert "peak from day 14" in f.arithmetic
        assert "without it, 90 MME/day" in f.arithmetic
        assert "adjuvant methadone not converted for dosing" in " ".join(report.to_text().split())
