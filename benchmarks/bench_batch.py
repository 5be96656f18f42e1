"""Benchmarks for many cases at once and for the block and radiotherapy rules.

Target (issue 4): 10 000 case files checked from disk in at most 15 s on one core.  The files are
generated in a temporary directory (copies of the shipped examples, 1 000 per sub-directory).

Run: ``python -m pytest benchmarks/bench_batch.py --benchmark-only -q``
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import pytest

import mps_analgesia as mps
from mps_analgesia import cli
from mps_analgesia.batch import validate_many
from mps_analgesia.cli import _check

N_FILES = 10_000
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture(scope="module")
def case_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10 000 case files: the shipped examples copied round-robin into 10 sub-directories."""
    root = tmp_path_factory.mktemp("cases")
    texts = [p.read_text(encoding="utf-8") for p in sorted(EXAMPLES.glob("*.toml"))]
    for i in range(N_FILES):
        sub = root / f"{i // 1000:02d}"
        sub.mkdir(exist_ok=True)
        (sub / f"case{i:05d}.toml").write_text(texts[i % len(texts)], encoding="utf-8")
    # Warm the caches (registry, data tables) so every round measures the steady state.
    for _ in validate_many([next(root.rglob("*.toml"))]):
        pass
    return root


def test_validate_many_10000_files(benchmark: Any, case_dir: Path) -> None:
    """validate_many over 10 000 files read from disk (target ≤ 15 s)."""

    def run() -> int:
        n = 0
        for result in validate_many([case_dir]):
            assert result.ok
            n += 1
        return n

    assert benchmark.pedantic(run, rounds=3, iterations=1) == N_FILES


def test_cli_check_jsonl_10000_files(benchmark: Any, case_dir: Path) -> None:
    """`mps-analgesia check DIR --format jsonl` over 10 000 files, output discarded."""
    args = cli._parser().parse_args(["check", str(case_dir), "--format", "jsonl"])

    def run() -> int:
        with open(os.devnull, "w", encoding="utf-8") as out:
            return _check.run(args, out, io.StringIO())

    assert benchmark.pedantic(run, rounds=3, iterations=1) == 0


def _block_and_radiotherapy_regimen() -> tuple[mps.Regimen, mps.Patient]:
    steps = [
        mps.PsoasCompartmentBlockStep(
            drug="ropivacaine",
            concentration="0.2 %",
            bolus_volume="20 mL",
            infusion_rate="6 mL/h",
            infusion_duration="48 h",
            technique="catheter",
            side="left",
        ),
        mps.PsoasCompartmentBlockStep(
            drug="lidocaine",
            concentration="1 %",
            bolus_volume="20 mL",
            adrenaline=True,
            side="right",
        ),
        mps.RadiotherapyStep(total_dose="20 Gy", fractions=5, site="left psoas"),
        mps.RadiotherapyStep(
            total_dose="8 Gy", fractions=1, site="left psoas", prior_dose="8 Gy", prior_fractions=1
        ),
        mps.OpioidStep(
            drug="oxycodone", formulation="modified-release", dose="10 mg", every="12 h"
        ),
        mps.AdjuvantStep(drug="acetaminophen", role="nociceptive", dose="1 g", every="6 h"),
    ]
    patient = mps.Patient(
        age=70,
        sex="female",
        weight="60 kg",
        height="160 cm",
        anticoagulant=mps.Anticoagulant(
            drug="apixaban", dose="5 mg", every="12 h", last_dose_ago="80 h"
        ),
    )
    return mps.Regimen(steps), patient


def test_validate_block_and_radiotherapy_regimen(benchmark: Any) -> None:
    """validate() of a 6-step regimen with two blocks and two radiotherapy courses, every rule."""
    regimen, patient = _block_and_radiotherapy_regimen()
    mps.validate(regimen, patient)  # warm the caches
    report = benchmark(mps.validate, regimen, patient)
    assert report.counts["flagged"] > 0


def test_block_and_radiotherapy_rules_only(benchmark: Any) -> None:
    """The same regimen with only the block and radiotherapy rules (their own cost)."""
    from mps_analgesia.rules import RuleRegistry, block, radiotherapy

    regimen, patient = _block_and_radiotherapy_regimen()
    rules = RuleRegistry(block.RULES + radiotherapy.RULES)
    mps.validate(regimen, patient, rules=rules)
    report = benchmark(mps.validate, regimen, patient, rules=rules)
    assert report.counts["flagged"] > 0


# ---- issue 18: validate_many on every core, and the bulk audit -----------------------------------

N_SMALL = 4_000


def _load_and_validate(path: str) -> Any:
    """The plain baseline: what a user would write with multiprocessing."""
    case = mps.load_case(path)
    return mps.validate(case.regimen, case.patient)


