"""The bulk audit: a FHIR Bulk Data export checked per patient, in partitions, resumable."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from export_gen import EXPORT_TIME, write_export
from mps_analgesia.audit import ROW_SCHEMA, audit_export, audit_patient, line_problems
from mps_analgesia.cli import main

N_PATIENTS = 240


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    """A synthetic export: 240 patients, 5 % corrupt lines, some unreadable orders."""
    folder = tmp_path_factory.mktemp("export")
    counts = write_export(folder, N_PATIENTS, seed=7, corrupt=0.05)
    return folder, counts


@pytest.fixture(scope="module")
def reference(
    export: tuple[Path, dict[str, int]], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The single-process, inline run: the rows every other run must equal."""
    out = tmp_path_factory.mktemp("reference") / "rows.jsonl"
    audit_export(export[0], out, jobs=1, partitions=6)
    return out


def rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def by_patient(path: Path) -> list[dict[str, Any]]:
    return sorted(rows(path), key=lambda r: r["patient"])


class TestRows:
    def test_one_row_per_patient(self, reference: Path) -> None:
        """Every patient of the export has exactly one row (corrupt lines notwithstanding)."""
        patients = [r["patient"] for r in rows(reference)]
        assert len(patients) == len(set(patients)) == N_PATIENTS

    def test_rows_match_the_published_schema(self, reference: Path) -> None:
        """Each row validates against ROW_SCHEMA (also `mps-analgesia schema audit-row`)."""
        jsonschema = pytest.importorskip("jsonschema")
        jsonschema.Draft202012Validator.check_schema(ROW_SCHEMA)
        validator = jsonschema.Draft202012Validator(ROW_SCHEMA)
        for row in rows(reference):
            validator.validate(row)

    def test_findings_and_unread_orders_are_counted(self, reference: Path) -> None:
        """The counts are the lengths of what the row lists; some patients have both kinds."""
        all_rows = rows(reference)
        for row in all_rows:
            assert row["errors"] == sum(f["severity"] == "error" for f in row["findings"])
            assert row["unread_orders"] == len(row["unread"])
        assert any(r["errors"] for r in all_rows)
        assert any(r["unread_orders"] for r in all_rows)
        assert all(r["as_of"] == datetime.fromisoformat(EXPORT_TIME).isoformat() for r in all_rows)

    def test_corrupt_lines_reported_with_file_and_line(
        self, export: tuple[Path, dict[str, int]], reference: Path
    ) -> None:
        """Each damaged line is a problem naming its file and line; none stops the run."""
        problems = list(line_problems(reference))
        assert len(problems) == export[1]["corrupt"]
        assert all(p["line"] >= 1 and p["file"].endswith((".ndjson", ".gz")) for p in problems)
        assert any(p["file"] == "MedicationRequest.ndjson.gz" for p in problems)


