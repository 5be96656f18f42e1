"""Benchmark of the CDS Hooks service (issues 7, 13 and 15), with the issues' budgets.

Run with::

    python -m pytest benchmarks/bench_cds_hooks.py --benchmark-only -q

Budget: one ``order-sign`` request for a 6-step regimen (the multimodal example without its
radiotherapy step, all prefetch data present) answered in ≤ 20 ms at the 95th percentile, over
HTTP to the service's own uvicorn server on 127.0.0.1 (one keep-alive connection), with
authentication on: every request carries its own signed token (made before the timed loop, as
the EHR makes them, so the client's signing is not measured).  The p50 and
p95 are written to the benchmark's ``extra_info`` and printed.  A budget is checked only when the
benchmark actually ran (not under ``--benchmark-disable``).

``handle()`` alone (the same request, no HTTP) is measured too, to show where the time goes,
with the FHIR reader's memos on and, as the baseline in the same run, off.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import mps_analgesia as mps
from mps_analgesia.cds_hooks import SERVICE_ID, ServiceConfig, TrustedClient, handle, make_server
from mps_analgesia.fhir import to_bundle

httpx = pytest.importorskip("httpx")
jwt = pytest.importorskip("jwt")
ec = pytest.importorskip("cryptography.hazmat.primitives.asymmetric.ec")

ROOT = Path(__file__).resolve().parent.parent
MULTIMODAL = ROOT / "examples" / "mps-multimodal.toml"
UCUM = "http://unitsofmeasure.org"
LOINC = "http://loinc.org"
BUDGET_P95_S = 0.020
ROUNDS = 300


def _observation(code: str, value: float, unit: str) -> dict[str, Any]:
    resource = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": code}]},
        "valueQuantity": {"value": value, "system": UCUM, "code": unit},
    }
    return {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": resource}]}


def _six_step_request() -> bytes:
    case = mps.load_case(MULTIMODAL)
    steps = [s for s in case.regimen if s.kind != "radiotherapy"]
    assert len(steps) == 6
    bundle = to_bundle(mps.Regimen(steps), case.patient)
    orders = [
        e
        for e in bundle["entry"]
        if e["resource"]["resourceType"] in ("MedicationRequest", "ServiceRequest")
    ]
    patient = next(e["resource"] for e in bundle["entry"] if e["resource"]["id"] == "patient")
    request = {
        "hook": "order-sign",
        "hookInstance": "bench",
        "context": {
            "userId": "Practitioner/1",
            "patientId": "patient",
            "draftOrders": {"resourceType": "Bundle", "type": "collection", "entry": orders},
        },
        "prefetch": {
            "patient": patient,
            "weight": _observation("29463-7", 60, "kg"),
            "height": _observation("8302-2", 162, "cm"),
            "egfr": _observation("69405-9", 72, "mL/min/{1.73_m2}"),
            "qtc": _observation("8636-3", 430, "ms"),
            "medications": {"resourceType": "Bundle", "type": "searchset", "entry": []},
        },
    }
    return json.dumps(request).encode()


SERVICE_URL = "https://cds.example.org"
ISS = "https://ehr.example.org"


class _Ehr:
    """The benchmark's EHR: an ES256 key, and tokens signed ahead of time."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        public = jwt.algorithms.ECAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        self.jwks = {"keys": [{**public, "kid": "k1", "use": "sig", "alg": "ES256"}]}

    def tokens(self, n: int, path: str = f"/cds-services/{SERVICE_ID}") -> list[str]:
        now = int(time.time())
        return [
            jwt.encode(
                {
                    "iss": ISS,
                    "aud": SERVICE_URL + path,
                    "exp": now + 600,
                    "iat": now,
                    "jti": f"{now}-{i}",
                },
                self.key,
                algorithm="ES256",
                headers={"kid": "k1", "typ": "JWT"},
            )
            for i in range(n)
        ]

    def config(self) -> ServiceConfig:
        return ServiceConfig(url=SERVICE_URL, clients=[TrustedClient(ISS, jwks=self.jwks)])


@pytest.fixture(scope="module")
def ehr() -> _Ehr:
    return _Ehr()


@pytest.fixture(scope="module")
def base_url(ehr: _Ehr) -> Iterator[str]:
    server, sock = make_server("127.0.0.1", 0, log_level="warning", config=ehr.config())
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


def _percentiles(benchmark: Any) -> tuple[float, float] | None:
    stats = getattr(benchmark, "stats", None)
    if stats is None:
        return None
    data = sorted(stats.stats.data)
    p50 = data[len(data) // 2]
    p95 = data[min(len(data) - 1, round(0.95 * (len(data) - 1)))]
    benchmark.extra_info["p50_ms"] = round(p50 * 1e3, 3)
    benchmark.extra_info["p95_ms"] = round(p95 * 1e3, 3)
    print(f"\n{benchmark.name}: p50 {p50 * 1e3:.2f} ms, p95 {p95 * 1e3:.2f} ms")
    return p50, p95


def test_order_sign_six_steps_over_http(benchmark: Any, base_url: str, ehr: _Ehr) -> None:
    """An order-sign request for 6 steps is answered over HTTP in ≤ 20 ms at p95."""
    body = _six_step_request()
    tokens = iter(ehr.tokens(ROUNDS + 40))
    with httpx.Client(base_url=base_url, trust_env=False, timeout=10) as client:
        url = f"/cds-services/{SERVICE_ID}"

        def send() -> Any:
            headers = {
                "content-type": "application/json",
                "authorization": f"Bearer {next(tokens)}",
            }
            return client.post(url, content=body, headers=headers)

        for _ in range(20):  # warm up: data files, rule registry, the connection
            assert send().status_code == 200

        response = benchmark.pedantic(send, rounds=ROUNDS, iterations=1)
    assert response.status_code == 200
    assert isinstance(response.json()["cards"], list)
    measured = _percentiles(benchmark)
    if measured is not None and _quiet():
        assert measured[1] <= BUDGET_P95_S, f"p95 {measured[1] * 1e3:.2f} ms > 20 ms"


def _quiet() -> bool:
    """Whether the machine is quiet enough for a latency budget to mean anything (load average
    below the number of cores); on a shared, loaded machine the figures are reported only."""
    import os

    try:
        return os.getloadavg()[0] < (os.cpu_count() or 1)
    except OSError:  # pragma: no cover - not available
        return True


def test_handle_six_steps_without_http(benchmark: Any) -> None:
    """handle() alone, for the same request (where the time goes)."""
    body = _six_step_request()
    handle(body)
    status, _payload = benchmark.pedantic(lambda: handle(body), rounds=ROUNDS, iterations=1)
    assert status == 200
    _percentiles(benchmark)


def test_handle_six_steps_without_reader_memos(benchmark: Any) -> None:
    """Baseline: handle() with the FHIR reader's memos (medication, timing) off."""
    from bench_fhir_read import memos_off

    body = _six_step_request()
    with memos_off():
        handle(body)
        status, _payload = benchmark.pedantic(lambda: handle(body), rounds=ROUNDS, iterations=1)
    assert status == 200
    _percentiles(benchmark)
