"""Round trips keep the spelling: a quantity written as '0.2 %' reads back as '0.2 %'."""

from __future__ import annotations

import mps_analgesia as mps
from mps_analgesia.fhir import from_bundle, from_fhir_quantity, to_bundle, to_fhir_quantity


class TestSpelling:
    def test_percent_concentration_keeps_its_spelling(self) -> None:
        """0.2 % goes out as 2 mg/mL with the original text, and reads back as 0.2 %."""
        fhir = to_fhir_quantity(mps.Q("0.2 %"))
        assert (fhir["value"], fhir["code"]) == (2, "mg/mL")
        back = from_fhir_quantity(fhir)
        assert mps._units.format_quantity(back) == "0.2 %"

    def test_original_text_that_disagrees_is_ignored(self) -> None:
        """An original text that says another amount than the value is not used."""
        fhir = to_fhir_quantity(mps.Q("0.2 %"))
        fhir["value"] = 5
        assert mps._units.format_quantity(from_fhir_quantity(fhir)) == "5 mg/mL"

    def test_case_file_round_trip_through_fhir_keeps_text(self) -> None:
        """A block case written to FHIR and read back dumps with its '0.2 %' as written."""
        case = mps.load_case("examples/psoas-block.toml")
        patient, regimen = from_bundle(to_bundle(case.regimen, case.patient))
        text = mps.dumps_case(mps.Case(regimen=regimen, patient=patient))
        original = mps.dumps_case(mps.Case(regimen=case.regimen, patient=case.patient))
        assert text == original