class TestSameResultsEveryWay:
    def test_two_processes(
        self, export: tuple[Path, dict[str, int]], reference: Path, tmp_path: Path
    ) -> None:
        """jobs=2 writes the same file as the inline run."""
        out = tmp_path / "rows.jsonl"
        audit_export(export[0], out, jobs=2, partitions=6)
        assert out.read_bytes() == reference.read_bytes()

    def test_other_partitions(
        self, export: tuple[Path, dict[str, int]], reference: Path, tmp_path: Path
    ) -> None:
        """Another partition count gives the same rows (in another order)."""
        out = tmp_path / "rows.jsonl"
        audit_export(export[0], out, jobs=1, partitions=3)
        assert by_patient(out) == by_patient(reference)

    def test_restart_skips_written_partitions(
        self, export: tuple[Path, dict[str, int]], reference: Path, tmp_path: Path
    ) -> None:
        """A restart after partitions were lost redoes only those, with the same result."""
        out = tmp_path / "rows.jsonl"
        audit_export(export[0], out, jobs=1, partitions=6)
        work = tmp_path / "rows.jsonl.work" / "out"
        for k in (1, 4):
            (work / f"part-{k:05d}.counts.json").unlink()
            (work / f"part-{k:05d}.jsonl").unlink()
        out.unlink()
        summary = audit_export(export[0], out, jobs=1, partitions=6)
        assert summary.partitions_skipped == 4
        assert out.read_bytes() == reference.read_bytes()

    def test_killed_and_restarted(
        self, export: tuple[Path, dict[str, int]], reference: Path, tmp_path: Path
    ) -> None:
        """`audit` killed mid-run and started again gives the rows of an uninterrupted run."""
        out = tmp_path / "rows.jsonl"
        argv = [sys.executable, "-m", "mps_analgesia", "audit", str(export[0]), "-o", str(out)]
        argv += ["-j", "1", "--partitions", "6"]
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        work = tmp_path / "rows.jsonl.work" / "out"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if list(work.glob("*.counts.json")):
                break
            time.sleep(0.05)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        assert done.returncode in (0, 1), done.stderr
        assert out.read_bytes() == reference.read_bytes()

    def test_killed_while_writing_counts(
        self,
        export: tuple[Path, dict[str, int]],
        reference: Path,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """A kill between creating a partition's counts file and filling it: the restart redoes it.

        The file is what marks a partition done; one left empty made the restart fail to read it.
        """
        out = tmp_path / "rows.jsonl"
        real_write_text = Path.write_text

        class Killed(BaseException):
            pass

        def dies_in_counts(self: Path, data: str, *args: Any, **kwargs: Any) -> int:
            if ".counts.json" in self.name and self.name.startswith("part-00002"):
                real_write_text(self, "", *args, **kwargs)  # created, not yet filled
                raise Killed
            return real_write_text(self, data, *args, **kwargs)

        with monkeypatch.context() as patch:
            patch.setattr(Path, "write_text", dies_in_counts)
            with pytest.raises(Killed):
                audit_export(export[0], out, jobs=1, partitions=6)
        summary = audit_export(export[0], out, jobs=1, partitions=6)
        assert summary.partitions_skipped == 2
        assert out.read_bytes() == reference.read_bytes()

    def test_different_as_of_is_a_new_run(
        self, export: tuple[Path, dict[str, int]], tmp_path: Path
    ) -> None:
        """A restart with another --as-of recomputes everything (no stale rows)."""
        out = tmp_path / "rows.jsonl"
        audit_export(export[0], out, partitions=2)
        summary = audit_export(export[0], out, partitions=2, as_of=datetime(2026, 3, 1, tzinfo=UTC))
        assert summary.partitions_skipped == 0
        assert {r["as_of"] for r in rows(out)} == {"2026-03-01T00:00:00+00:00"}


class TestAsOf:
    PID = "p1"
    AS_OF = datetime(2026, 6, 1, tzinfo=UTC)

    def _order(self, status: str, authored: str, end: str | None = None) -> dict[str, Any]:
        order: dict[str, Any] = {
            "resourceType": "MedicationRequest",
            "id": f"rx-{status}-{authored}",
            "status": status,
            "intent": "order",
            "subject": {"reference": "Patient/p1"},
            "authoredOn": authored,
            "medicationCodeableConcept": {"text": "oxycodone 5 MG Oral Tablet"},
            "dosageInstruction": [
                {
                    "timing": {"repeat": {"frequency": 1, "period": 6, "periodUnit": "h"}},
                    "doseAndRate": [
                        {
                            "doseQuantity": {
                                "value": 5,
                                "unit": "mg",
                                "code": "mg",
                                "system": "http://unitsofmeasure.org",
                            }
                        }
                    ],
                }
            ],
        }
        if end:
            order["dispenseRequest"] = {"validityPeriod": {"end": end}}
        return order

    def test_orders_in_force_at_the_time(self) -> None:
        """Active orders authored before, and ended ones still valid then, count; others not."""
        patient = {"resourceType": "Patient", "id": "p1"}
        orders = [
            self._order("active", "2026-05-01"),  # in force
            self._order("active", "2026-07-01"),  # authored after as-of
            self._order("completed", "2026-01-01", end="2026-02-01"),  # ended before
            self._order("stopped", "2026-04-01", end="2026-06-30"),  # still valid then
            self._order("draft", "2026-05-01"),  # never an order in force
            self._order("entered-in-error", "2026-05-01"),
        ]
        row = audit_patient("p1", [patient, *orders], self.AS_OF)
        assert row["orders"] == 2
        assert row["unread_orders"] == 0

    def test_latest_observation_before_the_time(self) -> None:
        """The weight measured after the as-of time is not used."""

        def weight(value: float, when: str) -> dict[str, Any]:
            return {
                "resourceType": "Observation",
                "status": "final",
                "subject": {"reference": "Patient/p1"},
                "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
                "effectiveDateTime": when,
                "valueQuantity": {
                    "value": value,
                    "unit": "kg",
                    "code": "kg",
                    "system": "http://unitsofmeasure.org",
                },
            }

        from mps_analgesia.audit import _patient

        kept = [
            r
            for r in [weight(60, "2026-05-01"), weight(45, "2026-07-01")]
            if _patient._observed_by(r, self.AS_OF)
        ]
        assert [r["valueQuantity"]["value"] for r in kept] == [60]


class TestCommandLine:
    def test_audit_summary_without_patient_data(
        self,
        export: tuple[Path, dict[str, int]],
        reference: Path,
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """`audit` writes the rows and a summary of counts; no patient id reaches stderr."""
        out = tmp_path / "rows.jsonl"
        code = main(["audit", str(export[0]), "-o", str(out), "-j", "1", "--partitions", "6"])
        captured = capsys.readouterr()
        assert code == 1  # some patients have error findings
        assert out.read_bytes() == reference.read_bytes()
        assert f"patients{' ' * 5}" in captured.err or "patients" in captured.err
        assert "corrupt lines" in captured.err
        assert "pt0" not in captured.err  # no patient id in the logs
        assert captured.out == ""

    def test_missing_export_is_exit_2(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A folder with no NDJSON file: exit 2 and the reason."""
        assert main(["audit", str(tmp_path), "-o", str(tmp_path / "rows.jsonl")]) == 2
        assert "holds no NDJSON file" in capsys.readouterr().err

    def test_parquet_rows(
        self, export: tuple[Path, dict[str, int]], reference: Path, tmp_path: Path
    ) -> None:
        """`-o rows.parquet` writes the same rows as Parquet (the audit extra)."""
        pq = pytest.importorskip("pyarrow.parquet")
        out = tmp_path / "rows.parquet"
        audit_export(export[0], out, partitions=6)
        table = pq.read_table(out).to_pylist()
        assert [r["patient"] for r in table] == [r["patient"] for r in rows(reference)]
        assert json.loads(table[0]["findings"]) == rows(reference)[0]["findings"]


@pytest.mark.slow
class TestDask:
    def test_local_cluster_gives_identical_rows(
        self, export: tuple[Path, dict[str, int]], reference: Path, tmp_path: Path
    ) -> None:
        """Partitions as tasks on a 2-worker LocalCluster (127.0.0.1): the same rows."""
        distributed = pytest.importorskip("distributed")
        with distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            host="127.0.0.1",
            dashboard_address=None,
            processes=True,
        ) as cluster:
            out = tmp_path / "rows.jsonl"
            audit_export(
                export[0], out, partitions=6, engine="dask", scheduler=cluster.scheduler_address
            )
        assert out.read_bytes() == reference.read_bytes()
