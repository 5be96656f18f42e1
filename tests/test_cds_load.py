"""Load and fault tests of the CDS Hooks service over real HTTP on 127.0.0.1 (marked slow).

Run with ``python -m pytest tests/test_cds_load.py -m slow`` (``.ci/run`` does).  Each test is
bounded in count and in time; none depends on speed: they check that every request is answered,
and answered right, however long the shared machine takes.

- 200 concurrent requests, each with its own dose, all answered with their own numbers;
- 300 stalled clients dropped after the header timeout while others are answered;
- the server's RSS flat (within 10 %) over 10,000 requests with never-seen values (after a
  warm-up that fills the rule memos to their entry caps);
- a worker killed mid-request loses no request but its own (``--workers 2``);
- 20,000 fuzzed requests: no 5xx, no 200 without ``cards``, no unescaped echo.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import mps_analgesia as mps

cds_support = pytest.importorskip("cds_support")
from cds_support import (  # noqa: E402
    EHR_ISS,
    SERVICE_URL,
    AsyncLeanClient,
    LeanClient,
    Signer,
    running_server,
)
from mps_analgesia.fhir import to_bundle  # noqa: E402

pytestmark = pytest.mark.slow

PATH = "/cds-services/mps-analgesia"
JSON = {"content-type": "application/json"}


def _orders(steps: list[Any]) -> list[dict[str, Any]]:
    bundle = to_bundle(mps.Regimen(steps))
    return [
        e
        for e in bundle["entry"]
        if e["resource"]["resourceType"] in ("MedicationRequest", "ServiceRequest")
    ]


def _request(steps: list[Any]) -> dict[str, Any]:
    return {
        "hook": "order-sign",
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "context": {
            "userId": "Practitioner/1",
            "patientId": "p1",
            "draftOrders": {"resourceType": "Bundle", "entry": _orders(steps)},
        },
        "prefetch": {"patient": None, "medications": None},
    }


def _acetaminophen_body(mg: float) -> bytes:
    step = mps.AdjuvantStep(drug="acetaminophen", role="nociceptive", dose=f"{mg} mg", every="6 h")
    return json.dumps(_request([step])).encode()


def _headers(signer: Signer) -> dict[str, str]:
    return {**JSON, "authorization": f"Bearer {signer.token(PATH)}"}


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def signer() -> Signer:
    return Signer()


@pytest.fixture(scope="module")
def server(signer: Signer) -> Iterator[str]:
    config = cds_support.evolve_limits(
        cds_support.config(signer), header_timeout_s=1.0, max_concurrency=64
    )
    with running_server(config=config) as url:
        yield url


@pytest.fixture(scope="module")
def process_env(signer: Signer) -> dict[str, str]:
    """The environment configuring a service process to trust ``signer``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MPS_CDS_")}
    env["MPS_CDS_SERVICE_URL"] = SERVICE_URL
    env["MPS_CDS_CLIENTS"] = json.dumps([{"iss": EHR_ISS, "jwks": signer.jwks()}])
    return env


class _Process:
    """``serve()`` in its own process."""

    def __init__(self, env: dict[str, str], workers: int = 1) -> None:
        self.port = _free_port()
        code = (
            "from mps_analgesia.cds_hooks import serve; "
            f"serve('127.0.0.1', {self.port}, workers={workers}, log_level='warning')"
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code], env=env, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                assert self.proc.poll() is None, "the server exited"
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.1)

    def children(self) -> list[int]:
        """The worker processes (spawned children; not multiprocessing's resource tracker)."""
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        pids = [int(p) for p in path.read_text().split()] if path.exists() else []
        out = []
        for pid in pids:
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if b"spawn_main" in cmdline and b"resource_tracker" not in cmdline:
                out.append(pid)
        return out

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _daily_in(body: bytes) -> str:
    cards = json.loads(body)["cards"]
    (card,) = [c for c in cards if c["source"].get("topic", {}).get("code") == "dose.max-daily"]
    return str(card["detail"])


