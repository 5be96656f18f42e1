"""Real orders: product-coded R4 MedicationRequests in the shapes EHRs send.

Each case is an order as an EHR writes it (product-level RxNorm codes, brand and generic,
counts of tablets or patches, display text, non-SNOMED routes with text, Timing.code, dose
ranges, PRN maxima, syringe drivers), its expected daily dose per ingredient and its MME,
derived by hand in the comment above it (CDC 2022 factors unless a table is named; the
transmucosal fentanyl factors are the CDC/CMS analytic file's, in table cdc-2016).

The CDC opioid CDS implementation guides' example orders (cqframework opioid-mme-r4,
MMECalculatorTests) are rebuilt in the same shapes at the end and give CDC's own TotalMME.
"""

from __future__ import annotations

from typing import Any

import pytest

import mps_analgesia as mps
from mps_analgesia.fhir import read_order_sign, steps_from_resource

UCUM = "http://unitsofmeasure.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
SNOMED = "http://snomed.info/sct"
ORAL = {"coding": [{"system": SNOMED, "code": "26643006", "display": "Oral route"}]}
#: An EHR's own route code system, with text (as Epic sends it).
EHR_ORAL = {
    "coding": [{"system": "urn:oid:1.2.840.114350.1.13.0.1.7.4.798268.7025", "code": "15"}],
    "text": "oral",
}
SUBCUT = {"coding": [{"system": SNOMED, "code": "34206005"}], "text": "Subcutaneous"}
IV = {"coding": [{"system": SNOMED, "code": "47625008"}], "text": "Intravenous"}


def _q(value: float, code: str, unit: str = "") -> dict[str, Any]:
    return {"value": value, "unit": unit or code.strip("{}"), "system": UCUM, "code": code}


def _every(hours: float, **more: Any) -> dict[str, Any]:
    return {"repeat": {"frequency": 1, "period": hours, "periodUnit": "h", **more}}


def _order(
    code: str,
    display: str,
    dose: dict[str, Any] | None = None,
    *,
    timing: dict[str, Any] | None = None,
    route: dict[str, Any] | None = None,
    **dosage: Any,
) -> dict[str, Any]:
    d: dict[str, Any] = {"text": f"{display} (as ordered)"}
    if timing is not None:
        d["timing"] = timing
    if route is not None:
        d["route"] = route
    if dose is not None:
        d["doseAndRate"] = [
            {"type": {"coding": [{"code": "ordered"}]}, "doseQuantity": dose},
        ]
    d.update(dosage)
    return {
        "resourceType": "MedicationRequest",
        "id": f"rx-{code}",
        "status": "active",
        "intent": "order",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/medicationrequest-category",
                        "code": "community",
                    }
                ]
            }
        ],
        "medicationCodeableConcept": {
            "coding": [{"system": RXNORM, "code": code, "display": display}],
            "text": display,
        },
        "subject": {"reference": "Patient/example"},
        "authoredOn": "2026-12-01",
        "dosageInstruction": [d],
    }


