"""The CDS Hooks service: a real server on 127.0.0.1 answered by a real HTTP client."""

from __future__ import annotations

import asyncio
import html
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mps_analgesia as mps
from mps_analgesia import _catalog
from mps_analgesia.cds_hooks import (
    MAX_BODY_BYTES,
    SELECT_SERVICE_ID,
    SERVICE_ID,
    discovery_document,
    handle,
)
from mps_analgesia.fhir import to_bundle
from mps_analgesia.rules._util import suggested_dose

httpx = pytest.importorskip("httpx")
uvicorn = pytest.importorskip("uvicorn")
cds_support = pytest.importorskip("cds_support")
SignedAuth, Signer = cds_support.SignedAuth, cds_support.Signer

UCUM = "http://unitsofmeasure.org"
LOINC = "http://loinc.org"


# ---- a real server ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def signer() -> Any:
    """The test EHR's signing key."""
    return Signer()


@pytest.fixture(scope="module")
def base_url(signer: Any) -> Iterator[str]:
    """The service's own uvicorn server in a thread, on a free port of 127.0.0.1."""
    config = cds_support.config(signer, cors_origins=["https://sandbox.example"])
    with cds_support.running_server(config=config) as url:
        yield url


@pytest.fixture(scope="module")
def client(base_url: str, signer: Any) -> Iterator[Any]:
    """An HTTP client that signs a fresh token for every request, as a CDS client does."""
    with httpx.Client(base_url=base_url, trust_env=False, timeout=10, auth=SignedAuth(signer)) as c:
        yield c


_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+!|~:.\-=>])")


def _text(card: dict[str, Any]) -> str:
    """A card's markdown detail as the reader sees it (escapes and entities undone)."""
    return html.unescape(_ESCAPE.sub(r"\1", card["detail"]))


# ---- requests -----------------------------------------------------------------------------------


def _observation(code: str, value: float, unit: str) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [
            {
                "resource": {
                    "resourceType": "Observation",
                    "id": f"obs-{code}",
                    "status": "final",
                    "code": {"coding": [{"system": LOINC, "code": code}]},
                    "valueQuantity": {"value": value, "system": UCUM, "code": unit},
                }
            }
        ],
    }


def _full_prefetch(age_birth: str = "1960-01-01") -> dict[str, Any]:
    return {
        "patient": {
            "resourceType": "Patient",
            "id": "p1",
            "gender": "female",
            "birthDate": age_birth,
            "extension": [
                {
                    "url": "https://github.com/mps-analgesia/mps-analgesia/fhir/StructureDefinition/"
                    "hepatic-impairment",
                    "valueCode": "none",
                }
            ],
        },
        "weight": _observation("29463-7", 60, "kg"),
        "height": _observation("8302-2", 165, "cm"),
        "egfr": _observation("33914-3", 75, "mL/min/{1.73_m2}"),
        "qtc": _observation("8636-3", 430, "ms"),
        "medications": {"resourceType": "Bundle", "type": "searchset", "entry": []},
    }


def _request(
    steps: list[Any],
    *,
    hook: str = "order-sign",
    prefetch: dict[str, Any] | None = None,
) -> dict[str, Any]:
    bundle = to_bundle(mps.Regimen(steps))
    orders = [
        e
        for e in bundle["entry"]
        if e["resource"]["resourceType"] in ("MedicationRequest", "ServiceRequest")
    ]
    for e in orders:
        e["resource"]["status"] = "draft"
    context: dict[str, Any] = {
        "userId": "Practitioner/1",
        "patientId": "p1",
        "draftOrders": {"resourceType": "Bundle", "type": "collection", "entry": orders},
    }
    if hook == "order-select":
        context["selections"] = [f"MedicationRequest/{e['resource']['id']}" for e in orders[:1]]
    return {
        "hook": hook,
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "context": context,
        "prefetch": _full_prefetch() if prefetch is None else prefetch,
    }


def _acetaminophen(dose: str = "1250 mg") -> mps.AdjuvantStep:
    return mps.AdjuvantStep(drug="acetaminophen", role="nociceptive", dose=dose, every="6 h")


def _post(client: Any, payload: Any, service: str = SERVICE_ID) -> Any:
    return client.post(f"/cds-services/{service}", json=payload)