class TestLoad:
    def test_200_concurrent_requests_all_answered_correctly(
        self, server: str, signer: Signer
    ) -> None:
        """200 connections at once, each its own dose: each gets its own daily total."""
        doses = [1010 + i for i in range(200)]
        bodies = [_acetaminophen_body(d) for d in doses]
        headers = [_headers(signer) for _ in doses]

        async def one(i: int) -> tuple[int, bytes]:
            client = await AsyncLeanClient.connect(_port(server))
            try:
                return await asyncio.wait_for(client.post(PATH, bodies[i], headers[i]), 600)
            finally:
                await client.close()

        async def run() -> list[tuple[int, bytes]]:
            return list(await asyncio.gather(*(one(i) for i in range(200))))

        answers = asyncio.run(run())
        for dose, (status, body) in zip(doses, answers, strict=True):
            assert status == 200, body[:200]
            assert f"{dose * 4} mg/day" in _daily_in(body)

    def test_stalled_clients_are_dropped(self, server: str, signer: Signer) -> None:
        """300 clients that send half a request head are all closed; others are answered."""
        port = _port(server)
        stalled = []
        for _ in range(300):
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(b"POST /cds-services/mps-analgesia HTTP/1.1\r\nHost: x\r\n")
            stalled.append(sock)
        client = LeanClient(port)
        try:
            status, _body = client.post(PATH, _acetaminophen_body(1000), _headers(signer))
        finally:
            client.close()
        assert status == 200
        for sock in stalled:
            sock.settimeout(120)
            try:
                assert sock.recv(1024) == b""  # closed by the server
            except ConnectionResetError:
                pass
            finally:
                sock.close()

    def test_rss_stays_flat_over_10000_crafted_requests(
        self, process_env: dict[str, str], signer: Signer
    ) -> None:
        """Never-seen doses and texts: the server's RSS grows by at most 10 %."""
        server = _Process(process_env)
        rng = random.Random(15)
        try:
            (pid,) = [server.proc.pid]
            client = LeanClient(server.port)

            def crafted(i: int) -> bytes:
                data = _request(
                    [
                        mps.AdjuvantStep(
                            drug="acetaminophen",
                            role="nociceptive",
                            dose=f"{500 + rng.random() * 1000:.6f} mg",
                            every="6 h",
                        ),
                        mps.OpioidStep(
                            drug="morphine", dose=f"{1 + rng.random() * 20:.6f} mg", every="4 h"
                        ),
                    ]
                )
                order = data["context"]["draftOrders"]["entry"][0]["resource"]
                order["id"] = f"o{i}-{rng.getrandbits(64):x}"
                order["note"] = [{"text": "x" * rng.randrange(1, 4000)}]
                return json.dumps(data).encode()

            def burst(n: int, start: int) -> None:
                for i in range(start, start + n):
                    status, body = client.post(PATH, crafted(i), _headers(signer))
                    assert status == 200, body[:200]

            # warm up past the rule memos' entry caps (4096 steps), then measure 10,000 more
            burst(5000, 0)
            before = _rss_kb(pid)
            burst(10_000, 5000)
            after = _rss_kb(pid)
            client.close()
        finally:
            server.stop()
        assert after <= before * 1.10, f"RSS {before} kB -> {after} kB"

    def test_worker_killed_mid_request_loses_no_other_request(
        self, process_env: dict[str, str], signer: Signer
    ) -> None:
        """--workers 2: one worker killed while requests run; only its own requests fail."""
        server = _Process(process_env, workers=2)
        try:
            deadline = time.monotonic() + 60
            while len(server.children()) < 2:
                assert time.monotonic() < deadline, "the workers did not start"
                time.sleep(0.1)
            body = _acetaminophen_body(1250)
            results: list[str] = []
            killed: list[int] = []
            clients = 8
            per_client = 60

            async def loop(k: int) -> None:
                for i in range(per_client):
                    if k == 0 and i == per_client // 3:
                        victim = server.children()[0]
                        os.kill(victim, signal.SIGKILL)  # mid-run: other requests in flight
                        killed.append(victim)
                    try:
                        client = await AsyncLeanClient.connect(server.port)
                        try:
                            status, _ = await asyncio.wait_for(
                                client.post(
                                    PATH, body, {**_headers(signer), "connection": "close"}
                                ),
                                120,
                            )
                        finally:
                            await client.close()
                        results.append("ok" if status == 200 else f"status {status}")
                    except (TimeoutError, OSError, asyncio.IncompleteReadError):
                        results.append("lost")

            async def run() -> None:
                await asyncio.gather(*(loop(k) for k in range(clients)))

            asyncio.run(run())
            workers_after = server.children()
        finally:
            server.stop()
        assert killed
        assert killed[0] not in workers_after  # it was a worker, and it died (replaced)
        assert len(results) == clients * per_client
        assert not [r for r in results if r.startswith("status")]
        # only requests in flight on the killed worker can be lost: at most one per client
        print(f"lost {results.count('lost')} of {len(results)}")
        assert results.count("lost") <= clients, results.count("lost")
        assert results[-clients:] == ["ok"] * clients  # and the service goes on answering

    def test_token_replayed_to_the_other_worker_is_refused(
        self, process_env: dict[str, str], signer: Signer
    ) -> None:
        """--workers 2: a token answered by one worker is refused by the other (one jti store)."""
        psutil = pytest.importorskip("psutil")
        server = _Process(process_env, workers=2)
        clients: list[LeanClient] = []
        try:
            deadline = time.monotonic() + 60
            while len(server.children()) < 2:
                assert time.monotonic() < deadline, "the workers did not start"
                time.sleep(0.1)
            workers = server.children()
            body = _acetaminophen_body(1000)
            by_worker: dict[int, LeanClient] = {}
            # connections until each worker holds one (the kernel hands each to either)
            for _ in range(400):
                client = LeanClient(server.port)
                clients.append(client)
                status, _ = client.post(PATH, body, _headers(signer))
                assert status == 200
                mine = client.sock.getsockname()
                owner = next(
                    pid
                    for pid in workers
                    if any(
                        c.raddr and (c.raddr.ip, c.raddr.port) == mine
                        for c in psutil.Process(pid).net_connections("tcp")
                    )
                )
                by_worker.setdefault(owner, client)
                if len(by_worker) == 2:
                    break
            assert len(by_worker) == 2, "every connection went to one worker"
            print(f"connections until both workers held one: {len(clients)}")
            first, second = by_worker.values()
            for one, other in ((first, second), (second, first)):
                headers = _headers(signer)
                assert one.post(PATH, body, headers)[0] == 200
                status, answer = other.post(PATH, body, headers)  # the same token
                assert status == 401
                assert b"replayed" in answer
        finally:
            for client in clients:
                client.close()
            server.stop()