TABLET = _q(1, "{tablet}", "tablet")
CASES: list[tuple[str, dict[str, Any], dict[str, float], str, float | None]] = [
    # 1. Oxycodone ER 10 mg, 1 tablet every 12 h: 20 mg/day x 1.5 = 30 MME (CDC's own example).
    (
        "oxycodone ER generic",
        _order(
            "1049502",
            "12 HR oxycodone hydrochloride 10 MG Extended Release Oral Tablet",
            TABLET,
            timing=_every(12),
            route=ORAL,
        ),
        {"oxycodone": 20.0},
        "cdc-2022",
        30.0,
    ),
    # 2. OxyContin 10 mg (brand code), 2 tablets BID by Timing.code: 40 mg/day x 1.5 = 60 MME.
    (
        "OxyContin brand, timing code BID",
        _order(
            "1049504",
            "Abuse-Deterrent 12 HR oxycodone hydrochloride 10 MG Extended Release Oral Tablet "
            "[Oxycontin]",
            _q(2, "{tablet}", "tablet"),
            timing={"code": {"coding": [{"code": "BID"}], "text": "twice daily"}},
            route=EHR_ORAL,
        ),
        {"oxycodone": 40.0},
        "cdc-2022",
        60.0,
    ),
    # 3. Percocet 5/325, 1-2 tablets every 4-6 h PRN, at most 8 tablets a day: the high end is
    #    2 tablets (10 mg oxycodone, 650 mg acetaminophen); 8 tablets / 2 = 4 doses a day:
    #    oxycodone 40 mg/day, acetaminophen 2600 mg/day.  With the PRN maximum counted:
    #    40 x 1.5 = 60 MME.
    (
        "Percocet PRN range with a tablet maximum",
        _order(
            "1049640",
            "acetaminophen 325 MG / oxycodone hydrochloride 5 MG Oral Tablet [Percocet]",
            timing=_every(4, periodMax=6),
            route=ORAL,
            asNeededCodeableConcept={"text": "moderate pain"},
            doseAndRate=[{"doseRange": {"low": TABLET, "high": _q(2, "{tablet}", "tablet")}}],
            maxDosePerPeriod={"numerator": _q(8, "{tablet}"), "denominator": _q(1, "d")},
        ),
        {"oxycodone": 40.0, "acetaminophen": 2600.0},
        "cdc-2022 with_prn_maximum",
        60.0,
    ),
    # 4. Norco 5/325, 1 tablet QID: hydrocodone 20 mg/day = 20 MME (CDC's footnote example);
    #    acetaminophen 1300 mg/day.
    (
        "Norco QID",
        _order(
            "857004",
            "acetaminophen 325 MG / hydrocodone bitartrate 5 MG Oral Tablet [Norco]",
            TABLET,
            timing={"code": {"coding": [{"code": "QID"}]}},
            route=ORAL,
        ),
        {"hydrocodone": 20.0, "acetaminophen": 1300.0},
        "cdc-2022",
        20.0,
    ),
    # 5. Fentanyl 25 mcg/h patch, 1 patch every 72 h, no route element: transdermal from the
    #    dose form; 25 x 2.4 = 60 MME.
    (
        "fentanyl patch without route",
        _order(
            "245134",
            "72 HR fentanyl 0.025 MG/HR Transdermal System",
            _q(1, "{patch}", "patch"),
            timing=_every(72),
        ),
        {"fentanyl": 0.6},
        "cdc-2022",
        60.0,
    ),
    # 6. Duragesic 12 mcg/h: 12 x 2.4 = 28.8 MME.
    (
        "Duragesic 12",
        _order(
            "583490",
            "72 HR fentanyl 0.012 MG/HR Transdermal System [Duragesic]",
            _q(1, "{patch}", "patch"),
            timing={"repeat": {"frequency": 1, "period": 3, "periodUnit": "d"}},
        ),
        {"fentanyl": 0.288},
        "cdc-2022",
        28.8,
    ),
    # 7. Fentanyl buccal film 200 mcg, 1 film every 4 h PRN, at most 4 a day: 800 mcg/day;
    #    film 0.18 per mcg = 144 MME (cdc-2016, the CDC/CMS analytic file).
    (
        "fentanyl buccal film",
        _order(
            "858092",
            "fentanyl 0.2 MG Buccal Film",
            _q(1, "{film}", "film"),
            timing=_every(4),
            asNeededBoolean=True,
            maxDosePerPeriod={"numerator": _q(4, "{dose}"), "denominator": _q(24, "h")},
        ),
        {"fentanyl": 0.8},
        "cdc-2016 with_prn_maximum",
        144.0,
    ),
    # 8. Fentora 100 mcg buccal tablet PRN, at most 4 a day: 400 mcg/day x 0.13 = 52 MME.
    (
        "Fentora buccal tablet",
        _order(
            "668622",
            "fentanyl 0.1 MG Buccal Tablet [Fentora]",
            TABLET,
            timing=_every(4),
            asNeededBoolean=True,
            maxDosePerPeriod={"numerator": _q(4, "1"), "denominator": _q(1, "d")},
        ),
        {"fentanyl": 0.4},
        "cdc-2016 with_prn_maximum",
        52.0,
    ),
    # 9. Actiq 200 mcg lozenge every 6 h PRN: 4 doses, 800 mcg/day x 0.13 = 104 MME.
    (
        "Actiq lozenge",
        _order(
            "261106",
            "fentanyl 0.2 MG Oral Lozenge [Actiq]",
            _q(1, "{lozenge}", "lozenge"),
            timing=_every(6),
            asNeededBoolean=True,
        ),
        {"fentanyl": 0.8},
        "cdc-2016 with_prn_maximum",
        104.0,
    ),
    # 10. Morphine oral solution 2 mg/mL, 5 mL every 4 h: 10 mg x 6 = 60 mg/day = 60 MME.
    (
        "morphine oral solution in mL",
        _order(
            "892589",
            "morphine sulfate 2 MG/ML Oral Solution",
            _q(5, "mL"),
            timing=_every(4),
            route=ORAL,
        ),
        {"morphine": 60.0},
        "cdc-2022",
        60.0,
    ),
    # 11. Hydromorphone oral solution 1 mg/mL, 2 mL every 4 h PRN: 2 mg x 6 = 12 mg/day;
    #     with the PRN maximum counted 12 x 5 = 60 MME.
    (
        "hydromorphone oral solution PRN",
        _order(
            "897657",
            "hydromorphone hydrochloride 1 MG/ML Oral Solution",
            _q(2, "mL"),
            timing=_every(4),
            route=ORAL,
            asNeededBoolean=True,
        ),
        {"hydromorphone": 12.0},
        "cdc-2022 with_prn_maximum",
        60.0,
    ),
    # 12. Morphine IR 15 mg tablet every 4 h, a 'calculated' doseAndRate next to the 'ordered'
    #     one: the ordered one is read; 15 x 6 = 90 mg/day = 90 MME.
    (
        "morphine IR, ordered and calculated doses",
        dict(
            _order("892582", "morphine sulfate 15 MG Oral Tablet", timing=_every(4), route=ORAL),
            dosageInstruction=[
                {
                    "timing": _every(4),
                    "route": ORAL,
                    "doseAndRate": [
                        {
                            "type": {"coding": [{"code": "calculated"}]},
                            "doseQuantity": _q(15, "mg"),
                        },
                        {"type": {"coding": [{"code": "ordered"}]}, "doseQuantity": TABLET},
                    ],
                }
            ],
        ),
        {"morphine": 90.0},
        "cdc-2022",
        90.0,
    ),
    # 13. MS Contin 30 mg at 08:00 and 20:00: 60 mg/day = 60 MME.
    (
        "MS Contin at times of day",
        _order(
            "892660",
            "morphine sulfate 30 MG Extended Release Oral Tablet [MS Contin]",
            TABLET,
            timing={"repeat": {"timeOfDay": ["08:00:00", "20:00:00"]}},
            route=ORAL,
        ),
        {"morphine": 60.0},
        "cdc-2022",
        60.0,
    ),
    # 14. Dilaudid 2 mg, 1-2 tablets every 4 h PRN: high end 4 mg x 6 = 24 mg/day; x 5 = 120.
    (
        "Dilaudid PRN dose range",
        _order(
            "897698",
            "hydromorphone hydrochloride 2 MG Oral Tablet [Dilaudid]",
            timing=_every(4),
            route=ORAL,
            asNeededBoolean=True,
            doseAndRate=[{"doseRange": {"low": TABLET, "high": _q(2, "{tablet}", "tablet")}}],
        ),
        {"hydromorphone": 24.0},
        "cdc-2022 with_prn_maximum",
        120.0,
    ),
    # 15. Tapentadol 50 mg every 6 h: 200 mg/day x 0.4 = 80 MME.
    (
        "tapentadol",
        _order("825411", "tapentadol 50 MG Oral Tablet", TABLET, timing=_every(6), route=ORAL),
        {"tapentadol": 200.0},
        "cdc-2022",
        80.0,
    ),
    # 16. Tramadol 50 mg, 1-2 tablets every 6 h (HL7 v3 TAB count): high 100 mg x 4 =
    #     400 mg/day x 0.2 = 80 MME.
    (
        "tramadol dose range in TAB",
        _order(
            "835603",
            "tramadol hydrochloride 50 MG Oral Tablet",
            timing=_every(6),
            route=ORAL,
            doseAndRate=[
                {
                    "doseRange": {
                        "low": {
                            "value": 1,
                            "system": "http://terminology.hl7.org/CodeSystem/v3-orderableDrugForm",
                            "code": "TAB",
                        },
                        "high": {
                            "value": 2,
                            "system": "http://terminology.hl7.org/CodeSystem/v3-orderableDrugForm",
                            "code": "TAB",
                        },
                    }
                }
            ],
        ),
        {"tramadol": 400.0},
        "cdc-2022",
        80.0,
    ),
    # 17. Ultracet, 2 tablets every 6 h: tramadol 75 x 4 = 300 mg/day x 0.2 = 60 MME;
    #     acetaminophen 650 x 4 = 2600 mg/day.
    (
        "Ultracet",
        _order(
            "836397",
            "acetaminophen 325 MG / tramadol hydrochloride 37.5 MG Oral Tablet [Ultracet]",
            _q(2, "{tablet}", "tablet"),
            timing=_every(6),
            route=ORAL,
        ),
        {"tramadol": 300.0, "acetaminophen": 2600.0},
        "cdc-2022",
        60.0,
    ),
    # 18. Methadone 5 mg TID: 15 mg/day x 4.7 = 70.5 MME.
    (
        "methadone TID",
        _order(
            "864718",
            "methadone hydrochloride 5 MG Oral Tablet",
            TABLET,
            timing={"repeat": {"frequency": 3, "period": 1, "periodUnit": "d"}},
            route=ORAL,
        ),
        {"methadone": 15.0},
        "cdc-2022",
        70.5,
    ),
    # 19. Tylenol with Codeine #3, 1 tablet every 6 h: codeine 120 mg/day x 0.15 = 18 MME;
    #     acetaminophen 1200 mg/day.
    (
        "Tylenol with codeine",
        _order(
            "993837",
            "acetaminophen 300 MG / codeine phosphate 30 MG Oral Tablet [Tylenol with Codeine]",
            TABLET,
            timing=_every(6),
            route=ORAL,
        ),
        {"codeine": 120.0, "acetaminophen": 1200.0},
        "cdc-2022",
        18.0,
    ),
    # 20. Syringe driver: morphine 10 mg/mL, 20 mg over 24 h subcutaneously (rateRatio):
    #     20 mg/day; CDC 2022 has no subcutaneous factor: not converted (never 0).
    (
        "syringe driver rateRatio",
        _order(
            "892531",
            "morphine sulfate 10 MG/ML Injectable Solution",
            route=SUBCUT,
            doseAndRate=[{"rateRatio": {"numerator": _q(20, "mg"), "denominator": _q(24, "h")}}],
        ),
        {"morphine": 20.0},
        "cdc-2022",
        None,
    ),
    # 21. IV infusion in mL/h: morphine 10 mg/mL at 0.1 mL/h = 1 mg/h = 24 mg/day; not
    #     converted by CDC 2022.
    (
        "IV infusion in mL/h",
        _order(
            "892531",
            "morphine sulfate 10 MG/ML Injectable Solution",
            route=IV,
            doseAndRate=[{"rateQuantity": _q(0.1, "mL/h")}],
        ),
        {"morphine": 24.0},
        "cdc-2022",
        None,
    ),
    # 22. Lazanda nasal spray 100 mcg/actuation, 1 spray every 4 h PRN, at most 4 a day:
    #     400 mcg/day x 0.16 = 64 MME (cdc-2016).
    (
        "Lazanda nasal spray",
        _order(
            "1115575",
            "fentanyl 0.1 MG/ACTUAT Metered Dose Nasal Spray [Lazanda]",
            _q(1, "{spray}", "spray"),
            timing=_every(4),
            asNeededBoolean=True,
            maxDosePerPeriod={"numerator": _q(4, "{dose}"), "denominator": _q(24, "h")},
        ),
        {"fentanyl": 0.4},
        "cdc-2016 with_prn_maximum",
        64.0,
    ),
    # 23. Subsys sublingual spray 100 mcg (RxNorm "Mucosal Spray"), route from the dose form;
    #     every 4 h PRN, at most 4 a day: 400 mcg/day x 0.18 (oral spray) = 72 MME (cdc-2016).
    (
        "Subsys sublingual spray",
        _order(
            "1237055",
            "fentanyl 0.1 MG/ACTUAT Mucosal Spray [Subsys]",
            _q(1, "{actuation}", "actuation"),
            timing=_every(4),
            asNeededBoolean=True,
            maxDosePerPeriod={"numerator": _q(4, "{dose}"), "denominator": _q(24, "h")},
        ),
        {"fentanyl": 0.4},
        "cdc-2016 with_prn_maximum",
        72.0,
    ),
    # 24. BuTrans 10 mcg/h, 1 patch every 7 days: 10 mcg/h = 0.24 mg/day; CDC 2022 does not
    #     convert buprenorphine: not converted.
    (
        "BuTrans patch",
        _order(
            "904874",
            "168 HR buprenorphine 0.01 MG/HR Transdermal System [BuTrans]",
            _q(1, "{patch}", "patch"),
            timing={"repeat": {"frequency": 1, "period": 1, "periodUnit": "wk"}},
        ),
        {"buprenorphine": 0.24},
        "cdc-2022",
        None,
    ),
]


