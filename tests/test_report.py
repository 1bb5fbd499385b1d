"""The report builds from fixed results fixtures; its HTML is checked structurally."""

from __future__ import annotations

import base64
import dataclasses
import re
from html.parser import HTMLParser

import pytest

from report_fixture import FIXTURE_CHECKS, NO_FIGURE, finding_record, write_clean_fixture, write_results_fixture
from sparse_bench.report import ReportInputError, build_report, load_inputs
from sparse_bench.report.banners import NOISY_MEDIAN_RELATIVE_WIDTH, banners, relative_widths
from sparse_bench.report.build import verdict_rows
from sparse_bench.report.history import sparkline
from sparse_bench.results import open_store
from sparse_bench.results.provenance import git_state

SVG_URI = "data:image/svg+xml;base64,"


class PageParser(HTMLParser):
    """Rows of the verdict table, images, links, ids, banners, and each table's enclosing element."""

    def __init__(self):
        super().__init__()
        self.rows, self.statuses, self.images, self.links, self.sources = [], [], [], [], []
        self.ids, self.banners, self.table_parents, self.stack = set(), [], [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "tr" and "data-check" in attrs:
            self.rows.append(attrs["data-check"])
            self.statuses.append(attrs.get("class", ""))
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        elif "src" in attrs:
            self.sources.append(attrs["src"])
        if "href" in attrs:
            self.links.append(attrs["href"])
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if "banner" in attrs.get("class", "").split():
            self.banners.append(attrs["class"])
        if tag == "table":
            self.table_parents.append((attrs.get("id"), self.stack[-1] if self.stack else None))
        if tag not in ("img", "br", "input", "meta", "wbr", "circle", "polyline"):
            self.stack.append((tag, attrs.get("class", "")))

    def handle_endtag(self, tag):
        while self.stack:
            if self.stack.pop()[0] == tag:
                break


def parse(html: str) -> PageParser:
    parser = PageParser()
    parser.feed(html)
    return parser


def section(html: str, element_id: str) -> str:
    """The HTML from the element with ``element_id`` to the end of its table or article."""
    start = html.index(f'id="{element_id}"')
    end = min(i for i in (html.find("</table>", start), html.find("</article>", start)) if i > 0)
    return html[start:end]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    results = write_results_fixture(root / "results", commit=git_state()[0])
    html = build_report(results, root / "out").read_text()
    return html, parse(html)


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    root = tmp_path_factory.mktemp("clean")
    results = write_clean_fixture(root / "results", commit=git_state()[0])
    html = build_report(results, root / "out").read_text()
    return html, parse(html)


def test_every_check_has_a_row(built):
    _, page = built
    expected = set(FIXTURE_CHECKS)  # the run's catalogue
    assert set(page.rows) == expected and len(page.rows) == len(expected)


def test_failures_come_first_then_missing(built):
    _, page = built
    order = {"row-fail": 0, "row-missing": 1, "row-stale": 2, "row-pass": 3}
    ranks = [order[s] for s in page.statuses]
    assert ranks == sorted(ranks) and page.statuses[0] == "row-fail"


def test_every_check_shows_a_figure_or_the_reason_for_none(built):
    html, _ = built
    articles = re.findall(r'<article class="check [^"]*" id="([^"]+)">(.*?)</article>', html, re.S)
    assert len(articles) == len(FIXTURE_CHECKS)
    by_name = {re.sub(r"<[^>]+>", "", re.search(r"<code>(.*?)</code>", body, re.S).group(1)): body
               for _, body in articles}
    assert set(by_name) == {FIXTURE_CHECKS[0], FIXTURE_CHECKS[1], "fixture_escaping &lt;b&gt;&amp;"}
    assert "<img" in by_name["fixture_collision_law"]
    assert f"No figure: {NO_FIGURE}" in by_name["fixture_failing_check"]
    assert "No figure (the check states no reason)" in by_name["fixture_escaping &lt;b&gt;&amp;"]
    verdicts = section(html, "verdict-table")
    assert "1 figure" in verdicts and "none: why" in verdicts and "none, no reason stated" in verdicts


def test_every_figure_is_an_embedded_svg(built):
    _, page = built
    assert len(page.images) == 2  # the fixture check's figure and the speed chart
    svgs = []
    for src in page.images:
        assert src.startswith(SVG_URI)
        svg = base64.b64decode(src[len(SVG_URI):]).decode("utf-8")
        assert svg.lstrip().startswith("<?xml") and "<svg" in svg and "</svg>" in svg
        svgs.append(svg)
    check_svg, speed_svg = svgs
    assert "collision probability vs angle" in check_svg  # titles stay text (searchable, never cropped)
    for text in ("forward + backward", "forward", "GEMM floor, R = 1", "ours (95% interval)", "hf_mixtral"):
        assert text in speed_svg


def test_no_external_urls_and_every_link_lands_on_the_page(built):
    html, page = built
    assert page.sources == []  # no script, frame or style loaded from anywhere
    assert all(link.startswith("#") and link[1:] in page.ids for link in page.links), page.links
    assert not re.search(r"https?://|@import|url\(", html)


def test_every_table_scrolls_in_its_own_box(built):
    _, page = built
    assert page.table_parents and all(parent == ("div", "scroll") for _, parent in page.table_parents), \
        page.table_parents


def test_units_beside_predicted_and_measured(built):
    html, _ = built
    verdicts = section(html, "verdict-table")
    assert "0.51 [0.48, 0.54] probability" in verdicts and "0.5 probability" in verdicts
    assert "0.9 [0.88, 0.92] probability" in verdicts  # the failing check


def test_banners_for_a_contended_noisy_run_with_failures_and_stale_results(built):
    html, page = built
    assert page.banners[0] == "banner error"  # errors first
    head = html[:html.index('id="verdicts"')]
    for title in ("1 check(s) failed", "Contended benchmark run", "Noisy benchmark run",
                  "Results from another commit than the working tree"):
        assert title in head
    assert "do not compare with other runs" in head and "<code>sparse-bench run --only bench</code>" in head
    assert f"above {100 * NOISY_MEDIAN_RELATIVE_WIDTH:.0f}%" in head


def test_no_banner_and_no_findings_for_a_clean_store(clean):
    html, page = clean
    assert page.banners == [] and 'class="banner' not in html
    assert "findings-table" not in html and "Findings" not in html


def test_banners_for_skipped_rows_and_a_dirty_tree(tmp_path):
    results = write_clean_fixture(tmp_path / "results", commit=git_state()[0])
    with open_store(results) as store:
        store.add("check", [{"name": "broken", "verdict": "maybe"}], store.runs()[-1].id)
    inputs = load_inputs(results)
    head = git_state()[0]
    rows = verdict_rows(inputs, inputs.catalogue, head)
    assert [b.title for b in banners(inputs, rows, head)] == ["1 row(s) of the store could not be read"]
    inputs.run = dataclasses.replace(inputs.run, dirty=True)
    titles = [b.title for b in banners(inputs, rows, head)]
    assert titles[-1] == f"Run {inputs.run.id} was made from a tree with uncommitted changes"


def test_noise_is_the_median_relative_interval_width():
    records = [{"R": 2.0, "R_interval": {"low": 1.9, "high": 2.1}},  # 10%
               {"kind": "component_ratio", "ratio": 1.0, "interval": {"low": 0.5, "high": 1.5}},  # 100%
               {"R": 1.0}, {"R": 1.0, "R_interval": {"low": 0.9}}]  # no interval, half an interval: not counted
    assert relative_widths(records) == pytest.approx([0.1, 1.0])


def test_findings_are_shown_at_the_top(built):
    html, _ = built
    findings = section(html, "findings-table")
    assert html.index('id="findings-table"') < html.index('id="verdict-table"')
    assert "not reproduced" in findings and "the layer is twice as fast" in findings
    assert "1.4 [1.3, 1.5] speedup" in findings and "speedup: 2" in findings
    card = section(html, "finding-fixture_finding")
    assert "Read as:</b> speedup over the dense layer at equal FLOPs" in card and "1/64 of the paper" in card


def test_each_setting_of_a_finding_is_its_own_row(tmp_path):
    """A finding measured on two targets gives two rows, each named with its settings (not the last one only)."""
    results = write_clean_fixture(tmp_path / "results", commit=git_state()[0])
    with open_store(results) as store:
        base = finding_record(None)
        store.add("finding", [dict(base, params={"target": "cube"}, verdict="reproduced"),
                              dict(base, params={"target": "poly"})], store.runs()[-1].id)
    inputs = load_inputs(results)
    assert sorted(inputs.findings) == ["fixture_finding (target=cube)", "fixture_finding (target=poly)"]
    assert [inputs.findings[k]["verdict"] for k in sorted(inputs.findings)] == ["reproduced", "not reproduced"]


def test_a_paper_scale_finding_is_not_hidden_by_a_newer_quick_one(tmp_path):
    """A paper-profile record stays the one shown when a quick run of the same finding comes after it; a newer
    paper-profile record replaces it; the banner names findings shown below their source's scale."""
    results = write_clean_fixture(tmp_path / "results", commit=git_state()[0])
    base = finding_record(None)
    paper = dict(base, profile="paper", scale_fraction=1.0, scale="paper: the paper's FLOPs", verdict="reproduced")
    with open_store(results) as store:
        run = store.runs()[-1].id
        store.add("finding", [paper], run)
        store.add("finding", [dict(base, measured=9.0, ci_low=8.0, ci_high=10.0)], run)
    inputs = load_inputs(results)
    assert inputs.findings["fixture_finding"]["profile"] == "paper"
    html = build_report(results, tmp_path / "out").read_text()
    table = section(html, "findings-table")
    assert "paper: the source&#39;s scale" in table and "below their source" not in html
    with open_store(results) as store:
        store.add("finding", [dict(paper, measured=1.1, ci_low=1.0, ci_high=1.2)], store.runs()[-1].id)
    assert load_inputs(results).findings["fixture_finding"]["measured"] == 1.1


def test_findings_below_the_source_scale_are_flagged(built):
    html, _ = built
    assert "quick: 1/64 of the source&#39;s scale" in section(html, "findings-table")
    assert "1 finding(s) measured below their source&#39;s scale" in html


def test_tables_are_sortable_and_filterable_by_an_inline_script(built):
    html, _ = built
    for table in ("verdict-table", "speed-table"):
        assert re.search(rf'<table id="{table}" class="sortable filterable"', html)
    script = html[html.rindex("<script>"):]
    assert "table.sortable" in script and "aria-sort" in script and 'input.type = "search"' in script


def test_hidden_columns_are_in_the_table(built):
    html, _ = built
    header = section(html, "verdict-table").split("</thead>")[0]
    assert "<th>audit</th>" in header and "<th>seed · profile · time</th>" in header


def test_provenance_names_the_machine_the_versions_and_the_run(built):
    html, _ = built
    for table, expected in (("provenance-machine", ("CPU model", "Fixture CPU", "16.0 GiB", "torch threads")),
                            ("provenance-versions", ("python", "3.fixture", "scikit-learn", "not recorded")),
                            ("provenance-run", ("sparse-bench run --profile quick", "(clean)", "UTC"))):
        text = section(html, table)
        assert all(item in text for item in expected), (table, expected)
    assert section(html, "runs-table").split("<tbody>")[1].count("<tr>") == 2  # both runs of the store


def test_history_shows_each_run_and_a_sparkline(built):
    html, _ = built
    checks = section(html, "check-history")
    assert checks.count("<th>run ") == 2
    row = checks[checks.index("fixture_collision_law"):]
    row = row[:row.index("</tr>")]
    assert row.count("<circle") == 2 and "0.47" in row and "0.51" in row
    speed = section(html, "speed-history")
    assert "1.5" in speed and "1.6 [1.5, 1.7]" in speed and "contended" in speed


def test_sparkline_marks_each_verdict_and_skips_missing_values():
    svg = str(sparkline([1.0, None, 3.0, "nan"], ["pass", None, "fail", "pass"], "a <label>"))
    assert svg.count("<circle") == 2 and "#0a7a3d" in svg and "#b3261e" in svg and "&lt;label&gt;" in svg
    assert str(sparkline([None], [None], "empty")) == ""


def test_content_is_escaped_and_sections_present(built):
    html, _ = built
    assert "<script>alert('x')</script>" not in html and "&lt;script&gt;" in html
    for element in ('id="verdict-table"', 'id="speed-table"', 'id="provenance-run"', "fixture table"):
        assert element in html
    assert "stale" in html and "come from 0000000000000000000000000000000000000000" in html
    assert "99.0% of 100" in html  # audit pass rate
    assert "1/1" in html  # the planted control was caught
    speed = section(html, "speed-table")
    assert "1.12" in speed and ">1.5<" not in speed  # newest ratio-table record only
    assert "R yes, hf yes, memory yes" in speed
    assert "R NO (grouped floor), hf NO (grouped floor; within noise)" in speed  # what stands in a miss's way
    assert "1.6 [1.5, 1.7]" in speed and "1.25 [1.1, 1.6]" in speed  # R and the speedup with their intervals
    assert "1.16 on 2 threads (contended)" in speed


def test_speed_targets_are_summarised_from_records_that_carry_them(built):
    html, _ = built
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", section(html, "target-table"))
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
    ("check", {"name": "x", "verdict": "pass", "details": {"no_figure": 3}}, "no_figure must be a string"),
    ("finding", {"name": "f", "verdict": "pass"}, "verdict must be one of"),
    ("bench", {"name": "r"}, "field 'kind' must be a str"),
    ("bench", {"kind": "moe_ratio_table", "name": "r", "point": 5}, "grid point as an object"),
])
def test_records_of_the_wrong_shape_are_skipped_and_named(tmp_path, kind, record, problem):
    """Records the report would crash on (a KeyError deep in the build) are left out and listed with the
    reason; the rest of the report still builds, and says so at the top."""
    results = write_results_fixture(tmp_path / "results", commit=None)
    with open_store(results) as store:
        store.add(kind, [record], store.runs()[-1].id)
    inputs = load_inputs(results)
    (skipped,) = inputs.skipped
    assert skipped.startswith(f"{kind} row") and problem in skipped and f"({record['name']})" in skipped
    assert set(inputs.checks) == set(FIXTURE_CHECKS)
    html = build_report(results, tmp_path / "out").read_text()
    assert "1 row(s) of the store could not be read" in html