# ---- fuzzing ------------------------------------------------------------------------------------

ATTACKS = [
    "<img src=x onerror=alert(1)>",
    "[x](javascript:alert(1))",
    "![](https://evil.example/t.png)",
    "| a | b |",
    "\ud800",
    "\u202e",
    "x" * 5000,
]
MARKERS = ("<img", "](javascript:", "![](", "<script")


def _mutate(rng: random.Random, value: Any, depth: int = 0) -> Any:
    """A random change somewhere in a JSON value: an attack string, a strange number, a type."""
    if isinstance(value, dict) and value and depth < 12:
        key = rng.choice(list(value))
        out = dict(value)
        out[key] = _mutate(rng, value[key], depth + 1)
        return out
    if isinstance(value, list) and value and depth < 12:
        out_list = list(value)
        i = rng.randrange(len(out_list))
        out_list[i] = _mutate(rng, out_list[i], depth + 1)
        return out_list
    choice = rng.randrange(10)
    if choice < 4:
        return rng.choice(ATTACKS) + (value if isinstance(value, str) else "")
    if choice == 4:
        return rng.choice([1e308, -1.0, 0, 1e-320, 2**70, True, None])
    if choice == 5:
        return rng.choice([[], {}, [value], {"value": value}])
    if choice == 6:
        return "NaN-marker"
    if choice == 7:
        return rng.choice(["mg", "mcg", "{tbl}", "ug/h", "mL/h", "%", "d", "h"])
    return value


