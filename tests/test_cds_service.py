"""The CDS Hooks service as a hospital network runs it: authentication, errors, limits, audit.

Over real HTTP on 127.0.0.1 to the service's own uvicorn server; the EHR's JWK Set URL and FHIR
server are answered by an ``httpx.MockTransport`` (the service never reaches the network).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mps_analgesia as mps

cds_support = pytest.importorskip("cds_support")
httpx = cds_support.httpx
jwt = cds_support.jwt

from cds_support import (  # noqa: E402
    EHR_FHIR,
    EHR_ISS,
    JKU,
    SERVICE_URL,
    SignedAuth,
    Signer,
    post_json,
    running_server,
)
from mps_analgesia.cds_hooks import (  # noqa: E402
    SERVICE_ID,
    AuthError,
    JtiStore,
    MemoryJtiStore,
    ServiceConfig,
    ServiceConfigError,
    SqliteJtiStore,
    TrustedClient,
    _app,
    create_app,
    handle,
    load_config,
    make_server,
)
from mps_analgesia.cds_hooks._auth import ReplayGuard, Verifier  # noqa: E402
from mps_analgesia.cds_hooks._jti import make_store  # noqa: E402
from mps_analgesia.fhir import to_bundle  # noqa: E402

PATH = f"/cds-services/{SERVICE_ID}"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"


def _weight_bundle(kg: float) -> dict[str, Any]:
    obs = {
        "resourceType": "Observation",
        "id": "w1",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": "29463-7"}]},
        "valueQuantity": {"value": kg, "system": UCUM, "code": "kg"},
    }
    return {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": obs}]}


class Ehr:
    """The EHR's web side: its JWK Set URL and its FHIR server, as an httpx transport."""

    def __init__(self, signer: Signer) -> None:
        self.jwks = signer.jwks()
        self.requests: list[Any] = []

    def __call__(self, request: Any) -> Any:
        self.requests.append(request)
        url = str(request.url)
        if url == JKU:
            return httpx.Response(200, json=self.jwks)
        if url.startswith(EHR_FHIR + "/Observation") and "29463-7" in url:
            if request.headers.get("authorization") != "Bearer fhir-token":
                return httpx.Response(401, json={"resourceType": "OperationOutcome"})
            return httpx.Response(200, json=_weight_bundle(60))
        return httpx.Response(404, json={"resourceType": "OperationOutcome", "issue": []})


@pytest.fixture(scope="module")
def signer() -> Signer:
    return Signer()


@pytest.fixture(scope="module")
def jku_signer() -> Signer:
    """A second EHR whose keys are only at its JWK Set URL."""
    return Signer(kid="jku-key-1", iss="https://other-ehr.example.org")


@pytest.fixture(scope="module")
def ehr(jku_signer: Signer) -> Ehr:
    return Ehr(jku_signer)


@pytest.fixture(scope="module")
def audit_path(tmp_path_factory: Any) -> Path:
    return Path(tmp_path_factory.mktemp("audit")) / "audit.jsonl"


@pytest.fixture(scope="module")
def service_config(signer: Signer, jku_signer: Signer, audit_path: Path) -> ServiceConfig:
    clients = [
        TrustedClient(EHR_ISS, jwks=signer.jwks(), fhir_servers=[EHR_FHIR]),
        TrustedClient(jku_signer.iss, jku=[JKU]),
    ]
    config = ServiceConfig(url=SERVICE_URL, clients=clients, audit_log=str(audit_path))
    return cds_support.evolve_limits(config, header_timeout_s=1.0, timeout_keep_alive_s=1.0)


@pytest.fixture(scope="module")
def base_url(service_config: ServiceConfig, ehr: Ehr) -> Iterator[str]:
    transport = httpx.MockTransport(ehr)
    with running_server(config=service_config, transport=transport) as url:
        yield url


@pytest.fixture(scope="module")
def anonymous(base_url: str) -> Iterator[Any]:
    """A client that sends no token of its own."""
    with httpx.Client(base_url=base_url, trust_env=False, timeout=20) as c:
        yield c


@pytest.fixture(scope="module")
def client(base_url: str, signer: Signer) -> Iterator[Any]:
    with httpx.Client(base_url=base_url, trust_env=False, timeout=20, auth=SignedAuth(signer)) as c:
        yield c


def _acetaminophen(dose: str = "1250 mg") -> mps.AdjuvantStep:
    return mps.AdjuvantStep(drug="acetaminophen", role="nociceptive", dose=dose, every="6 h")


