"""The component-ratio runner: every ratio present, computed from its two timings, target verdict consistent;
the report's component table reads the newest record per name. No timing is asserted."""

from __future__ import annotations

import math
import warnings

import pytest

from sparse_bench.bench.components import format_components, run_components
from sparse_bench.report.speed import component_table

NAMES = {"lsh_over_topk", "hash_d1024_over_d256", "lsh_predict_2e16_over_2e8", "dense_width_slope",
         "conv_im2col_over_native", "maxpool_plan_over_native", "avgpool_plan_over_native"}


@pytest.fixture(scope="module")
def records():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # noisy-IQR warnings on very short runs
        return run_components(num_threads=1, min_run_time=0.001)


def test_every_ratio_is_its_two_timings(records):
    assert {r["name"].removeprefix("component/") for r in records} == NAMES
    for r in records:
        assert r["kind"] == "component_ratio" and isinstance(r["target_ok"], bool)
        if "numerator_s" in r:
            assert math.isclose(r["ratio"], r["numerator_s"] / r["denominator_s"], rel_tol=1e-12)
            bound = float(r["target"].removeprefix("<= "))
            interval = r["interval"]  # 9 interleaved rounds: 2nd and 8th smallest per-round ratio
            assert interval["rounds"] == 9 and interval["low"] <= interval["high"]
            assert r["target_ok"] == (r["ratio"] <= bound)
            assert r["within_noise"] == (interval["low"] <= bound <= interval["high"])
    lsh = next(r for r in records if r["name"].endswith("lsh_predict_2e16_over_2e8"))
    assert lsh["nonempty_buckets"][0] < 2**9 < 2**15 < lsh["nonempty_buckets"][-1]  # the sweep spans 2^8 .. 2^16
    assert len(format_components(records).splitlines()) == len(NAMES)


def test_report_component_table_keeps_the_newest(records):
    older = [{**r, "timestamp": 0.0, "ratio": -1.0} for r in records]
    columns, rows = component_table(older + records)
    assert columns[0] == "component ratio" and len(rows) == len(NAMES)
    assert all(row[1] != "-1" for row in rows)
    interval = records[0]["interval"]
    assert rows[0][1].endswith(f"[{interval['low']:.3g}, {interval['high']:.3g}]")
