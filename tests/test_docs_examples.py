"""The docs pages stay true: their python blocks run as written, in order, in one namespace per page; a text
block right after a python block is exactly what that block prints; every test function a page defines runs on
each of its parametrized cases; and the clause table lists every clause of the contract suite."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

from sparse_bench.testing import MOE_LAYER_CLAUSES, ROUTER_CLAUSES

DOCS = Path(__file__).resolve().parent.parent / "docs"
PAGES = ["checking-your-router.md"]
FENCED_BLOCK = re.compile(r"^```(\w+)\n(.*?)^```$", re.S | re.M)


def run_page(page: str) -> dict:
    """Run the page's python blocks; check each printed output against the text block after it."""
    blocks = FENCED_BLOCK.findall((DOCS / page).read_text())
    namespace = {"__name__": f"docs.{page}"}
    python_blocks = 0
    for i, (language, code) in enumerate(blocks):
        if language != "python":
            continue
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(code, f"{page}, block {i}", "exec"), namespace)
        python_blocks += 1
        if i + 1 < len(blocks) and blocks[i + 1][0] == "text":
            assert printed.getvalue() == blocks[i + 1][1], f"{page}, block {i} prints something else"
    assert python_blocks, f"{page} has no python block"
    return namespace


@pytest.mark.parametrize("page", PAGES)
def test_page_examples_run(page):
    namespace = run_page(page)
    tests = [value for name, value in namespace.items() if name.startswith("test_") and callable(value)]
    for test in tests:
        marks = [mark for mark in getattr(test, "pytestmark", []) if mark.name == "parametrize"]
        assert len(marks) <= 1, f"{test.__name__}: one parametrize mark expected"
        cases = marks[0].args[1] if marks else [()]
        assert cases, f"{test.__name__} has no cases"
        for case in cases:
            test(*case)


def test_clause_table_lists_every_clause():
    text = (DOCS / "checking-your-router.md").read_text()
    listed = re.findall(r"^\| `(check_\w+)` \|", text, re.M)
    assert listed == [check.__name__ for check in ROUTER_CLAUSES + MOE_LAYER_CLAUSES]