def _request(steps: list[Any] | None = None, **top: Any) -> dict[str, Any]:
    bundle = to_bundle(mps.Regimen(steps or [_acetaminophen()]))
    orders = [e for e in bundle["entry"] if e["resource"]["resourceType"] == "MedicationRequest"]
    return {
        "hook": "order-sign",
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "context": {
            "userId": "Practitioner/1",
            "patientId": "p1",
            "draftOrders": {"resourceType": "Bundle", "entry": orders},
        },
        **top,
    }


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _is_outcome(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["diagnostics"] == body["error"]
    return body


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


# ---- authentication -----------------------------------------------------------------------------


class TestAuthentication:
    def test_signed_request_gets_cards(self, client: Any) -> None:
        """A request with a fresh token signed by a trusted EHR is answered with cards."""
        response = post_json(client, PATH, _request())
        assert response.status_code == 200
        assert any(c["indicator"] == "critical" for c in response.json()["cards"])

    def test_discovery_needs_a_token_too(self, anonymous: Any, client: Any) -> None:
        """CDS Hooks: every call, discovery included, carries the JWT."""
        _is_outcome(anonymous.get("/cds-services"), 401)
        assert client.get("/cds-services").status_code == 200

    def test_no_token_is_401_with_www_authenticate(self, anonymous: Any) -> None:
        """Without an Authorization header: 401, a Bearer challenge, an OperationOutcome."""
        response = post_json(anonymous, PATH, _request())
        body = _is_outcome(response, 401)
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert body["issue"][0]["code"] == "login"

    @pytest.mark.parametrize(
        "authorization",
        ["Bearer", "Bearer garbage", "Basic dXNlcjpwYXNz", "Bearer a.b.c", "Bearer " + "x" * 20000],
    )
    def test_garbage_is_401(self, anonymous: Any, authorization: str) -> None:
        """A garbage bearer, another scheme or a huge token: 401."""
        response = post_json(anonymous, PATH, _request(), headers={"Authorization": authorization})
        _is_outcome(response, 401)

    def test_alg_none_is_401(self, anonymous: Any) -> None:
        """An unsigned token (alg none) with valid claims is refused."""
        now = int(time.time())
        claims = {"iss": EHR_ISS, "aud": SERVICE_URL + PATH, "exp": now + 60, "iat": now}
        token = f"{_b64({'alg': 'none', 'typ': 'JWT', 'kid': 'ehr-key-1'})}.{_b64(claims)}."
        _is_outcome(post_json(anonymous, PATH, _request(), headers=_bearer(token)), 401)

    def test_hmac_with_the_public_key_is_401(self, anonymous: Any, signer: Signer) -> None:
        """The algorithm-confusion attack (HS256 keyed with the public key) is refused."""
        now = int(time.time())
        claims = {
            "iss": EHR_ISS,
            "aud": SERVICE_URL + PATH,
            "exp": now + 60,
            "iat": now,
            "jti": "hs",
        }
        secret = json.dumps(signer.jwk).encode()  # what a confused verifier would key with
        signing_input = f"{_b64({'alg': 'HS256', 'typ': 'JWT', 'kid': signer.kid})}.{_b64(claims)}"
        mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        token = f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
        _is_outcome(post_json(anonymous, PATH, _request(), headers=_bearer(token)), 401)

    @pytest.mark.parametrize(
        ("claims", "message"),
        [
            ({"exp": int(time.time()) - 3600}, "expired"),
            ({"iat": int(time.time()) - 3600}, "too long ago"),
            ({"iat": int(time.time()) + 3600}, "not valid yet"),
            ({"jti": None}, "jti"),
            ({"exp": None}, "exp"),
            ({"aud": SERVICE_URL + "/cds-services/other"}, "aud"),
            ({"aud": "https://evil.example/cds-services/mps-analgesia"}, "aud"),
            ({"iss": "https://evil.example"}, "issuer"),
        ],
    )
    def test_bad_claims_are_401(
        self, anonymous: Any, signer: Signer, claims: dict[str, Any], message: str
    ) -> None:
        """Expired, too old, future, without jti or exp, wrongly audienced, unknown issuer."""
        token = signer.token(PATH, **claims)
        body = _is_outcome(post_json(anonymous, PATH, _request(), headers=_bearer(token)), 401)
        assert message in body["error"]

    def test_aud_as_a_list_is_accepted(self, anonymous: Any, signer: Signer) -> None:
        """RFC 7519: aud may be an array holding the endpoint's URL."""
        token = signer.token(PATH, aud=["https://other.example", SERVICE_URL + PATH])
        assert post_json(anonymous, PATH, _request(), headers=_bearer(token)).status_code == 200

    def test_replayed_token_is_401(self, anonymous: Any, signer: Signer) -> None:
        """The same jti twice: the second request is refused."""
        token = signer.token(PATH)
        assert post_json(anonymous, PATH, _request(), headers=_bearer(token)).status_code == 200
        body = _is_outcome(post_json(anonymous, PATH, _request(), headers=_bearer(token)), 401)
        assert "replayed" in body["error"]

    def test_signature_by_another_key_is_401(self, anonymous: Any) -> None:
        """A token signed with a key that is not the trusted one (same kid, same iss)."""
        forger = Signer()  # kid "ehr-key-1", iss EHR_ISS, a different private key
        body = _is_outcome(
            post_json(anonymous, PATH, _request(), headers=_bearer(forger.token(PATH))), 401
        )
        assert "signature" in body["error"]

    def test_unknown_kid_is_401(self, anonymous: Any) -> None:
        """A kid not in the client's JWK Set is refused."""
        stranger = Signer(kid="unknown-kid")
        body = _is_outcome(
            post_json(anonymous, PATH, _request(), headers=_bearer(stranger.token(PATH))), 401
        )
        assert "kid" in body["error"]

    def test_jku_on_the_allow_list_is_fetched(
        self, anonymous: Any, jku_signer: Signer, ehr: Ehr
    ) -> None:
        """A token naming its allowed jku is verified with the JWK Set fetched from there."""
        token = jku_signer.token(PATH, header={"jku": JKU})
        assert post_json(anonymous, PATH, _request(), headers=_bearer(token)).status_code == 200
        assert any(str(r.url) == JKU for r in ehr.requests)

    def test_jku_not_on_the_allow_list_is_401(self, anonymous: Any, jku_signer: Signer) -> None:
        """A jku the configuration does not list is never fetched."""
        token = jku_signer.token(PATH, header={"jku": "https://evil.example/jwks.json"})
        body = _is_outcome(post_json(anonymous, PATH, _request(), headers=_bearer(token)), 401)
        assert "jku" in body["error"]

    def test_feedback_needs_a_token(self, anonymous: Any) -> None:
        """The feedback endpoint is authenticated like the service."""
        response = post_json(anonymous, f"{PATH}/feedback", {"feedback": []})
        _is_outcome(response, 401)


class TestKeyRotation:
    def _verifier(self, client: TrustedClient, **kwargs: Any) -> Verifier:
        config = ServiceConfig(url=SERVICE_URL, clients=[client])
        return Verifier(config, replay=ReplayGuard(), **kwargs)

    def test_jwks_file_is_reread_when_it_changes(self, tmp_path: Path) -> None:
        """A rotated key in the JWK Set file is used without a restart."""
        old, new = Signer(kid="k-old"), Signer(kid="k-new")
        file = tmp_path / "jwks.json"
        file.write_text(json.dumps(old.jwks()))
        verifier = self._verifier(TrustedClient(EHR_ISS, jwks_file=str(file)))
        assert verifier.verify(f"Bearer {old.token(PATH)}", PATH).verified
        with pytest.raises(AuthError, match="kid"):
            verifier.verify(f"Bearer {new.token(PATH)}", PATH)
        file.write_text(json.dumps(new.jwks()) + " ")  # the rotation: a new file content
        assert verifier.verify(f"Bearer {new.token(PATH)}", PATH).verified
        with pytest.raises(AuthError, match="kid"):  # the retired key is no longer trusted
            verifier.verify(f"Bearer {old.token(PATH)}", PATH)

    def test_jku_is_fetched_again_for_a_new_kid(self) -> None:
        """An unknown kid makes the service fetch the JWK Set URL again (rotation)."""
        old, new = Signer(kid="k-old"), Signer(kid="k-new")
        served = {"jwks": old.jwks()}
        fetches = []

        def answer(request: Any) -> Any:
            fetches.append(request)
            return httpx.Response(200, json=served["jwks"])

        clock = [1000.0]
        verifier = self._verifier(
            TrustedClient(EHR_ISS, jku=[JKU]),
            transport=httpx.MockTransport(answer),
            clock=lambda: clock[0],
        )
        verifier.config = ServiceConfig(
            url=SERVICE_URL, clients=verifier.config.clients, max_token_age_s=10**10
        )
        assert verifier.verify(f"Bearer {old.token(PATH, header={'jku': JKU})}", PATH).verified
        assert verifier.verify(f"Bearer {old.token(PATH, header={'jku': JKU})}", PATH).verified
        assert len(fetches) == 1  # cached
        served["jwks"] = new.jwks()
        clock[0] += 60
        assert verifier.verify(f"Bearer {new.token(PATH, header={'jku': JKU})}", PATH).verified
        assert len(fetches) == 2

    def test_replay_store_in_a_file_is_shared(self, tmp_path: Path) -> None:
        """Two guards on one SQLite file (two workers) refuse each other's replays."""
        path = str(tmp_path / "jti.sqlite3")
        one, two = ReplayGuard(path), ReplayGuard(path)
        now = time.time()
        assert one.first_use("iss", "j1", now + 60, now)
        assert not two.first_use("iss", "j1", now + 60, now)
        assert two.first_use("iss", "j2", now + 60, now)
        assert two.first_use("iss", "expired", now - 1, now - 100)
        assert one.first_use("iss", "expired", now + 60, now)  # an expired entry is reusable

    def test_memory_guard_is_bounded(self) -> None:
        """Past its size the in-memory guard refuses new tokens (503), never forgets early."""
        guard = ReplayGuard(max_entries=2)
        now = time.time()
        assert guard.first_use("i", "a", now + 60, now)
        assert guard.first_use("i", "b", now + 60, now)
        with pytest.raises(AuthError) as info:
            guard.first_use("i", "c", now + 60, now)
        assert info.value.status == 503
        assert guard.first_use("i", "c", now + 200, now + 100)  # a and b expired


_STORES = {
    "memory": lambda path: MemoryJtiStore(),
    "sqlite": lambda path: SqliteJtiStore(path),
}

_OTHER_PROCESS = """
import sys, time
from mps_analgesia.cds_hooks import SqliteJtiStore
store = SqliteJtiStore(sys.argv[1])
now = time.time()
print(store.first_use("iss", sys.argv[2], now + 60, now))
"""


class TestJtiStore:
    @pytest.mark.parametrize("kind", sorted(_STORES))
    def test_a_jti_is_used_once_within_its_window(self, kind: str, tmp_path: Path) -> None:
        """First use true, a replay false, another issuer's same jti true, expired reusable."""
        store = _STORES[kind](str(tmp_path / "jti.sqlite3"))
        assert isinstance(store, JtiStore)
        now = 1_000_000.0
        assert store.first_use("iss-a", "j1", now + 60, now)
        assert not store.first_use("iss-a", "j1", now + 60, now + 1)
        assert store.first_use("iss-b", "j1", now + 60, now + 1)  # jti is per issuer
        assert not store.first_use("iss-a", "j1", now + 120, now + 59)
        assert store.first_use("iss-a", "j1", now + 200, now + 61)  # its window is over
        assert not store.first_use("iss-a", "j1", now + 200, now + 62)

    @pytest.mark.parametrize("kind", sorted(_STORES))
    def test_concurrent_uses_of_one_jti_accept_exactly_one(self, kind: str, tmp_path: Path) -> None:
        """Threads racing with one token (one store per worker's threads): one is accepted."""
        import threading

        store = _STORES[kind](str(tmp_path / "jti.sqlite3"))
        now = time.time()
        for round_ in range(20):
            results: list[bool] = []
            start = threading.Barrier(8)

            def use(
                jti: str = f"race-{round_}",
                start: threading.Barrier = start,
                results: list[bool] = results,
            ) -> None:
                start.wait()
                results.append(store.first_use("iss", jti, now + 60, now))

            threads = [threading.Thread(target=use) for _ in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert sorted(results) == [False] * 7 + [True]

    def test_every_process_of_a_host_sees_every_jti(self, tmp_path: Path) -> None:
        """A jti recorded by another process is refused here, and the other way round."""
        import subprocess
        import sys

        path = str(tmp_path / "jti.sqlite3")
        here = SqliteJtiStore(path)
        now = time.time()
        assert here.first_use("iss", "mine", now + 60, now)

        def other(jti: str) -> str:
            run = [sys.executable, "-c", _OTHER_PROCESS, path, jti]
            return subprocess.run(run, capture_output=True, text=True, check=True).stdout.strip()

        assert other("mine") == "False"  # recorded here: refused there
        assert other("theirs") == "True"
        assert not here.first_use("iss", "theirs", now + 60, now)  # recorded there: refused here

    def test_an_unusable_file_is_refused_at_start(self, tmp_path: Path) -> None:
        """A store file that cannot be opened stops the service from starting (503 error)."""
        with pytest.raises(AuthError, match="cannot be opened") as info:
            SqliteJtiStore(tmp_path / "no-such-folder" / "jti.sqlite3")
        assert info.value.status == 503

    def test_memory_store_is_bounded(self) -> None:
        """Past its size the in-memory store refuses new tokens (503), never forgets early."""
        store = MemoryJtiStore(max_entries=1)
        assert store.first_use("i", "a", 60.0, 0.0)
        with pytest.raises(AuthError) as info:
            store.first_use("i", "b", 60.0, 1.0)
        assert info.value.status == 503
        assert not store.first_use("i", "a", 60.0, 2.0)  # still remembered


class TestJtiStoreConfiguration:
    def _config(self, signer: Signer, **kwargs: Any) -> ServiceConfig:
        return ServiceConfig(
            url=SERVICE_URL, clients=[TrustedClient(EHR_ISS, jwks=signer.jwks())], **kwargs
        )

    def test_default_is_memory_for_one_process(self, signer: Signer) -> None:
        """Without a store configured, one process remembers in memory."""
        assert isinstance(make_store(self._config(signer), environ={}), MemoryJtiStore)

    def test_serve_workers_share_a_file(self, signer: Signer, tmp_path: Path) -> None:
        """serve(workers=N) names one file for its workers; each opens it."""
        env = {"MPS_CDS_REPLAY_DB": str(tmp_path / "shared.sqlite3")}
        store = make_store(self._config(signer), environ=env)
        assert isinstance(store, SqliteJtiStore)
        assert store.path == env["MPS_CDS_REPLAY_DB"]

    def test_configured_file(self, signer: Signer, tmp_path: Path) -> None:
        """auth.jti_store naming a file: a SQLite store there, read relative to the file."""
        config_file = tmp_path / "cds.toml"
        config_file.write_text(
            f'[service]\nurl = "{SERVICE_URL}"\n[auth]\njti_store = "state/jti.sqlite3"\n'
            f"[[auth.clients]]\niss = \"{EHR_ISS}\"\njwks = '{json.dumps(signer.jwks())}'\n"
        )
        (tmp_path / "state").mkdir()
        config = load_config(config_file, environ={})
        assert config.jti_store == str(tmp_path / "state" / "jti.sqlite3")
        store = make_store(config, environ={"MPS_CDS_REPLAY_DB": str(tmp_path / "other")})
        assert isinstance(store, SqliteJtiStore)
        assert store.path == config.jti_store  # the configured file wins

    def test_configured_factory_for_several_hosts(
        self, signer: Signer, tmp_path: Path, monkeypatch: Any
    ) -> None:
        """auth.jti_store naming a factory: the store it makes answers for every request."""
        monkeypatch.setenv("MPS_TEST_JTI_FILE", str(tmp_path / "hosts.sqlite3"))
        config = load_config(
            environ={"MPS_CDS_JTI_STORE": "cds_support:file_store"},
            url=SERVICE_URL,
            clients=[TrustedClient(EHR_ISS, jwks=signer.jwks())],
        )
        one, two = Verifier(config), Verifier(config)  # two hosts, one shared store
        token = signer.token(PATH)
        assert one.verify(f"Bearer {token}", PATH).verified
        with pytest.raises(AuthError, match="replayed"):
            two.verify(f"Bearer {token}", PATH)

    def test_factory_must_make_a_store(self, signer: Signer) -> None:
        """A factory making something else stops the service from starting."""
        config = self._config(signer, jti_store="cds_support:not_a_store")
        with pytest.raises(TypeError, match="not a JtiStore"):
            make_store(config)

    def test_empty_name_is_a_configuration_problem(self, signer: Signer) -> None:
        """auth.jti_store = "" is reported under its key path."""
        with pytest.raises(ServiceConfigError, match=r"auth\.jti_store"):
            self._config(signer, jti_store="")

    def test_server_takes_a_store(self, signer: Signer) -> None:
        """make_server(jti_store=...) checks every request's jti in that store."""
        store = MemoryJtiStore()
        token = signer.token(PATH)
        jti = jwt.decode(token, options={"verify_signature": False})["jti"]
        assert store.first_use(EHR_ISS, jti, time.time() + 600, time.time())  # seen elsewhere
        with (
            running_server(config=self._config(signer), jti_store=store) as url,
            httpx.Client(base_url=url) as client,
        ):
            refused = post_json(client, PATH, _request(), headers=_bearer(token))
            fresh = post_json(client, PATH, _request(), headers=_bearer(signer.token(PATH)))
        assert "replayed" in _is_outcome(refused, 401)["error"]
        assert fresh.status_code == 200


class TestConfiguration:
    @pytest.mark.parametrize("threads", [0, 1.5, -2])
    def test_checking_threads_are_a_whole_positive_number(
        self, signer: Signer, threads: Any
    ) -> None:
        """limits.threads = 0, 1.5 or -2 is reported under its key path."""
        with pytest.raises(ServiceConfigError, match=r"limits\.threads"):
            cds_support.evolve_limits(cds_support.config(signer), threads=threads)

    def test_auth_is_on_by_default(self, monkeypatch: Any) -> None:
        """create_app() and make_server() without configuration refuse to start."""
        for var in ("MPS_CDS_CONFIG", "MPS_CDS_SERVICE_URL", "MPS_CDS_CLIENTS"):
            monkeypatch.delenv(var, raising=False)
        with pytest.raises(ServiceConfigError, match=r"auth\.clients"):
            create_app()
        with pytest.raises(ServiceConfigError, match=r"service\.url"):
            make_server("127.0.0.1", 0)

    def test_insecure_is_explicit_and_logged(self, caplog: Any) -> None:
        """--insecure-no-auth is said in the log at start."""
        with caplog.at_level(logging.WARNING, logger="mps_analgesia.cds_hooks"):
            create_app(insecure_no_auth=True)
        assert "AUTHENTICATION IS OFF" in caplog.text

    def test_config_file(self, tmp_path: Path, signer: Signer) -> None:
        """A TOML file with a JWK Set file next to it, relative paths resolved from it."""
        (tmp_path / "ehr.json").write_text(json.dumps(signer.jwks()))
        (tmp_path / "cds.toml").write_text(
            "[service]\n"
            f'url = "{SERVICE_URL}"\n'
            'cors_origins = ["https://ehr.example.org"]\n'
            'audit_log = "audit.jsonl"\n'
            "[limits]\nmax_concurrency = 8\n"
            "[auth]\nmax_token_age_s = 120\n"
            "[[auth.clients]]\n"
            f'iss = "{EHR_ISS}"\n'
            'jwks_file = "ehr.json"\n'
            f'fhir_servers = ["{EHR_FHIR}"]\n'
        )
        config = load_config(tmp_path / "cds.toml", environ={})
        assert config.url == SERVICE_URL
        assert config.limits.max_concurrency == 8
        assert config.max_token_age_s == 120
        assert config.audit_log == str(tmp_path / "audit.jsonl")
        (client,) = config.clients
        assert client.jwks_file == str(tmp_path / "ehr.json")

    def test_environment(self, signer: Signer) -> None:
        """The service URL and clients from the environment."""
        env = {
            "MPS_CDS_SERVICE_URL": SERVICE_URL,
            "MPS_CDS_CLIENTS": json.dumps([{"iss": EHR_ISS, "jwks": signer.jwks()}]),
            "MPS_CDS_CORS_ORIGINS": "https://a.example, https://b.example",
        }
        config = load_config(environ=env)
        assert config.clients[0].iss == EHR_ISS
        assert config.cors_origins == ("https://a.example", "https://b.example")

    def test_every_problem_is_reported(self, tmp_path: Path) -> None:
        """Bad values are all listed with their key paths."""
        (tmp_path / "bad.toml").write_text(
            '[service]\nurl = "ftp://x"\ncors_origins = ["*"]\ncolour = 1\n'
            "[limits]\nmax_concurrency = 0\n"
            '[[auth.clients]]\niss = "https://e"\nfhir_servers = ["http://plain.example"]\n'
        )
        with pytest.raises(ServiceConfigError) as info:
            load_config(tmp_path / "bad.toml", environ={})
        paths = {p.path for p in info.value.problems}
        assert {
            "service.url",
            "service.cors_origins[0]",
            "service.colour",
            "limits.max_concurrency",
            "auth.clients[0]",
            "auth.clients[0].fhir_servers[0]",
        } <= paths


# ---- never a silent answer ----------------------------------------------------------------------


class TestAnswers:
    def test_wrong_content_type_is_415(self, client: Any) -> None:
        """A body that is not declared JSON is refused with 415."""
        body = json.dumps(_request()).encode()
        for ctype in ("text/plain", "application/x-www-form-urlencoded", None):
            headers = {"content-type": ctype} if ctype else {}
            response = client.post(PATH, content=body, headers=headers)
            _is_outcome(response, 415)

    def test_lone_surrogate_gets_cards_not_an_error(self, client: Any) -> None:
        """A lone-surrogate escape in an order's text: 200 with cards, never 200 without."""
        request = _request()
        order = request["context"]["draftOrders"]["entry"][0]["resource"]
        order["medicationCodeableConcept"]["text"] = "ACETAMINOPHEN"
        text = json.dumps(request).replace('"ACETAMINOPHEN"', '"acetaminophen \\ud800 <b>"')
        response = client.post(PATH, content=text, headers={"content-type": "application/json"})
        assert response.status_code == 200
        assert isinstance(response.json()["cards"], list)

    def test_internal_error_is_a_logged_500(self, caplog: Any) -> None:
        """A defect in a rule is a 500 with an OperationOutcome, logged without request data."""

        @mps.rule("local.broken", title="Broken", applies_to=["adjuvant"], severity="error")
        def broken(ctx: Any, index: Any, step: Any) -> Any:
            raise TypeError("secret patient detail 1250 mg")

        rules = mps.default_rules().with_rules(broken)
        with caplog.at_level(logging.ERROR, logger="mps_analgesia.cds_hooks"):
            status, body = handle(_request(), rules=rules)
        assert status == 500
        assert body["resourceType"] == "OperationOutcome"
        assert body["issue"][0]["code"] == "exception"
        assert "TypeError" in caplog.text
        assert "secret" not in caplog.text
        assert "secret" not in json.dumps(body)

    def test_request_id_is_echoed(self, client: Any) -> None:
        """A safe X-Request-ID is echoed; an unsafe one is replaced."""
        ok = post_json(client, PATH, _request(), headers={"X-Request-ID": "abc-123"})
        assert ok.headers["x-request-id"] == "abc-123"
        bad = post_json(client, PATH, _request(), headers={"X-Request-ID": "<script>"})
        assert bad.headers["x-request-id"] != "<script>"


# ---- the fast paths: JSON, request ids, the token read once -------------------------------------

_JSON_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
_JSON_VALUES = st.recursive(
    _JSON_LEAVES,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=12,
)
_LENIENT = [  # what json.loads reads and orjson refuses, or reads otherwise
    b'{"a": NaN}',
    b"[1e400, -Infinity]",
    b'"\\ud800 lone"',
    b"18446744073709551616",
    b"-9223372036854775809",
    b"[" * 1500 + b"]" * 1500,
    b"\xef\xbb\xbf{}",
    b"{not json",
    b"",
]


def _json_or_error(read: Any, body: bytes) -> Any:
    try:
        return ("value", repr(read(body)))
    except (ValueError, RecursionError) as exc:
        return ("error", type(exc))


class TestFastPaths:
    @settings(deadline=None)
    @given(value=_JSON_VALUES, ascii_only=st.booleans())
    def test_loads_reads_as_the_standard_library(self, value: Any, ascii_only: bool) -> None:
        """The request body is read to the very value json.loads gives (ints stay ints)."""
        body = json.dumps(value, ensure_ascii=ascii_only).encode()
        assert repr(_app.loads(body)) == repr(json.loads(body))

    @pytest.mark.parametrize("body", _LENIENT)
    @pytest.mark.parametrize("orjson", [True, False])
    def test_loads_lenient_input_as_the_standard_library(
        self, body: bytes, orjson: bool, monkeypatch: Any
    ) -> None:
        """NaN, 1e400, a lone surrogate, big integers, deep nesting: json.loads's answer."""
        if not orjson:
            monkeypatch.setattr(_app, "_orjson", None)
        assert _json_or_error(_app.loads, body) == _json_or_error(json.loads, body)

    @settings(deadline=None)
    @given(value=_JSON_VALUES)
    def test_dumps_round_trips(self, value: Any) -> None:
        """An answer's bytes are JSON that reads back to the same value."""
        assert repr(json.loads(_app.dumps({"v": value}))) == repr({"v": value})

    @pytest.mark.parametrize("orjson", [True, False])
    def test_dumps_writes_a_lone_surrogate_as_an_escape(
        self, orjson: bool, monkeypatch: Any
    ) -> None:
        """A lone surrogate (which UTF-8 cannot hold) is written as \\ud800, never an error."""
        if not orjson:
            monkeypatch.setattr(_app, "_orjson", None)
        out = _app.dumps({"text": "x \ud800 y"})
        assert b"\\ud800" in out
        assert json.loads(out) == {"text": "x \ud800 y"}

    def test_request_ids_are_unique_safe_tokens(self) -> None:
        """Made request ids never repeat, and are what an X-Request-ID may be."""
        ids = [_app._request_ids.next() for _ in range(1000)]
        assert len(set(ids)) == len(ids)
        assert all(_app._REQUEST_ID.match(i) for i in ids)

    def test_request_ids_differ_between_processes(self, monkeypatch: Any) -> None:
        """A forked worker (a new pid) makes ids with a prefix of its own."""
        made = _app._RequestIds()
        first = made.next()
        monkeypatch.setattr(_app.os, "getpid", lambda: -2)
        second = made.next()
        assert first[:16] != second[:16]

    @pytest.mark.parametrize(
        "token",
        [
            "a.b",
            "a.b.c.d",
            "!!!!.e30.",
            "e30.!!!!.",
            "A.e30.",  # a header that is not base64 of anything
            "bnVsbA.e30.",  # the header is JSON null, not an object
            "e30.WzFd.",  # the claims are a list
            "e30." + "W" * 4000 + ".",  # not JSON
        ],
    )
    def test_malformed_token_is_401(self, signer: Signer, token: str) -> None:
        """A token that is not three base64url JSON segments is refused as not a JWT."""
        config = ServiceConfig(
            url=SERVICE_URL, clients=[TrustedClient(EHR_ISS, jwks=signer.jwks())]
        )
        with pytest.raises(AuthError, match="not a JWT"):
            Verifier(config, replay=ReplayGuard()).verify(f"Bearer {token}", PATH)


# ---- escaping -----------------------------------------------------------------------------------

ATTACKS = [
    "<img src=x onerror=alert(1)>",
    "[x](javascript:alert(1))",
    "![](https://evil.example/track.png)",
    "a | b | c",
]


def _echoes(cards: list[dict[str, Any]]) -> list[str]:
    """The attack strings found verbatim in any card text."""
    found = []
    for card in cards:
        texts = [
            card["summary"],
            card["detail"],
            *(s["label"] for s in card.get("suggestions", [])),
        ]
        for text in texts:
            for attack in ATTACKS:
                if attack in text:
                    found.append(attack)
            for marker in ("<img", "](javascript:", "![]("):
                if marker in text:
                    found.append(marker)
    return found


class TestEscaping:
    @pytest.mark.parametrize("attack", ATTACKS)
    def test_medication_text_is_escaped(self, attack: str) -> None:
        """An unreadable order named by hostile text: the text never comes back verbatim."""
        request = _request()
        order = request["context"]["draftOrders"]["entry"][0]["resource"]
        order["medicationCodeableConcept"] = {"text": attack}
        order["id"] = attack
        status, body = handle(request)
        assert status == 200
        assert body["cards"]
        assert _echoes(body["cards"]) == []

    @pytest.mark.parametrize("attack", ATTACKS)
    def test_site_and_active_medication_are_escaped(self, attack: str) -> None:
        """A radiotherapy site and an active medicine name of hostile text are escaped."""
        rt = mps.RadiotherapyStep(total_dose="20 Gy", fractions=5, site=f"psoas {attack}")
        other = {
            "resourceType": "MedicationRequest",
            "id": "x",
            "status": "active",
            "intent": "order",
            "subject": {"reference": "Patient/p1"},
            "medicationCodeableConcept": {"text": attack},
        }
        bundle = to_bundle(
            mps.Regimen([rt, mps.OpioidStep(drug="tramadol", dose="50 mg", every="6 h")])
        )
        orders = [
            e
            for e in bundle["entry"]
            if e["resource"]["resourceType"] in ("MedicationRequest", "ServiceRequest")
        ]
        request = _request()
        request["context"]["draftOrders"]["entry"] = orders
        request["prefetch"] = {
            "medications": {"resourceType": "Bundle", "entry": [{"resource": other}]}
        }
        status, body = handle(request)
        assert status == 200
        assert _echoes(body["cards"]) == []

    def test_operation_outcome_text_is_escaped(self) -> None:
        """Diagnostics of an OperationOutcome prefetch are reported, escaped."""
        outcome = {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": "timeout", "diagnostics": ATTACKS[0]}],
        }
        status, body = handle(_request(prefetch={"weight": outcome}))
        assert status == 200
        (card,) = [c for c in body["cards"] if "could not run" in c["summary"]]
        assert "The EHR reported for prefetch 'weight'" in card["detail"]
        assert _echoes(body["cards"]) == []


# ---- prefetch -----------------------------------------------------------------------------------


def _block_request(**top: Any) -> dict[str, Any]:
    block = mps.PsoasCompartmentBlockStep(
        drug="ropivacaine", concentration="0.2 %", bolus_volume="20 mL", side="left"
    )
    bundle = to_bundle(mps.Regimen([block]))
    orders = [e for e in bundle["entry"] if e["resource"]["resourceType"] == "ServiceRequest"]
    request = _request(**top)
    request["context"]["draftOrders"]["entry"] = orders
    return request


def _not_checked(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    (card,) = [c for c in response.json()["cards"] if "could not run" in c["summary"]]
    return dict(card)


class TestPrefetch:
    def test_null_prefetch_is_no_data(self) -> None:
        """A null prefetch value is 'no data on record', not 'not sent'."""
        _status, body = handle(_block_request(prefetch={"weight": None}))
        (card,) = [c for c in body["cards"] if "could not run" in c["summary"]]
        assert "No data on record (sent as null): weight" in card["detail"]
        assert "Not sent in prefetch: patient, height, egfr, qtc, medications" in card["detail"]

    def test_missing_prefetch_is_fetched_for_a_verified_client(self, client: Any) -> None:
        """weight absent, fhirServer tied to the token's issuer: fetched, so the block is
        checked by weight."""
        request = _block_request(
            fhirServer=EHR_FHIR,
            fhirAuthorization={
                "access_token": "fhir-token",
                "token_type": "Bearer",
                "expires_in": 300,
                "scope": "user/Observation.read",
                "subject": "mps",
            },
        )
        response = post_json(client, PATH, request)
        card = _not_checked(response)
        assert "weight" not in card["summary"]
        assert "'weight' was not fetched" not in card["detail"]

    def test_a_slow_fhir_server_holds_no_checking_thread(self, signer: Signer) -> None:
        """While one request waits on the EHR's FHIR server, others are checked (1 thread)."""
        import threading

        release = threading.Event()
        asked = threading.Event()

        def fhir(request: Any) -> Any:
            asked.set()
            release.wait(60)  # the FHIR server answers only when the test says so
            return httpx.Response(200, json=_weight_bundle(60))

        config = cds_support.evolve_limits(cds_support.config(signer), threads=1)
        fetching = _block_request(
            fhirServer=EHR_FHIR,
            fhirAuthorization={"access_token": "t", "token_type": "Bearer", "expires_in": 300},
        )
        with (
            running_server(config=config, transport=httpx.MockTransport(fhir)) as url,
            httpx.Client(base_url=url, timeout=60, auth=SignedAuth(signer)) as client,
        ):
            slow: list[Any] = []
            waiting = threading.Thread(
                target=lambda: slow.append(post_json(client, PATH, fetching))
            )
            waiting.start()
            try:
                assert asked.wait(60), "the FHIR server was not asked"
                other = post_json(client, PATH, _request())  # checked meanwhile
                assert other.status_code == 200
                assert not slow  # the first is still waiting on the FHIR server
            finally:
                release.set()
                waiting.join(60)
        assert slow[0].status_code == 200

    @pytest.mark.parametrize(
        ("server", "why"),
        [
            ("https://evil.example/fhir", "not one configured for this client"),
            ("http://ehr.example.org/fhir", "not https"),
        ],
    )
    def test_other_servers_are_never_fetched(
        self, client: Any, ehr: Ehr, server: str, why: str
    ) -> None:
        """A fhirServer not tied to the issuer, or not https: not fetched, and said why."""
        before = len(ehr.requests)
        request = _block_request(fhirServer=server, fhirAuthorization={"access_token": "t"})
        card = _not_checked(post_json(client, PATH, request))
        assert "weight" in card["summary"]
        assert why in card["detail"]
        assert len(ehr.requests) == before

    def test_unverified_caller_gets_nothing_fetched(self) -> None:
        """With authentication off, nothing is fetched on the caller's behalf."""
        from mps_analgesia.cds_hooks._auth import UNVERIFIED
        from mps_analgesia.cds_hooks._config import Limits
        from mps_analgesia.cds_hooks._fetch import complete_prefetch

        data = _block_request(fhirServer=EHR_FHIR, fhirAuthorization={"access_token": "t"})
        out, why = complete_prefetch(data, UNVERIFIED, Limits())
        assert out is data
        assert why["weight"] == "the caller is not verified, so no data are fetched for it"


# ---- feedback and audit -------------------------------------------------------------------------


class TestFeedback:
    def test_feedback_is_validated(self, client: Any) -> None:
        """Feedback not following the spec is 400 with every problem listed."""
        response = post_json(
            client,
            f"{PATH}/feedback",
            {"feedback": [{"card": "c1", "outcome": "accepted", "outcomeTimestamp": "now"}]},
        )
        body = _is_outcome(response, 400)
        assert any("acceptedSuggestions" in p for p in body["problems"])
        assert any("outcomeTimestamp" in p for p in body["problems"])

    def test_feedback_is_audited_without_patient_data(self, client: Any, audit_path: Path) -> None:
        """Cards and feedback go to the JSONL audit log: ids, codes, outcomes; no comment."""
        response = post_json(client, PATH, _request())
        card = next(c for c in response.json()["cards"] if c["indicator"] == "critical")
        feedback = {
            "feedback": [
                {
                    "card": card["uuid"],
                    "outcome": "overridden",
                    "overrideReason": {
                        "reason": {"system": "https://x.example/override", "code": "r1"},
                        "userComment": "Mrs Smith, bed 4, takes 1250 mg at home",
                    },
                    "outcomeTimestamp": "2026-12-04T10:00:00.5Z",
                }
            ]
        }
        rid = "feedback-test-1"
        response = post_json(client, f"{PATH}/feedback", feedback, headers={"X-Request-ID": rid})
        assert (response.status_code, response.json()) == (200, {})
        text = audit_path.read_text()
        assert "Smith" not in text
        # Whole phrases: a bare "1250" could occur inside a random card uuid.
        assert "1250 mg" not in text
        assert "bed 4" not in text
        events = [json.loads(line) for line in text.splitlines()]
        (mine,) = [e for e in events if e["request_id"] == rid]
        assert mine["event"] == "feedback"
        assert mine["card"] == card["uuid"]
        assert mine["outcome"] == "overridden"
        assert mine["override_reason"]["code"] == "r1"
        assert mine["iss"] == EHR_ISS
        assert mine["time"].endswith("Z")
        answered = [e for e in events if e["event"] == "cards"]
        assert any(card["uuid"] in [c["uuid"] for c in e["cards"]] for e in answered)


# ---- timeouts -----------------------------------------------------------------------------------


def _closed_within(sock: socket.socket, seconds: float) -> bytes:
    """Everything the server sends until it closes the connection (bounded wait)."""
    sock.settimeout(seconds)
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


class TestTimeouts:
    def test_client_sending_nothing_is_dropped(self, base_url: str) -> None:
        """A connection that never sends a request head is closed by the server."""
        port = int(base_url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as sock:
            assert _closed_within(sock, 30) == b""

    def test_slow_request_head_is_dropped(self, base_url: str) -> None:
        """A request head sent in part and then stalled: the connection is closed."""
        port = int(base_url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(b"POST /cds-services/mps-analgesia HTTP/1.1\r\nHost: x\r\n")
            assert _closed_within(sock, 30) == b""

    def test_stalled_body_is_408(self, base_url: str) -> None:
        """A body that stops arriving gets 408 and the connection ends."""
        port = int(base_url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(
                b"POST /cds-services/mps-analgesia HTTP/1.1\r\nHost: x\r\n"
                b'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"hook":'
            )
            answer = _closed_within(sock, 30)
        assert answer.startswith(b"HTTP/1.1 408")
