"""The report builds from a fixed results fixture; its HTML is checked structurally."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser

import pytest

from report_fixture import FIXTURE_CHECKS, write_results_fixture
from sparse_bench.report import ReportInputError, build_report, load_inputs
from sparse_bench.results import open_store
from sparse_bench.results.provenance import git_state

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class PageParser(HTMLParser):
    def __init__(self):
        super().__init__()
        self.rows, self.images, self.urls, self.statuses = [], [], [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "tr" and "data-check" in attrs:
            self.rows.append(attrs["data-check"])
            self.statuses.append(attrs.get("class", ""))
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        for key in ("src", "href"):
            if key in attrs and tag != "img":
                self.urls.append(attrs[key])


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    results = write_results_fixture(root / "results", commit=git_state()[0])
    path = build_report(results, root / "out")
    html = path.read_text()
    parser = PageParser()
    parser.feed(html)
    return html, parser


def test_every_check_has_a_row(built):
    _, page = built
    expected = set(FIXTURE_CHECKS)  # the run's catalogue
    assert set(page.rows) == expected and len(page.rows) == len(expected)


def test_failures_come_first_then_missing(built):
    _, page = built
    order = {"row-fail": 0, "row-missing": 1, "row-stale": 2, "row-pass": 3}
    ranks = [order[s] for s in page.statuses]
    assert ranks == sorted(ranks) and page.statuses[0] == "row-fail"


def test_every_figure_is_an_embedded_png(built):
    html, page = built
    assert len(page.images) == 2  # the fixture check's figure and the speed chart
    for src in page.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(PNG_MAGIC)


def test_no_external_urls(built):
    html, page = built
    assert page.urls == []
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "@import" not in html


def test_content_is_escaped_and_sections_present(built):
    html, _ = built
    assert "<script>alert('x')</script>" not in html and "&lt;script&gt;" in html
    for section in ('id="verdict-table"', 'id="speed-table"', 'id="provenance-table"', "fixture table"):
        assert section in html
    assert "stale" in html and "come from another commit" in html
    assert "99.0% of 100" in html  # audit pass rate
    assert "1/1" in html  # the planted control was caught
    assert "1.12" in html and ">1.5<" not in html  # newest ratio-table record only
    assert "R yes, hf yes, memory yes" in html
    assert "R NO (grouped floor), hf NO (grouped floor; within noise)" in html  # what stands in a miss's way
    assert "1.6 [1.5, 1.7]" in html and "1.25 [1.1, 1.6]" in html  # R and the speedup with their intervals


def test_speed_targets_are_summarised_from_records_that_carry_them(built):
    html, _ = built
    table = html[html.index('id="target-table"'):]
    table = table[:table.index("</table>")]
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", table)
    # only the forward+backward record carries needed_R (the forward one predates it): two rows, both missed,
    # the HF verdict within noise (its speedup's interval holds 1.5)
    assert cells == ["forward_backward", "R &lt;= 1.3", "0/1", "0", "1", "0", "0",
                     "forward_backward", "vs HF block (1.5x where HF R &gt;= 1.7, else 1x)", "0/1", "0", "1", "0",
                     "1"]


def test_missing_sections_say_which_command_fills_them(built):
    html, _ = built
    assert "torchrun --nproc_per_node=2 -m sparse_bench.distributed.bench" in html


def test_bad_results_directories(tmp_path):
    with pytest.raises(ReportInputError, match="does not exist"):
        load_inputs(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReportInputError, match="no check or benchmark results"):
        load_inputs(tmp_path / "empty")
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "results.sqlite").write_bytes(b"torn" * 1000)
    with pytest.raises(ReportInputError, match=r"corrupt.*results.sqlite is not a sparse-bench SQLite database"):
        load_inputs(tmp_path / "corrupt")
    (tmp_path / "legacy").mkdir()
    (tmp_path / "legacy" / "checks.jsonl").write_text('{"name": "a", "verdict": "pass"}\n{"name": "torn", "verd')
    with pytest.raises(ReportInputError, match=r"checks.jsonl, line 2"):
        load_inputs(tmp_path / "legacy")


@pytest.mark.parametrize("kind,record,problem", [
    ("check", {"name": "x"}, "field 'verdict' must be a str"),
    ("check", {"name": "x", "verdict": "ok"}, "verdict must be one of"),
    ("check", {"name": "x", "verdict": "pass", "details": {"figure": {"series": [{"x": [1]}]}}},
     "lists x and y of one length"),
    ("bench", {"name": "r"}, "field 'kind' must be a str"),
    ("bench", {"kind": "moe_ratio_table", "name": "r", "point": 5}, "grid point as an object"),
])
def test_records_of_the_wrong_shape_are_skipped_and_named(tmp_path, kind, record, problem):
    """Records the report would crash on (a KeyError deep in the build) are left out and listed with the
    reason; the rest of the report still builds."""
    results = write_results_fixture(tmp_path / "results", commit=None)
    with open_store(results) as store:
        store.add(kind, [record], store.runs()[-1].id)
    inputs = load_inputs(results)
    (skipped,) = inputs.skipped
    assert skipped.startswith(f"{kind} row") and problem in skipped and f"({record['name']})" in skipped
    assert set(inputs.checks) == set(FIXTURE_CHECKS)
    build_report(results, tmp_path / "out")