def _seeds() -> list[dict[str, Any]]:
    steps = [
        [mps.AdjuvantStep(drug="acetaminophen", role="nociceptive", dose="1 g", every="6 h")],
        [
            mps.OpioidStep(
                drug="morphine", formulation="modified-release", dose="30 mg", every="12 h"
            ),
            mps.OpioidStep(
                drug="morphine", dose="5 mg", every="4 h", prn=True, max_doses_per_24h=6
            ),
        ],
        [mps.OpioidStep(drug="fentanyl", route="transdermal", rate="25 mcg/h")],
        [mps.RadiotherapyStep(total_dose="20 Gy", fractions=5, site="left psoas")],
        [mps.MethadoneAdjuvantStep(dose="5 mg", every="8 h")],
    ]
    out = []
    for s in steps:
        request = _request(s)
        request["prefetch"] = {
            "patient": {"resourceType": "Patient", "id": "p1", "birthDate": "1950-01-01"},
            "medications": {
                "resourceType": "Bundle",
                "entry": [
                    {
                        "resource": {
                            "resourceType": "MedicationRequest",
                            "id": "m1",
                            "status": "active",
                            "intent": "order",
                            "subject": {"reference": "Patient/p1"},
                            "medicationCodeableConcept": {"text": "sertraline"},
                        }
                    }
                ],
            },
        }
        out.append(request)
    return out


def _echoed(cards: list[dict[str, Any]]) -> list[str]:
    found = []
    for card in cards:
        texts = [card.get("summary", ""), card.get("detail", "")]
        texts += [s.get("label", "") for s in card.get("suggestions", [])]
        texts += [link.get("label", "") for link in card.get("links", [])]
        for text in texts:
            found += [m for m in MARKERS if m in text]
    return found


class TestFuzz:
    def test_20000_fuzzed_requests(self, server: str, signer: Signer) -> None:
        """No 5xx, no 200 without cards, no attack string echoed as markup."""
        rng = random.Random(20_000)
        seeds = _seeds()
        total, per_connection = 20_000, 1_250
        failures: list[str] = []

        def body(i: int) -> bytes:
            value = _mutate(rng, rng.choice(seeds))
            for _ in range(rng.randrange(3)):
                value = _mutate(rng, value)
            text = json.dumps(value, ensure_ascii=rng.random() < 0.5, allow_nan=True)
            text = text.replace('"NaN-marker"', "NaN")
            return text.encode("utf-8", "surrogatepass")

        async def connection(bodies: list[bytes]) -> None:
            client = await AsyncLeanClient.connect(_port(server))
            try:
                for b in bodies:
                    status, answer = await asyncio.wait_for(
                        client.post(PATH, b, _headers(signer)), 600
                    )
                    if status >= 500:
                        failures.append(f"{status}: {answer[:200]!r}")
                        continue
                    data = json.loads(answer)
                    if status == 200:
                        if not isinstance(data.get("cards"), list):
                            failures.append(f"200 without cards: {answer[:200]!r}")
                        else:
                            failures.extend(f"echo {m}" for m in _echoed(data["cards"]))
                    elif data.get("resourceType") != "OperationOutcome":
                        failures.append(f"{status} without an OperationOutcome")
            finally:
                await client.close()

        async def run() -> None:
            batches = [
                [body(i) for i in range(k, k + per_connection)]
                for k in range(0, total, per_connection)
            ]
            await asyncio.gather(*(connection(b) for b in batches))

        asyncio.run(run())
        assert failures == [], failures[:20]