@pytest.fixture(scope="module")
def small_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 000 small case files (copies of the shipped examples)."""
    root = tmp_path_factory.mktemp("small")
    texts = [p.read_text(encoding="utf-8") for p in sorted(EXAMPLES.glob("*.toml"))]
    for i in range(N_SMALL):
        (root / f"case{i:05d}.toml").write_text(texts[i % len(texts)], encoding="utf-8")
    return root


def test_validate_many_jobs2_vs_plain_pool(benchmark: Any, small_dir: Path) -> None:
    """validate_many(jobs=2) over 4 000 files ≤ 1.15 × a plain Pool(2) over load_case+validate.

    Both in the same run, each timed three times; the medians are compared.
    """
    import multiprocessing
    import statistics
    import time

    paths = [str(p) for p in sorted(small_dir.iterdir())]

    def ours() -> int:
        return sum(1 for r in validate_many([small_dir], jobs=2) if r.ok)

    def plain() -> int:
        with multiprocessing.Pool(2) as pool:
            return sum(1 for _ in pool.imap(_load_and_validate, paths, chunksize=16))

    times: dict[str, list[float]] = {"ours": [], "plain": []}
    for _ in range(3):
        for name, fn in (("plain", plain), ("ours", ours)):
            start = time.perf_counter()
            assert fn() == N_SMALL
            times[name].append(time.perf_counter() - start)
    medians = {k: statistics.median(v) for k, v in times.items()}
    benchmark.extra_info.update(medians, ratio=medians["ours"] / medians["plain"])
    print(medians, "ratio", medians["ours"] / medians["plain"])
    benchmark.pedantic(ours, rounds=1, iterations=1)
    assert medians["ours"] <= 1.15 * medians["plain"], medians


AUDIT_SIZES = (5_000, 20_000)


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """Synthetic exports of 5 000 and 20 000 patients (5 % corrupt lines)."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from export_gen import write_export

    out = {}
    for n in AUDIT_SIZES:
        folder = tmp_path_factory.mktemp(f"export{n}")
        write_export(folder, n, seed=1, corrupt=0.05)
        out[n] = folder
    return out


def test_audit_20000_patients_jobs1_vs_jobs2(
    benchmark: Any, exports: dict[int, Path], tmp_path: Path
) -> None:
    """Audit of 20 000 patients: throughput per core, speed-up from --jobs 1 to --jobs 2."""
    import time

    from mps_analgesia.audit import audit_export

    export = exports[20_000]
    timings = {}
    for jobs in (1, 2):
        out = tmp_path / f"rows-{jobs}.jsonl"
        start = time.perf_counter()
        summary = audit_export(export, out, jobs=jobs)
        timings[jobs] = time.perf_counter() - start
        assert summary.patients >= 19_900  # a patient whose every line is corrupt is not seen
    assert (tmp_path / "rows-1.jsonl").read_bytes() == (tmp_path / "rows-2.jsonl").read_bytes()
    info = {
        "jobs1_s": timings[1],
        "jobs2_s": timings[2],
        "speedup": timings[1] / timings[2],
        "patients_per_s_per_core": 20_000 / timings[1],
    }
    benchmark.extra_info.update(info)
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    print(info)


def test_audit_peak_rss_flat(benchmark: Any, exports: dict[int, Path], tmp_path: Path) -> None:
    """Peak RSS of `audit --jobs 1` in a fresh process: 5 000 vs 20 000 patients (within 20 %)."""
    import subprocess
    import sys

    # one child process per size, so that RUSAGE_CHILDREN's maximum belongs to it alone
    code = (
        "import resource, subprocess, sys;"
        "subprocess.run(sys.argv[1:], check=False, capture_output=True);"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)"
    )
    peaks = {}
    for n in AUDIT_SIZES:
        argv = [sys.executable, "-m", "mps_analgesia", "audit", str(exports[n])]
        argv += ["-o", str(tmp_path / f"rss-{n}.jsonl"), "-j", "1"]
        done = subprocess.run(
            [sys.executable, "-c", code, *argv], capture_output=True, text=True, check=True
        )
        peaks[n] = float(done.stdout.strip())
    benchmark.extra_info.update({f"peak_rss_mib_{n}": v for n, v in peaks.items()})
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    print(peaks)
    assert peaks[20_000] <= 1.2 * peaks[5_000], peaks


def test_audit_dask_vs_local_2_jobs(
    benchmark: Any, exports: dict[int, Path], tmp_path: Path
) -> None:
    """A 2-worker Dask LocalCluster within 1.5 × the local 2-job run on the same export."""
    distributed = pytest.importorskip("distributed")
    import time

    from mps_analgesia.audit import audit_export

    export = exports[5_000]
    start = time.perf_counter()
    audit_export(export, tmp_path / "local.jsonl", jobs=2)
    local = time.perf_counter() - start
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None
    ) as cluster:
        start = time.perf_counter()
        audit_export(
            export, tmp_path / "dask.jsonl", engine="dask", scheduler=cluster.scheduler_address
        )
        dask = time.perf_counter() - start
    assert (tmp_path / "local.jsonl").read_bytes() == (tmp_path / "dask.jsonl").read_bytes()
    info = {"local2_s": local, "dask2_s": dask, "ratio": dask / local}
    benchmark.extra_info.update(info)
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    print(info)
    assert dask <= 1.5 * local, info
