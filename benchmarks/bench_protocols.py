"""Benchmarks for protocols (loading, instantiation), MPS assessment and schema generation.

No target is set by the issue; the medians are reported for reference.

Run: ``python -m pytest benchmarks/bench_protocols.py --benchmark-only -q``
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mps_analgesia as mps
from mps_analgesia.assess import assess_mps
from mps_analgesia.protocols import load_protocol, loads_protocol
from mps_analgesia.schema import json_schema

PROTOCOLS = Path(__file__).resolve().parent.parent / "src" / "mps_analgesia" / "data" / "protocols"
PATIENT = mps.Patient(
    age=60,
    weight="80 kg",
    egfr="90 mL/min/1.73m2",
    qtc="420 ms",
    medications=[],
    anticoagulant="none",
)
CURRENT = mps.Regimen(
    [mps.OpioidStep(drug="morphine", formulation="modified-release", dose="100 mg", every="12 h")]
)


def test_parse_protocol_file(benchmark: Any) -> None:
    """Parse and check one protocol file from its text (no cache)."""
    text = (PROTOCOLS / "agar-2004-mechanism-directed.toml").read_text(encoding="utf-8")
    protocol = benchmark(loads_protocol, text)
    assert protocol.id == "agar-2004-mechanism-directed"


def test_instantiate_takase(benchmark: Any) -> None:
    """Instantiate the methadone protocol (OME and scheme conversion included)."""
    protocol = load_protocol("takase-2015-methadone-adjuvant")
    plan = benchmark(protocol.instantiate, PATIENT, CURRENT)
    assert plan.status == "eligible"


def test_instantiate_agar(benchmark: Any) -> None:
    """Instantiate the multimodal protocol (renal bands, titration, breakthrough receipt)."""
    protocol = load_protocol("agar-2004-mechanism-directed")
    plan = benchmark(protocol.instantiate, PATIENT, CURRENT, {"confirm": ["mps-diagnosis"]})
    assert plan.status == "eligible"


def test_assess_mps(benchmark: Any) -> None:
    """Apply the three MPS definitions and the differential to a feature dict."""
    features = {"psoas_involvement": True, "nociceptive_pain": True, "neuropathic_pain": False}
    result = benchmark(assess_mps, features)
    assert result.satisfied_by == ("yoshioka-2025",)


def test_protocol_schema(benchmark: Any) -> None:
    """Generate the protocol JSON Schema."""
    schema = benchmark(json_schema, "protocol")
    assert "$defs" in schema