def _ome(steps: tuple[Any, ...], spec: str) -> Any:
    table, _, prn = spec.partition(" ")
    return mps.daily_ome(mps.Regimen(list(steps)), table=table, prn=prn or "regular_only")


class TestRealOrders:
    @pytest.mark.parametrize(
        ("order", "daily", "table", "mme"),
        [pytest.param(o, d, t, m, id=name) for name, o, d, t, m in CASES],
    )
    def test_order_reads_to_its_daily_dose_and_mme(
        self, order: dict[str, Any], daily: dict[str, float], table: str, mme: float | None
    ) -> None:
        """The order reads unchanged; each ingredient's daily dose and the MME are as derived."""
        steps = steps_from_resource(order)
        assert {s.drug: pytest.approx(s.daily_dose_mg) for s in steps} == {
            k: pytest.approx(v) for k, v in daily.items()
        }
        result = _ome(steps, table)
        if mme is None:
            assert not result.complete
            assert [s.drug for s in result.not_converted] == [steps[0].drug]
        else:
            assert result.complete
            assert result.low.magnitude == pytest.approx(mme)
            assert result.high.magnitude == pytest.approx(mme)

    def test_there_are_at_least_twenty(self) -> None:
        """The suite holds at least 20 product-coded orders."""
        assert len(CASES) >= 20

    def test_contained_medication_of_an_ehr(self) -> None:
        """An order whose medication is a contained Medication (product code) reads the same."""
        order = _order("1049621", "oxycodone hydrochloride 5 MG Oral Tablet", TABLET)
        order["dosageInstruction"][0].update(timing=_every(4), route=ORAL)
        order["contained"] = [
            {
                "resourceType": "Medication",
                "id": "med",
                "code": order.pop("medicationCodeableConcept"),
            }
        ]
        order["medicationReference"] = {"reference": "#med"}
        (step,) = steps_from_resource(order)
        # 5 mg x 6 = 30 mg/day x 1.5 = 45 MME
        assert step.daily_dose_mg == 30.0
        assert mps.daily_ome(mps.Regimen([step])).low.magnitude == pytest.approx(45.0)

    def test_an_unread_order_makes_the_total_incomplete(self) -> None:
        """An NDC-only order next to a readable one is unread, and listed as unread."""
        ndc = _order("0", "", TABLET, timing=_every(4), route=ORAL)
        ndc["id"] = "ndc"
        ndc["medicationCodeableConcept"] = {
            "coding": [{"system": "http://hl7.org/fhir/sid/ndc", "code": "59011-410-10"}]
        }
        good = CASES[0][1]
        bundle = {"resourceType": "Bundle", "entry": [{"resource": good}, {"resource": ndc}]}
        read = read_order_sign({"draftOrders": bundle})
        assert [o.reference for o in read.orders] == ["MedicationRequest/rx-1049502"]
        assert [(u.reference, "NDC" in u.message) for u in read.unread] == [
            ("MedicationRequest/ndc", True)
        ]


