"""A real browser loads the report: Debian's headless Chromium, no console errors, every image decodes, no
horizontal page scroll at 1400 px (wide tables scroll in their own boxes), the first banner visible at the
top.

The page's own self-check script writes what it measured into attributes of <body>, which ``--dump-dom``
returns. Under CI (CI=true) a missing browser is a failure, not a skip: .ci/run installs the `chromium`
package.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from report_fixture import write_clean_fixture, write_results_fixture
from sparse_bench.report import build_report
from sparse_bench.results.provenance import git_state

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--hide-scrollbars",
    "--enable-logging=stderr",
    "--v=0",
]
WIDTH, HEIGHT = 1400, 1000  # the page must fit a 1400 px window without horizontal scrolling
LONG_ROWS = 30  # checks with long names and predictions added to the fixture
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
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--window-size={WIDTH},{HEIGHT}", *extra,
             url],
            capture_output=True,
            text=True,
            timeout=120,
        )


def body_attributes(binary: str, url: str) -> tuple[dict, str]:
    """The attributes the page's self-check wrote on <body> once loaded, and chromium's stderr."""
    proc = run_chromium(binary, url, "--virtual-time-budget=10000", "--dump-dom")
    assert proc.returncode == 0, proc.stderr[-2000:]
    body = re.search(r"<body\s([^>]*)>", proc.stdout)
    assert body, "no <body> in the dumped DOM"
    return dict(re.findall(r'([\w-]+)="([^"]*)"', body.group(1))), proc.stderr


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    """URLs of the report built from the warning fixture with many long rows, and from the clean fixture."""
    root = tmp_path_factory.mktemp("browser")
    head = git_state()[0]
    noisy = write_results_fixture(root / "results", commit=head, long_rows=LONG_ROWS)
    clean = write_clean_fixture(root / "clean", commit=head, long_rows=LONG_ROWS)
    return {name: build_report(results, root / name).resolve().as_uri()
            for name, results in (("noisy", noisy), ("clean", clean))}


@pytest.mark.parametrize("name", ["noisy", "clean"])
def test_page_loads_fits_1400px_and_every_image_decodes(pages, name):
    binary = find_chromium()
    attrs, stderr = body_attributes(binary, pages[name])
    assert attrs.get("data-selfcheck") == "ok", f"self-check reported: {attrs.get('data-selfcheck')}"
    assert int(attrs["data-images"]) == 2
    assert int(attrs["data-inner-width"]) == WIDTH, "the window was not 1400 px wide"
    assert int(attrs["data-scroll-width"]) <= int(attrs["data-inner-width"]), "the page scrolls sideways"
    console = [line for line in stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console == [], "console messages: " + "\n".join(console)


def test_banner_is_visible_at_the_top(pages):
    binary = find_chromium()
    attrs, _ = body_attributes(binary, pages["noisy"])
    top, height, visibility = attrs["data-banner-box"].split(",")
    assert 0 <= float(top) < HEIGHT / 2 and float(height) > 0 and visibility == "visible"
    clean, _ = body_attributes(binary, pages["clean"])
    assert "data-banner-box" not in clean


# Appended to a copy of the page: clicks the verdict table's "check / source" header twice (descending), then
# types a filter, and writes the rows' order and how many stay visible into <body>.
DRIVER = """<script>
window.addEventListener("load", function () {
  var table = document.getElementById("verdict-table"), header = table.tHead.rows[0].cells[1];
  header.click(); header.click();
  var names = Array.prototype.map.call(table.tBodies[0].rows, function (r) { return r.getAttribute("data-check"); });
  var box = table.parentNode.previousElementSibling.querySelector("input");
  box.value = "collision"; box.dispatchEvent(new Event("input"));
  var shown = Array.prototype.filter.call(table.tBodies[0].rows, function (r) { return !r.hidden; }).length;
  document.body.setAttribute("data-sorted", names.join("|"));
  document.body.setAttribute("data-shown", String(shown));
});
</script>"""


def test_tables_sort_and_filter_in_the_browser(pages, tmp_path):
    binary = find_chromium()
    page = Path(pages["noisy"].removeprefix("file://"))
    driven = tmp_path / "driven.html"
    driven.write_text(page.read_text().replace("</body>", DRIVER + "</body>"))
    attrs, _ = body_attributes(binary, driven.as_uri())
    names = attrs["data-sorted"].replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&").split("|")
    assert len(names) == 3 + LONG_ROWS and names == sorted(names, key=str.lower, reverse=True)
    assert attrs["data-shown"] == "1"  # only fixture_collision_law contains "collision"


def test_screenshot_for_the_record(pages):
    binary = find_chromium()
    SCREENSHOT.parent.mkdir(exist_ok=True)
    target = SCREENSHOT.resolve()
    proc = run_chromium(binary, pages["noisy"], f"--screenshot={target}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert target.read_bytes().startswith(b"\x89PNG"), "no PNG screenshot written"
