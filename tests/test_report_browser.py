"""A real browser loads the report: Debian's headless Chromium, no console errors, every image decodes.

Under CI (CI=true) a missing browser is a failure, not a skip: .ci/run installs the `chromium` package.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from report_fixture import write_results_fixture
from sparse_bench.report import build_report
from sparse_bench.report.inputs import current_commit

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--enable-logging=stderr",
    "--v=0",
]
SCREENSHOT = Path("reports") / "browser-test-screenshot.png"


def find_chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed; .ci/run installs it with apt-get (package `chromium`)")
        pytest.skip("chromium is not installed (apt-get install chromium); under CI this test fails instead")
    return path


def run_chromium(binary: str, url: str, *extra: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *extra, url],
            capture_output=True,
            text=True,
            timeout=120,
        )


@pytest.fixture(scope="module")
def page_url(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    results = write_results_fixture(root / "results", commit=current_commit())
    return build_report(results, root / "site").resolve().as_uri()


def test_page_loads_without_errors_and_every_image_decodes(page_url):
    binary = find_chromium()
    proc = run_chromium(binary, page_url, "--virtual-time-budget=10000", "--dump-dom")
    assert proc.returncode == 0, proc.stderr[-2000:]
    match = re.search(r'<body[^>]*data-selfcheck="([^"]*)"', proc.stdout)
    assert match, "the page's self-check did not run (no data-selfcheck on <body>)"
    assert match.group(1) == "ok", f"self-check reported: {match.group(1)}"
    images = re.search(r'data-images="(\d+)"', proc.stdout)
    assert images and int(images.group(1)) == 2
    console = [line for line in proc.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console == [], "console messages: " + "\n".join(console)


def test_screenshot_for_the_record(page_url):
    binary = find_chromium()
    SCREENSHOT.parent.mkdir(exist_ok=True)
    target = SCREENSHOT.resolve()
    proc = run_chromium(binary, page_url, f"--screenshot={target}", "--window-size=1280,1600")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert target.read_bytes().startswith(b"\x89PNG"), "no PNG screenshot written"