def _cards(response: Any) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    cards: list[dict[str, Any]] = response.json()["cards"]
    for card in cards:
        assert len(card["summary"]) < 140
        assert card["indicator"] in ("info", "warning", "critical")
        assert card["source"]["label"]
    return cards


def _topic(card: dict[str, Any]) -> str:
    return str(card["source"].get("topic", {}).get("code", ""))


# ---- tests --------------------------------------------------------------------------------------


class TestDiscovery:
    def test_discovery_lists_both_hooks_with_prefetch(self, client: Any) -> None:
        """GET /cds-services lists order-sign and order-select with the prefetch templates."""
        response = client.get("/cds-services")
        assert response.status_code == 200
        services = response.json()["services"]
        assert [(s["id"], s["hook"]) for s in services] == [
            (SERVICE_ID, "order-sign"),
            (SELECT_SERVICE_ID, "order-select"),
        ]
        prefetch = services[0]["prefetch"]
        assert prefetch["patient"] == "Patient/{{context.patientId}}"
        assert "http://loinc.org|29463-7" in prefetch["weight"]
        assert "http://loinc.org|8636-3" in prefetch["qtc"]
        assert "http://loinc.org|33914-3" in prefetch["egfr"]
        assert prefetch["medications"].startswith("MedicationRequest?patient=")
        assert "status=active" in prefetch["medications"]

    def test_discovery_is_cors_enabled_for_allowed_origins(self, client: Any) -> None:
        """A browser-based CDS client on the allow-list may call the service; others not."""
        response = client.get("/cds-services", headers={"Origin": "https://sandbox.example"})
        assert response.headers["access-control-allow-origin"] == "https://sandbox.example"
        other = client.get("/cds-services", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers

    def test_cors_preflight_never_allows_every_origin(self, client: Any) -> None:
        """A preflight from an unknown origin is refused; no wildcard is ever sent."""
        headers = {
            "Origin": "https://evil.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        }
        response = client.options(f"/cds-services/{SERVICE_ID}", headers=headers)
        assert response.headers.get("access-control-allow-origin") != "*"
        assert "access-control-allow-origin" not in response.headers


class TestCards:
    def test_critical_card_with_receipt_suggestion_and_override_reasons(self, client: Any) -> None:
        """Acetaminophen 5 g/day: a critical card, the arithmetic, and a 1 g dose suggested."""
        cards = _cards(_post(client, _request([_acetaminophen()])))
        (card,) = [c for c in cards if _topic(c) == "dose.max-daily"]
        assert card["indicator"] == "critical"
        assert "1250 mg × 4 doses/day = 5000 mg/day > 4000 mg/day" in _text(card)
        assert card["source"]["url"].startswith("https://")
        assert card["overrideReasons"]
        assert card["selectionBehavior"] == "at-most-one"
        (suggestion,) = card["suggestions"]
        (action,) = suggestion["actions"]
        assert action["type"] == "update"
        assert action["resource"]["id"] == "step-0"
        dose = action["resource"]["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]
        assert (dose["value"], dose["code"]) == (1000, "mg")

    def test_suggested_dose_passes_the_checks(self, client: Any) -> None:
        """Sending the suggested order back gives no dose finding."""
        request = _request([_acetaminophen()])
        card = next(c for c in _cards(_post(client, request)) if _topic(c) == "dose.max-daily")
        fixed = card["suggestions"][0]["actions"][0]["resource"]
        request["context"]["draftOrders"]["entry"][0]["resource"] = fixed
        topics = {_topic(c) for c in _cards(_post(client, request))}
        assert not {"dose.max-daily", "dose.max-single"} & topics

    def test_no_suggestion_without_numbers_to_compute_from(self, client: Any) -> None:
        """A finding that is not about a dose limit offers no suggestion."""
        rt = mps.RadiotherapyStep(total_dose="20 Gy", fractions=5, site="left psoas")
        cards = _cards(_post(client, _request([rt])))
        assert cards
        assert all("suggestions" not in c for c in cards)

    def test_warning_card(self, client: Any) -> None:
        """Tramadol 400 mg/day at over 75 years is a warning card with override reasons."""
        prefetch = _full_prefetch(age_birth="1940-01-01")
        step = mps.OpioidStep(drug="tramadol", dose="100 mg", every="6 h")
        cards = _cards(_post(client, _request([step], prefetch=prefetch)))
        (card,) = [c for c in cards if _topic(c) == "age.dose-adjust"]
        assert card["indicator"] == "warning"
        assert card["overrideReasons"][0]["system"].endswith("/CodeSystem/override-reason")

    def test_info_card(self, client: Any) -> None:
        """A radiotherapy course gives an info card (BED and EQD2) without override reasons."""
        rt = mps.RadiotherapyStep(total_dose="20 Gy", fractions=5, site="left psoas")
        cards = _cards(_post(client, _request([rt])))
        infos = [c for c in cards if c["indicator"] == "info"]
        assert infos
        assert all("overrideReasons" not in c for c in infos)

    def test_source_link_is_the_doi(self, client: Any) -> None:
        """A methadone finding resting on Takase 2015 links its DOI, labelled with its citation."""
        step = mps.MethadoneAdjuvantStep(dose="15 mg", every="8 h")
        cards = _cards(_post(client, _request([step])))
        takase = _catalog.source("takase-2015")
        links = [link for c in cards for link in [c["source"], *c.get("links", [])]]
        (link,) = [x for x in links if x.get("url") == "https://doi.org/10.1089/jpm.2014.0387"]
        assert takase.citation[:60] in link["label"]

    def test_source_label_and_link_name_the_same_source(self, client: Any) -> None:
        """A breakthrough card labelled NCCN 2011 (no DOI) has no link; CDC 2022 is its own link."""
        regular = mps.OpioidStep(
            drug="morphine", formulation="modified-release", dose="60 mg", every="12 h"
        )
        prn = mps.OpioidStep(drug="morphine", dose="2.5 mg", every="4 h", prn=True)
        cards = _cards(_post(client, _request([regular, prn])))
        (card,) = [c for c in cards if _topic(c) == "opioid.breakthrough-dose"]
        nccn, cdc = _catalog.source("nccn-2011-breakthrough"), _catalog.source("cdc-2022")
        # NCCN 2011 has no DOI: the card links the rule's page (which cites it), never CDC's DOI
        assert card["source"]["label"] == "mps-analgesia rule opioid.breakthrough-dose"
        assert card["source"]["url"].endswith("/docs/rules.md#opioidbreakthrough-dose")
        assert nccn.citation in _text(card)
        assert card["links"] == [
            {"label": cdc.citation[:79].rstrip() + "…", "url": cdc.url, "type": "absolute"}
        ]
        for c in cards:  # on every card, a link opens the source its label names
            assert c["source"]["url"].startswith("https://")
            for link in [c["source"], *c.get("links", [])]:
                if "/docs/" in link["url"]:
                    assert link["label"].startswith("mps-analgesia")
                else:
                    (named,) = [
                        r
                        for r in _catalog.sources().values()
                        if r.url and r.citation[:60] in link["label"]
                    ]
                    assert named.url == link["url"]

    def test_missing_prefetch_gives_a_not_checked_card(self, client: Any) -> None:
        """Without weight in the prefetch, a block is not checked and a card says so."""
        block = mps.PsoasCompartmentBlockStep(
            drug="ropivacaine", concentration="0.2 %", bolus_volume="20 mL", side="left"
        )
        prefetch = _full_prefetch()
        del prefetch["weight"]
        cards = _cards(_post(client, _request([block], prefetch=prefetch)))
        (card,) = [c for c in cards if "could not run" in c["summary"]]
        assert card["indicator"] == "warning"
        assert "weight" in card["summary"]
        assert "Not sent in prefetch: weight" in _text(card)

    def test_unreadable_patient_fields_are_listed(self, client: Any) -> None:
        """A bad birthDate and gender in the prefetch are listed as unreadable, not dropped."""
        prefetch = _full_prefetch(age_birth="1960-02-30")
        prefetch["patient"]["gender"] = "F"
        cards = _cards(_post(client, _request([_acetaminophen("500 mg")], prefetch=prefetch)))
        (card,) = [c for c in cards if "Could not be read" in _text(c)]
        assert card["indicator"] == "warning"
        assert "- Patient.birthDate: " in _text(card)
        assert "- Patient.gender: " in _text(card)

    def test_no_prefetch_at_all_still_answers(self, client: Any) -> None:
        """A request with no prefetch is checked with what there is, and says what is missing."""
        request = _request([_acetaminophen()])
        del request["prefetch"]
        cards = _cards(_post(client, request))
        assert any(_topic(c) == "dose.max-daily" for c in cards)
        assert any("could not run" in c["summary"] for c in cards)

    def test_unreadable_order_gets_its_own_card(self, client: Any) -> None:
        """An order in UCUM 'mcg' is not guessed: a warning card says it was not checked."""
        request = _request([mps.OpioidStep(drug="fentanyl", route="transdermal", rate="25 mcg/h")])
        order = request["context"]["draftOrders"]["entry"][0]["resource"]
        order["dosageInstruction"][0]["doseAndRate"][0]["rateQuantity"]["code"] = "mcg/h"
        cards = _cards(_post(client, request))
        (card,) = [c for c in cards if "could not be checked" in c["summary"]]
        assert card["indicator"] == "warning"
        assert "'ug'" in _text(card)

    def test_active_medications_join_the_regimen(self, client: Any) -> None:
        """An active acetaminophen order plus a new one are summed for the daily maximum."""
        active = to_bundle(mps.Regimen([_acetaminophen("1 g")]))["entry"][1]["resource"]
        active["id"] = "home-med"
        prefetch = _full_prefetch()
        prefetch["medications"] = {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [{"resource": active}],
        }
        cards = _cards(_post(client, _request([_acetaminophen("500 mg")], prefetch=prefetch)))
        (card,) = [c for c in cards if _topic(c) == "dose.max-daily"]
        assert "6000 mg/day" in _text(card)
        assert "suggestions" not in card  # a total over two orders: no single-order fix

    def test_unknown_active_medication_counts_for_interactions(self, client: Any) -> None:
        """An active sertraline order (not in the catalog) is passed on as a medicine name."""
        sertraline = {
            "resourceType": "MedicationRequest",
            "id": "ssri",
            "status": "active",
            "intent": "order",
            "subject": {"reference": "Patient/p1"},
            "medicationCodeableConcept": {"text": "sertraline"},
        }
        prefetch = _full_prefetch()
        prefetch["medications"] = {"resourceType": "Bundle", "entry": [{"resource": sertraline}]}
        step = mps.OpioidStep(drug="tramadol", dose="50 mg", every="6 h")
        cards = _cards(_post(client, _request([step], prefetch=prefetch)))
        assert any("serotonin" in _text(c).lower() for c in cards)

    def test_medications_prefetch_decides_whether_medicines_are_recorded(self) -> None:
        """With the medications prefetch (even an empty Bundle) the other medicines are
        recorded; without it they are not recorded (None), so interactions are not checked."""
        from mps_analgesia.cds_hooks._request import read_request

        step = mps.OpioidStep(drug="tramadol", dose="50 mg", every="6 h")
        prefetch = _full_prefetch()
        patient = read_request(_request([step], prefetch=prefetch)).patient
        assert (patient.medications, patient.anticoagulant) == ((), None)
        del prefetch["medications"]
        patient = read_request(_request([step], prefetch=prefetch)).patient
        assert patient.medications is None

    def test_missing_medications_prefetch_is_said_not_passed(self, client: Any) -> None:
        """Tramadol without the medications prefetch: the could-not-check card names the
        serotonergic check and the medicines."""
        step = mps.OpioidStep(drug="tramadol", dose="50 mg", every="6 h")
        prefetch = _full_prefetch()
        del prefetch["medications"]
        cards = _cards(_post(client, _request([step], prefetch=prefetch)))
        (card,) = [c for c in cards if "interaction.serotonergic" in _text(c)]
        assert "medicines are not recorded" in _text(card)

    def test_order_select_is_answered_on_both_paths(self, client: Any) -> None:
        """order-select works on the main service and on its discovery id."""
        request = _request([_acetaminophen()], hook="order-select")
        for service in (SERVICE_ID, SELECT_SERVICE_ID):
            cards = _cards(_post(client, request, service))
            assert any(_topic(c) == "dose.max-daily" for c in cards)

    def test_clean_order_gives_no_finding_card(self, client: Any) -> None:
        """A safe order with all prefetch data gives no finding card."""
        cards = _cards(_post(client, _request([_acetaminophen("500 mg")])))
        assert all(c["indicator"] == "info" for c in cards)

    def test_feedback_is_acknowledged(self, client: Any) -> None:
        """POST .../feedback following the spec is acknowledged with {}."""
        item = {"card": "x", "outcome": "overridden", "outcomeTimestamp": "2026-12-04T10:00:00Z"}
        response = client.post(f"/cds-services/{SERVICE_ID}/feedback", json={"feedback": [item]})
        assert (response.status_code, response.json()) == (200, {})


def _renal_prefetch(egfr: float) -> dict[str, Any]:
    prefetch = _full_prefetch()
    prefetch["egfr"] = _observation("33914-3", egfr, "mL/min/{1.73_m2}")
    return prefetch


def _local_max_single(limit: str) -> Any:
    """A local dose rule: oral immediate-release morphine above ``limit`` per dose."""

    @mps.rule(
        "dose.local-max-single", title="Local maximum", applies_to=["opioid"], severity="error"
    )
    def check(ctx: Any, index: Any, step: Any) -> Any:
        if step.drug != "morphine" or step.route != "oral" or step.prn:
            return mps.PASSED
        if step.dose_mg <= mps.Q(limit).to("mg").magnitude:
            return mps.PASSED
        return mps.finding(
            "dose.local-max-single",
            "error",
            f"Morphine above the local {limit} per dose.",
            step=index,
            detail={
                "dose": f"{step.dose_mg} mg",
                "limit": limit,
                **suggested_dose(step, mps.Q(limit).to("mg").magnitude),
            },
        )

    return mps.default_rules().with_rules(check)


def _dose_of(suggestion: dict[str, Any]) -> tuple[Any, Any]:
    (action,) = suggestion["actions"]
    dose = action["resource"]["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]
    return dose["value"], dose["code"]


class TestSuggestions:
    def test_tramadol_renal_band_gets_no_suggestion(self, client: Any) -> None:
        """Tramadol 50 mg every 4 h at eGFR 20: the label says every 12 h, so no dose is offered."""
        step = mps.OpioidStep(drug="tramadol", dose="50 mg", every="4 h")
        cards = _cards(_post(client, _request([step], prefetch=_renal_prefetch(20))))
        (card,) = [c for c in cards if _topic(c) == "renal.dose-adjust"]
        assert "200 mg/day" in _text(card)
        assert "suggestions" not in card  # never "33.3 mg every 4 h"
        assert "No dose is suggested" in _text(card)

    def test_gabapentin_renal_band_gets_no_suggestion(self, client: Any) -> None:
        """Gabapentin 300 mg every 8 h at eGFR 20 (once daily at 15-29): no dose is offered."""
        step = mps.AdjuvantStep(drug="gabapentin", role="neuropathic", dose="300 mg", every="8 h")
        cards = _cards(_post(client, _request([step], prefetch=_renal_prefetch(20))))
        (card,) = [c for c in cards if _topic(c) == "renal.dose-adjust"]
        assert "700 mg/day" in _text(card)
        assert all("suggestions" not in c for c in cards)  # never "233 mg every 8 h"

    def test_limit_that_needs_rounding_without_strengths_gives_no_suggestion(self) -> None:
        """Ibuprofen 1200 mg every 8 h: 3200/3 = 1066.7 mg is not dispensable, so none."""
        step = mps.AdjuvantStep(
            drug="ibuprofen", role="anti-inflammatory", dose="1200 mg", every="8 h"
        )
        status, body = handle(_request([step]))
        assert status == 200
        (card,) = [c for c in body["cards"] if _topic(c) == "dose.max-daily"]
        assert "suggestions" not in card

    def test_dose_is_rounded_down_to_available_strengths(self) -> None:
        """Morphine 40 mg against a local 33 mg limit: 30 mg, a sum of listed strengths."""
        step = mps.OpioidStep(drug="morphine", dose="40 mg", every="4 h")
        status, body = handle(_request([step]), rules=_local_max_single("33 mg"))
        assert status == 200
        (card,) = [c for c in body["cards"] if _topic(c) == "dose.local-max-single"]
        (suggestion,) = card["suggestions"]
        assert _dose_of(suggestion) == (30, "mg")
        assert "immediate-release" in suggestion["actions"][0]["description"]

    def test_limit_below_the_smallest_strength_gives_no_suggestion(self) -> None:
        """A 4 mg limit with 5 mg the smallest oral morphine tablet: nothing can be dispensed."""
        step = mps.OpioidStep(drug="morphine", dose="10 mg", every="4 h")
        status, body = handle(_request([step]), rules=_local_max_single("4 mg"))
        assert status == 200
        (card,) = [c for c in body["cards"] if _topic(c) == "dose.local-max-single"]
        assert "suggestions" not in card

    def test_measured_dose_is_rounded_to_the_increment(self) -> None:
        """Subcutaneous hydromorphone has a 0.5 mg increment: a 1.7 mg target gives 1.5 mg."""

        @mps.rule("dose.local-sc", title="Local", applies_to=["opioid"], severity="error")
        def check(ctx: Any, index: Any, step: Any) -> Any:
            if step.dose_mg <= 1.7:
                return mps.PASSED
            return mps.finding(
                "dose.local-sc",
                "error",
                "Above 1.7 mg.",
                step=index,
                detail={"limit": "1.7 mg", **suggested_dose(step, 1.7)},
            )

        step = mps.OpioidStep(drug="hydromorphone", route="subcutaneous", dose="2 mg", every="4 h")
        rules = mps.default_rules().with_rules(check)
        status, body = handle(_request([step]), rules=rules)
        assert status == 200
        (card,) = [c for c in body["cards"] if _topic(c) == "dose.local-sc"]
        assert _dose_of(card["suggestions"][0]) == (1.5, "mg")


class TestBadRequests:
    def _error(self, response: Any, status: int) -> str:
        assert response.status_code == status
        assert response.headers["content-type"].startswith("application/json")
        body = response.json()
        assert isinstance(body["error"], str)
        return str(body["error"])

    def test_malformed_json_is_400(self, client: Any) -> None:
        """A body that is not JSON gives 400 with a JSON error."""
        response = client.post(
            f"/cds-services/{SERVICE_ID}",
            content=b'{"hook": ',
            headers={"content-type": "application/json"},
        )
        assert "not valid JSON" in self._error(response, 400)

    def test_invalid_bundle_is_400(self, client: Any) -> None:
        """draftOrders that is not a Bundle gives 400 naming the problem."""
        request = _request([_acetaminophen()])
        request["context"]["draftOrders"] = {"resourceType": "Bundle", "entry": [{"x": 1}]}
        response = _post(client, request)
        assert "draftOrders" in self._error(response, 400)
        assert response.json()["problems"] == [
            "context.draftOrders.entry[0]: has no resource object"
        ]

    @pytest.mark.parametrize(
        ("payload", "match"),
        [
            ([], "JSON object"),
            ({"hook": "patient-view", "context": {}}, "'hook' must be one of"),
            ({"hook": "order-sign", "context": 3}, "'context' must be an object"),
            ({"hook": "order-sign", "context": {}, "prefetch": []}, "'prefetch' must be"),
            ({"hook": "order-sign", "context": {"draftOrders": None}}, "draftOrders"),
            (
                {
                    "hook": "order-sign",
                    "context": {"draftOrders": {"resourceType": "Bundle"}},
                    "prefetch": {"weight": "60 kg"},
                },
                "prefetch.weight",
            ),
        ],
    )
    def test_bad_request_shapes_are_400(self, client: Any, payload: Any, match: str) -> None:
        """Each malformed request gives 400 and says what is wrong."""
        assert match in self._error(_post(client, payload), 400)

    def test_unknown_service_is_404(self, client: Any) -> None:
        """An unknown service id gives 404 with a JSON body."""
        self._error(client.post("/cds-services/nope", json={}), 404)

    def test_wrong_method_is_405_json(self, client: Any) -> None:
        """GET on the service gives 405 with a JSON body."""
        self._error(client.get(f"/cds-services/{SERVICE_ID}"), 405)

    def test_oversized_body_is_413(self, client: Any) -> None:
        """A body over the limit gives 413 with a JSON error, not a crash."""
        body = b" " * (MAX_BODY_BYTES + 1)
        response = client.post(
            f"/cds-services/{SERVICE_ID}",
            content=body,
            headers={"content-type": "application/json"},
        )
        assert "over" in self._error(response, 413)

    def test_nan_in_an_order_is_refused_not_crashing(self, client: Any) -> None:
        """A NaN dose (JSON extension) makes a not-checked order card, never a 500."""
        request = _request([_acetaminophen()])
        text = json.dumps(request).replace('"value": 1250', '"value": NaN')
        response = client.post(
            f"/cds-services/{SERVICE_ID}",
            content=text.encode(),
            headers={"content-type": "application/json"},
        )
        cards = _cards(response)
        assert any("could not be checked" in c["summary"] for c in cards)

    def test_huge_dose_is_a_not_checked_order_card(self, client: Any) -> None:
        """A dose of 1e308 mg (an infinite daily dose) makes a not-checked order card, not a 422."""
        request = _request([_acetaminophen(), _acetaminophen("500 mg")])
        order = request["context"]["draftOrders"]["entry"][0]["resource"]
        order["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] = 1e308
        cards = _cards(_post(client, request))
        (card,) = [c for c in cards if "could not be checked" in c["summary"]]
        assert "MedicationRequest/step-0" in _text(card)
        assert "larger than" in _text(card)
        assert card["indicator"] == "warning"

    def test_order_that_overflows_inside_a_check_is_isolated(self) -> None:
        """An order whose check overflows gets its own card; the other orders are still checked."""

        @mps.rule("local.overflow", title="Overflows", applies_to=["opioid"], severity="error")
        def check(ctx: Any, index: Any, step: Any) -> Any:
            raise OverflowError("math range error")

        rules = mps.default_rules().with_rules(check)
        morphine = mps.OpioidStep(drug="morphine", dose="5 mg", every="4 h")
        status, body = handle(_request([_acetaminophen(), morphine]), rules=rules)
        assert status == 200, body
        cards = body["cards"]
        assert any(_topic(c) == "dose.max-daily" for c in cards)
        (card,) = [c for c in cards if "could not be checked" in c["summary"]]
        assert "MedicationRequest/step-1" in _text(card)
        assert "OverflowError" in _text(card)

    def test_patient_value_that_overflows_a_check_is_reported(self) -> None:
        """A weight that overflows a check is listed under could-not-be-read and left out."""

        @mps.rule("local.weight", title="Per kg", applies_to=["adjuvant"], severity="error")
        def check(ctx: Any, index: Any, step: Any) -> Any:
            if ctx.patient.weight_kg is None:
                return mps.Missing("weight", "not recorded")
            raise OverflowError("math range error")

        rules = mps.default_rules().with_rules(check)
        status, body = handle(_request([_acetaminophen()]), rules=rules)
        assert status == 200, body
        cards = body["cards"]
        assert any(_topic(c) == "dose.max-daily" for c in cards)
        (card,) = [c for c in cards if "could not run" in c["summary"]]
        assert "- Patient.weight: " in _text(card)
        assert "OverflowError" in _text(card)
        assert "`local.weight`" in _text(card)  # not checked, never passed
        assert card["indicator"] == "warning"

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.binary(max_size=300))
    def test_random_bytes_never_give_a_500(self, client: Any, body: bytes) -> None:
        """Any byte string is answered with a JSON error or cards, never 5xx."""
        response = client.post(
            f"/cds-services/{SERVICE_ID}",
            content=body,
            headers={"content-type": "application/json"},
        )
        assert response.status_code in (200, 400, 422)
        assert isinstance(response.json(), dict)

    json_values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(
                st.sampled_from(
                    [
                        "hook",
                        "context",
                        "draftOrders",
                        "prefetch",
                        "resourceType",
                        "entry",
                        "resource",
                        "dosageInstruction",
                        "doseAndRate",
                        "doseQuantity",
                        "value",
                        "code",
                        "patient",
                    ]
                ),
                inner,
                max_size=4,
            )
        ),
        max_leaves=20,
    )

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(json_values)
    def test_random_json_never_gives_a_500(self, client: Any, value: Any) -> None:
        """Random JSON shaped like a request is answered with 200/400/422 JSON, never 5xx."""
        payload = {"hook": "order-sign", "hookInstance": "x", "context": {"draftOrders": value}}
        response = cds_support.post_json(client, f"/cds-services/{SERVICE_ID}", payload)
        assert response.status_code in (200, 400, 422)
        assert isinstance(response.json(), dict)

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        st.sampled_from(["value", "code", "system", "periodUnit", "frequency", "text"]), json_values
    )
    def test_mutated_orders_never_give_a_500(self, client: Any, key: str, value: Any) -> None:
        """A valid request with one order element replaced by random JSON never gives 5xx."""
        request = _request(
            [
                _acetaminophen(),
                mps.OpioidStep(
                    drug="morphine", dose="5 mg", every="4 h", prn=True, max_doses_per_24h=6
                ),
            ]
        )
        text = json.dumps(request)
        mutated = json.loads(text.replace(f'"{key}": ', f'"{key}": {json.dumps(value)}, "_x": ', 1))
        response = cds_support.post_json(client, f"/cds-services/{SERVICE_ID}", mutated)
        assert response.status_code in (200, 400, 422)


class TestConcurrency:
    def test_fifty_concurrent_requests_are_all_answered_correctly(
        self, base_url: str, signer: Any
    ) -> None:
        """50 simultaneous order-sign requests each get their own correct cards."""
        doses = [f"{1010 + 10 * i} mg" for i in range(50)]

        async def run() -> list[Any]:
            async with httpx.AsyncClient(
                base_url=base_url, trust_env=False, timeout=30, auth=SignedAuth(signer)
            ) as c:
                return list(
                    await asyncio.gather(*(_apost(c, _request([_acetaminophen(d)])) for d in doses))
                )

        async def _apost(c: Any, payload: Any) -> Any:
            return await c.post(f"/cds-services/{SERVICE_ID}", json=payload)

        responses = asyncio.run(run())
        for dose, response in zip(doses, responses, strict=True):
            cards = _cards(response)
            daily = int(dose.split()[0]) * 4
            (card,) = [c for c in cards if _topic(c) == "dose.max-daily"]
            assert f"{daily} mg/day" in _text(card)


class TestHandle:
    def test_handle_never_raises(self) -> None:
        """handle() turns anything into (status, JSON) without raising."""
        for body in (b"", b"null", "[]", b"\xff\xfe", {"hook": 1}, "1e999"):
            status, payload = handle(body)  # type: ignore[arg-type]
            assert status in (400, 422)
            assert "error" in payload

    def test_discovery_document_is_json(self) -> None:
        """The discovery document serialises to JSON."""
        assert json.loads(json.dumps(discovery_document())) == discovery_document()

    def test_import_does_not_load_starlette(self) -> None:
        """import mps_analgesia (and its fhir module) does not import starlette or uvicorn."""
        code = (
            "import sys, mps_analgesia, mps_analgesia.fhir; "
            "print(any(m.split('.')[0] in ('starlette', 'uvicorn') for m in sys.modules))"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert out.stdout.strip() == "False", out.stderr


class TestServe:
    def test_serve_runs_a_server_process(self) -> None:
        """serve() in its own process answers discovery on the port it was given."""
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        code = (
            f"from mps_analgesia.cds_hooks import serve; serve('127.0.0.1', {port}, "
            "log_level='warning', insecure_no_auth=True)"
        )
        proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 20
            with httpx.Client(trust_env=False, timeout=2) as c:
                while True:
                    try:
                        response = c.get(f"http://127.0.0.1:{port}/cds-services")
                        break
                    except httpx.TransportError:
                        assert proc.poll() is None, "serve() exited"
                        assert time.monotonic() < deadline, "serve() did not start"
                        time.sleep(0.05)
            assert response.status_code == 200
            assert response.json()["services"][0]["id"] == SERVICE_ID
        finally:
            proc.terminate()
            _out, err = proc.communicate(timeout=10)
        assert "AUTHENTICATION IS OFF (--insecure-no-auth)" in err  # the log says so at start

    def test_serve_command_refuses_to_start_without_authentication(self) -> None:
        """`mps-analgesia serve` without a configuration exits 2 and says what is missing."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("MPS_CDS_")}
        out = subprocess.run(
            [sys.executable, "-m", "mps_analgesia", "serve", "--port", "0"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert out.returncode == 2
        assert "service.url" in out.stderr
        assert "--insecure-no-auth" in out.stderr