# ---- the CDC opioid CDS guides' example orders (cqframework opioid-mme-r4) -------------------


def _cdc_order(code: str, display: str, dosage: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "status": "active",
        "intent": "order",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/medicationrequest-category",
                        "code": "community",
                    }
                ]
            }
        ],
        "medicationCodeableConcept": {
            "coding": [{"system": RXNORM, "code": code, "display": display}]
        },
        "subject": {"reference": "Patient/example"},
        "authoredOn": "2020-06-26",
        "dosageInstruction": [dosage],
    }


_OXY_ER_60 = ("1049593", "oxycodone hydrochloride 60 MG 12 HR Extended Release Oral Tablet")
CDC_EXAMPLES = [
    # MMECalculatorTests patient-mme-less-than-fifty: 10 mg every 12 h -> TotalMME 30.
    (
        "mme-less-than-fifty",
        _cdc_order(
            *_OXY_ER_60,
            {
                "timing": {"repeat": {"frequency": 1, "period": 12.0, "periodUnit": "h"}},
                "asNeededBoolean": False,
                "doseAndRate": [{"doseQuantity": _q(10, "mg")}],
            },
        ),
        30.0,
    ),
    # patient-mme-greater-than-fifty: 1 patch of 75 mcg/h every 3 days -> TotalMME 180.
    (
        "mme-greater-than-fifty",
        _cdc_order(
            "197696",
            "72 HR Fentanyl 0.075 MG/HR Transdermal System",
            {
                "timing": {"repeat": {"frequency": 1, "period": 3.0, "periodUnit": "d"}},
                "asNeededBoolean": False,
                "doseAndRate": [{"doseQuantity": _q(1.0, "{patch}", "patch")}],
            },
        ),
        180.0,
    ),
    # patient-mme-with-timeofday: 10 mg at 10:00 and 22:00 from a start date -> TotalMME 30.
    (
        "mme-with-timeofday",
        _cdc_order(
            *_OXY_ER_60,
            {
                "timing": {
                    "repeat": {
                        "boundsPeriod": {"start": "2020-09-28"},
                        "timeOfDay": ["10:00:00", "22:00:00"],
                    }
                },
                "asNeededBoolean": False,
                "doseAndRate": [{"doseQuantity": _q(10, "mg")}],
            },
        ),
        30.0,
    ),
    # mmecalc (an Epic-shaped morphine order): 20 mg once daily at 10:00, ingredient and
    # non-RxNorm codings, an EHR route code with text -> TotalMME 20.
    (
        "mmecalc",
        {
            **_cdc_order(
                "7052",
                "morphine",
                {
                    "text": "Take 1 capsule (20 mg total) by mouth daily.",
                    "timing": {
                        "repeat": {
                            "boundsPeriod": {"start": "2020-10-29"},
                            "timeOfDay": ["10:00:00"],
                        },
                        "code": {"text": "1000 every 24h scheduled"},
                    },
                    "asNeededBoolean": False,
                    "route": EHR_ORAL,
                    "method": {"text": "Take"},
                    "doseAndRate": [{"doseQuantity": _q(20, "mg")}],
                },
            ),
            "medicationCodeableConcept": {
                "coding": [
                    {"system": "http://www.whocc.no/atc", "code": "N02AA01"},
                    {"system": RXNORM, "code": "7052"},
                    {"system": RXNORM, "code": "30236"},
                ]
            },
        },
        20.0,
    ),
]


class TestCdcExamples:
    @pytest.mark.parametrize(
        ("order", "mme"), [pytest.param(o, m, id=n) for n, o, m in CDC_EXAMPLES]
    )
    def test_cdc_example_gives_cdc_mme(self, order: dict[str, Any], mme: float) -> None:
        """The CDC guide's example order reads unchanged and gives the guide's TotalMME."""
        steps = steps_from_resource(order)
        result = mps.daily_ome(mps.Regimen(list(steps)), table="cdc-2022")
        assert result.complete
        assert result.low.magnitude == pytest.approx(mme)
