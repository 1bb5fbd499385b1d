"""Fuzz the results store: runs started with any arguments, records of any shape and content added to any kind.

Oracle: a call either succeeds, and the store then gives back exactly the record's canonical JSON (``encode``),
or it raises a ValueError/TypeError naming the problem (StoreError is a ValueError), and nothing of that call
is stored. Never another exception, never a half-stored batch.
"""

from __future__ import annotations

import json
import math
import tempfile

import numpy as np
import torch
from hypothesis import strategies as st

from fuzzing import CLEAN_ERRORS, fuzz
from sparse_bench.results import KINDS, encode, open_store

PROVENANCE = {"git_commit": None, "dirty": None, "machine": {}, "versions": {}}
FLOATS = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([-0.0, 5e-324, 1.7e308, math.nan])
INTS = st.integers() | st.sampled_from([2**63, -(2**63) - 1, 2**70])
ODD = st.sampled_from([object(), b"bytes", {1, 2}, complex(1, 2), Ellipsis])
SCALARS = (st.none() | st.booleans() | INTS | FLOATS | st.text(max_size=20)
           | st.builds(np.float32, st.floats(width=32)) | st.builds(np.int64, st.integers(-(2**63), 2**63 - 1))
           | st.builds(lambda v: torch.tensor(v), st.lists(st.floats(width=32), max_size=3)))
VALUES = st.recursive(
    SCALARS | ODD,
    lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner)
    | st.dictionaries(st.text(max_size=8) | st.integers(), inner, max_size=4),
    max_leaves=12)
RECORDS = st.dictionaries(st.text(max_size=8), VALUES, max_size=5).flatmap(
    lambda body: st.fixed_dictionaries({"name": st.text(max_size=20) | VALUES}).map(lambda n: {**body, **n}))


def _json_clean(value) -> bool:
    try:
        encode({"name": "x", "value": value})
    except TypeError:
        return False
    return True


def check_start_run(command, profile, seed, extra):
    with tempfile.TemporaryDirectory() as root, open_store(root) as store:
        try:
            run_id = store.start_run(command, profile=profile, seed=seed, extra=extra, provenance=PROVENANCE)
        except CLEAN_ERRORS as error:
            assert str(error), "an error without a message"
            assert store.runs() == []
            return
        (run,) = store.runs()
        assert run.id == run_id and run.command == command and run.profile == profile and run.seed == seed
        assert run.extra == json.loads(encode(extra or {}))


def check_add(kind, batch, run_choice):
    with tempfile.TemporaryDirectory() as root, open_store(root) as store:
        run_id = store.start_run("fuzz", provenance=PROVENANCE)
        target = run_id if run_choice is None else run_choice
        try:
            added = store.add(kind, batch, target)
        except CLEAN_ERRORS as error:
            assert str(error), "an error without a message"
            assert store.read().measurements == []  # nothing of a refused batch is stored
            return
        assert kind in KINDS and target == run_id and added == len(batch)
        stored = store.read(kind)
        assert stored.skipped == []
        assert stored.records == [json.loads(encode(record)) for record in batch]


test_start_run, test_start_run_long = fuzz(
    examples=0.5,
    command=st.text(max_size=30) | VALUES,
    profile=st.none() | st.text(max_size=10) | VALUES,
    seed=st.none() | INTS | VALUES,
    extra=st.none() | st.dictionaries(st.text(max_size=8), VALUES, max_size=3) | VALUES,
)(check_start_run)

test_add, test_add_long = fuzz(
    examples=0.5,
    kind=st.sampled_from(KINDS) | st.text(max_size=10),
    batch=st.lists(RECORDS, max_size=4),
    run_choice=st.none() | INTS,
)(check_add)
