"""An HTML summary opened in a real headless browser (Debian's chromium) and printed to PDF.

The test checks that the page printed to at least one A4 page and that the browser logged no
console error (no script error, no failed request).  It is skipped, with the reason, when
``/usr/bin/chromium`` is not installed (``.ci/run`` installs it with
``apt-get install -y chromium``).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

import mps_analgesia as mps
from mps_analgesia.render import render

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).parent.parent

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="/usr/bin/chromium is not installed (apt-get install -y chromium); "
    "the headless print-to-PDF check needs it",
)

# A4 is 210 mm × 297 mm = 595.28 pt × 841.89 pt.
_A4_PT = (595.28, 841.89)
_CONSOLE_ERROR = re.compile(r"Uncaught|:CONSOLE\(\d+\)\].*(?i:error)|net::ERR_|ERROR:CONSOLE")


def _print_to_pdf(page: Path, tmp_path: Path) -> tuple[bytes, str]:
    """Print ``page`` to PDF with headless chromium; return the PDF bytes and the stderr log."""
    pdf = tmp_path / "out.pdf"
    cmd = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--no-pdf-header-footer",
        "--enable-logging=stderr",
        "--v=0",
        f"--print-to-pdf={pdf}",
        page.as_uri(),
    ]
    proc = subprocess.run(cmd, capture_output=True, timeout=120, check=False)
    log = proc.stderr.decode("utf-8", "replace")
    assert pdf.exists(), f"chromium wrote no PDF (exit {proc.returncode}):\n{log[-3000:]}"
    return pdf.read_bytes(), log


def _pages(pdf: bytes) -> list[tuple[float, float]]:
    """The (width, height) in points of each page of ``pdf`` (from its /MediaBox entries)."""
    count = len(re.findall(rb"/Type\s*/Page(?!s)", pdf))
    boxes = re.findall(
        rb"/MediaBox\s*\[\s*0\s+0\s+([\d.]+)\s+([\d.]+)\s*\]", pdf
    )  # one per page, or one inherited from /Pages
    sizes = [(float(w), float(h)) for w, h in boxes]
    return sizes[:1] * count if len(sizes) < count else sizes[:count]


def _console_errors(log: str) -> list[str]:
    return [line for line in log.splitlines() if _CONSOLE_ERROR.search(line)]


class TestBrowser:
    """A real browser prints the HTML summary cleanly."""

    def test_report_prints_to_a4_pages_without_console_errors(self, tmp_path: Path) -> None:
        """The multimodal report prints to one or more A4 pages with no console error."""
        case = mps.load_case(ROOT / "examples" / "mps-multimodal.toml")
        report = mps.validate(case.regimen, case.patient)
        page = tmp_path / "report.html"
        page.write_text(render(report, "html"), encoding="utf-8")
        pdf, log = _print_to_pdf(page, tmp_path)
        assert pdf.startswith(b"%PDF-")
        pages = _pages(pdf)
        assert len(pages) >= 1
        for width, height in pages:
            assert abs(width - _A4_PT[0]) < 2
            assert abs(height - _A4_PT[1]) < 2
        assert _console_errors(log) == []

    def test_console_errors_are_detected(self, tmp_path: Path) -> None:
        """The log scan does see a console error (so the check above can fail)."""
        page = tmp_path / "bad.html"
        page.write_text(
            '<!DOCTYPE html><html lang="en"><body><p>x</p>'
            "<script>throw new Error('deliberate')</script></body></html>",
            encoding="utf-8",
        )
        _, log = _print_to_pdf(page, tmp_path)
        assert _console_errors(log), log[-3000:]
