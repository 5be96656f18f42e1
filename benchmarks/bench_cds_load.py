"""Throughput of the CDS Hooks service (issue 15): ``--workers 2``, 32 keep-alive connections.

Run with::

    python -m pytest benchmarks/bench_cds_load.py --benchmark-only -q -s

A closed loop: 32 connections each send an ``order-sign`` request for the 6-step regimen (with
authentication on: a token signed ahead of time per request), wait for the answer, and send
the next, for ``SECONDS``.  The service runs as ``serve(workers=2)`` in its own process; the
baseline in the same run is a bare Starlette endpoint (one JSON answer, no work) under uvicorn
with 2 workers, driven by the same lean client.  Requests per second, p50 and p95 are printed
and written to ``extra_info``.  Budget (issue 15): ≥ 2,500 requests/s and p95 ≤ 20 ms on a
quiet 2-core machine; the figures on a shared machine are reported, not asserted.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the lean client and the test EHR's keys
sys.path.insert(0, str(Path(__file__).resolve().parent))

cds_support = pytest.importorskip("cds_support")
bench_cds_hooks = pytest.importorskip("bench_cds_hooks")

SECONDS = float(os.environ.get("MPS_BENCH_SECONDS", "10"))
CONNECTIONS = 32
PATH = "/cds-services/mps-analgesia"

_BARE_APP = """
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

async def endpoint(request):
    await request.body()
    return Response(b'{"cards":[]}', media_type="application/json")

app = Starlette(routes=[Route("/cds-services/mps-analgesia", endpoint, methods=["POST"])])
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            assert proc.poll() is None, "the server exited"
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.1)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=30)


def _closed_loop(
    port: int, body: bytes, tokens: list[str] | None, seconds: float = SECONDS
) -> dict[str, float]:
    latencies: list[float] = []
    supply = iter(tokens or [])

    async def connection() -> None:
        client = await cds_support.AsyncLeanClient.connect(port)
        end = time.monotonic() + seconds
        try:
            while time.monotonic() < end:
                headers = {"content-type": "application/json"}
                if tokens is not None:
                    token = next(supply, None)
                    if token is None:
                        break  # the tokens signed ahead ran out: the run ends
                    headers["authorization"] = f"Bearer {token}"
                start = time.perf_counter()
                status, _ = await client.post(PATH, body, headers)
                latencies.append(time.perf_counter() - start)
                assert status == 200, status
        finally:
            await client.close()

    async def run() -> float:
        start = time.perf_counter()
        await asyncio.gather(*(connection() for _ in range(CONNECTIONS)))
        return time.perf_counter() - start

    elapsed = asyncio.run(run())
    latencies.sort()
    return {
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(latencies[len(latencies) // 2] * 1e3, 2),
        "p95_ms": round(latencies[int(0.95 * (len(latencies) - 1))] * 1e3, 2),
        "requests": len(latencies),
    }


def _load_avg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:  # pragma: no cover - not Linux
        return "?"


def test_order_sign_throughput_two_workers(benchmark: Any) -> None:
    """The service with 2 workers and auth on, then a bare Starlette endpoint, same client."""
    signer = cds_support.Signer()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MPS_CDS_")}
    env["MPS_CDS_SERVICE_URL"] = cds_support.SERVICE_URL
    env["MPS_CDS_CLIENTS"] = json.dumps([{"iss": cds_support.EHR_ISS, "jwks": signer.jwks()}])
    body = bench_cds_hooks._six_step_request()
    # tokens for the whole run, signed before it (as many as 4,000 requests/s could use)
    tokens = [signer.token(PATH) for _ in range(int(4000 * SECONDS) + 1000)]
    results: dict[str, Any] = {"load_before": _load_avg()}

    def service() -> None:
        port = _free_port()
        code = (
            "from mps_analgesia.cds_hooks import serve; "
            f"serve('127.0.0.1', {port}, workers=2, log_level='warning')"
        )
        proc = subprocess.Popen([sys.executable, "-c", code], env=env)
        try:
            _wait(port, proc)
            _closed_loop(port, body, tokens[:2000], 2.0)  # warm-up: workers, connections
            results["service"] = _closed_loop(port, body, tokens[2000:])
        finally:
            _stop(proc)

    benchmark.pedantic(service, rounds=1, iterations=1)
    app = ROOT / "benchmarks" / "_bare_app.py"
    app.write_text(_BARE_APP)
    try:
        port = _free_port()
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "_bare_app:app",
                "--port",
                str(port),
                "--workers",
                "2",
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            cwd=app.parent,
        )
        try:
            _wait(port, proc)
            _closed_loop(port, b"{}", None, 2.0)
            results["bare_starlette"] = _closed_loop(port, b"{}", None)
        finally:
            _stop(proc)
    finally:
        app.unlink(missing_ok=True)
    results["load_after"] = _load_avg()
    benchmark.extra_info.update(results)
    print(f"\n{json.dumps(results, indent=2)}")
    assert results["service"]["requests"] > 0
