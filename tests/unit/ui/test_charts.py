"""The SVG charts, the reason redaction and the difference colours, without a server."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from dcmtier.ui import charts
from dcmtier.ui.charts import Bars, Series
from dcmtier.ui.difference import colour
from dcmtier.ui.queries import redact, uid_order


def test_linear_ticks_are_round_and_cover_the_range() -> None:
    assert charts._linear_ticks(0.0, 9.3) == [0, 2, 4, 6, 8, 10]
    assert charts._linear_ticks(48.5, 51.2) == [48, 49, 50, 51, 52]


def test_log_ticks_run_from_below_the_smallest_to_above_the_largest_ratio() -> None:
    assert charts._log_ticks(2.7, 994.0) == [2, 5, 10, 20, 50, 100, 200, 500, 1000]


def test_an_xy_chart_draws_each_series_and_names_its_points() -> None:
    svg = charts.xy_chart(
        [Series("j2k", [(5.0, 64.0), (20.0, 50.0), (100.0, math.inf)], "#000",
                labels=["j2k-r5", "j2k-r20", "j2k-lossless"]),
         Series("survey", [(5.0, 64.3), (19.7, 46.4)], "#777", dashed=True)],
        title="t", x_label="x", y_label="y", log_x=True,
    )  # fmt: skip
    assert svg.count("<polyline") == 2 and 'stroke-dasharray="5 4"' in svg
    assert "j2k-r20" in svg and "j2k-lossless" not in svg  # infinite PSNR is left off
    assert svg.startswith("<svg") and svg.endswith("</svg>") and "http" not in svg


def test_an_empty_chart_says_so() -> None:
    assert "nothing recorded yet" in charts.xy_chart([], title="t", x_label="x", y_label="y")
    assert "nothing recorded yet" in charts.bar_chart([], [], title="t", value_text=str)


@pytest.mark.parametrize("stacked", [False, True], ids=["grouped", "stacked"])
def test_bar_lengths_are_proportional_to_the_values(stacked: bool) -> None:
    svg = charts.bar_chart(["a", "b"], [Bars("n", [10.0, 40.0], "#000")], title="t",
                           value_text=str, stacked=stacked)  # fmt: skip
    widths = [float(w) for w in re.findall(r'<rect x="[\d.]+" y="[\d.]+" width="([\d.]+)"', svg)]
    assert widths[1] == pytest.approx(4 * widths[0], rel=0.01)


def test_redact_hides_paths_and_urls_but_keeps_counts_and_words() -> None:
    reason = "/landing/DOE_JANE/CT1.dcm: 7/10 frames; see s3://bucket/DOE/x.dcm (Rows 0)"
    assert redact(reason) == "[file]: 7/10 frames; see [file] (Rows 0)"


def test_uids_sort_by_their_numeric_parts() -> None:
    assert sorted(["1.2.10", "1.2.9", "1.2.100"], key=uid_order) == ["1.2.9", "1.2.10", "1.2.100"]


def test_the_difference_colours_run_blue_white_red() -> None:
    rgb = colour(np.array([[-8.0, 0.0, 8.0, 4.0]]), 8.0)
    assert rgb[0].tolist() == [[0, 0, 255], [255, 255, 255], [255, 0, 0], [255, 127, 127]]
