"""The SVG charts are pure functions: points counted, values placed, text escaped."""

import re
from decimal import Decimal

import pytest

from margins import charts


def rects(svg: str) -> list[dict]:
    return [dict(re.findall(r'(\w[\w-]*)="([^"]*)"', m)) for m in re.findall(r"<rect ([^>]*)>", svg)]


def test_columns_draw_one_bar_per_category_and_series_with_heights_to_scale():
    svg = charts.columns(
        categories=["2026-02", "2026-03", "2026-04"],
        series=[charts.Series("Revenue", [90_000_000, 0, 100_000_000], "revenue"),
                charts.Series("Cost", [25_000_000, 28_000_000, 30_000_000], "cost")],
        projected=[False, False, True],
        title="Acme <by month>",
    )
    assert 'data-points="6"' in svg
    bars = rects(svg)
    assert len(bars) == 6
    assert [b["data-value"] for b in bars] == ["90000000", "25000000", "0", "28000000", "100000000", "30000000"]
    assert [b["class"] for b in bars][-2:] == ["pt bar revenue projected", "pt bar cost projected"]
    heights = {b["data-value"]: float(b["height"]) for b in bars}
    assert heights["0"] == 0
    # The axis tops at $100.00 (a round amount): $100 fills the plot, $25 a quarter of it.
    assert heights["100000000"] == pytest.approx(4 * heights["25000000"], abs=0.2)
    assert "Acme &lt;by month&gt;" in svg and "<by month>" not in svg
    assert "$100.00" in svg and "2026-03 · Revenue: $0.00" in svg
    assert "2026-04 · Cost (projected): $30.00" in svg


def test_columns_refuse_a_series_of_the_wrong_length():
    with pytest.raises(ValueError, match="2 values for 3 categories"):
        charts.columns(categories=["a", "b", "c"], series=[charts.Series("x", [1, 2], "cost")], title="t")


def test_columns_thin_the_labels_of_a_long_range_but_keep_every_bar():
    days = [f"04-{day:02d}" for day in range(1, 31)]
    svg = charts.columns(categories=days, series=[charts.Series("Cost", [1] * 30, "cost")], title="t", max_labels=10)
    assert len(rects(svg)) == 30
    labels = re.findall(r'text-anchor="middle">([^<]+)<', svg)
    assert labels == days[::3]


def test_an_empty_chart_still_has_its_axis():
    svg = charts.columns(categories=[], series=[], title="nothing")
    assert 'data-points="0"' in svg and "$0.00" in svg


@pytest.mark.parametrize(
    "value, ceiling",
    [(0, 10_000), (1, 10_000), (99_000_000, 100_000_000), (100_000_001, 200_000_000), (210_000_000, 250_000_000),
     (260_000_000, 500_000_000), (5_000_000_000, 5_000_000_000)],
)
def test_nice_ceiling(value, ceiling):
    assert charts.nice_ceiling(value) == ceiling


def test_sparkline_marks_the_projected_month_and_keeps_undefined_months():
    svg = charts.sparkline([
        charts.SparkValue("2026-02", None),
        charts.SparkValue("2026-03", Decimal("40.0")),
        charts.SparkValue("2026-04", Decimal("10.0")),
        charts.SparkValue("2026-05", Decimal("-5.5"), projected=True),
    ])
    assert 'data-points="4"' in svg
    circles = re.findall(r'<circle class="([^"]+)" cx="([^"]+)" cy="([^"]+)"', svg)
    assert [c[0] for c in circles] == ["pt undefined", "pt", "pt", "pt projected"]
    ys = [float(c[2]) for c in circles]
    assert ys[1] < ys[2] < ys[3]  # higher margin is higher up (smaller y)
    assert 'class="projection"' in svg  # the dashed segment to the projected month
    assert 'class="zero"' in svg  # the range crosses 0 %
    assert "2026-02: no revenue" in svg and "2026-05 (projected): -5.5%" in svg
    # The measured line joins only the defined, measured months.
    assert svg.count(",") - svg.count(", ") >= 2 and re.search(r'<polyline class="line" points="[^ "]+ [^ "]+"', svg)


def test_a_flat_sparkline_is_drawn_mid_height():
    svg = charts.sparkline([charts.SparkValue(p, Decimal(70)) for p in ("a", "b", "c")])
    ys = {float(y) for y in re.findall(r'cy="([^"]+)"', svg)}
    assert ys == {16.0}  # middle of the 32-pixel box
    assert 'class="zero"' not in svg


def test_bars_one_per_item_widths_to_scale():
    svg = charts.bars(items=[("openai/gpt-4o", 20_000_000), ("mini", 10_000_000), ("free", 0)], title="Cost")
    bars = rects(svg)
    assert len(bars) == 3 and 'data-points="3"' in svg
    assert float(bars[0]["width"]) == pytest.approx(2 * float(bars[1]["width"]), abs=0.2)
    assert float(bars[2]["width"]) == 0
    assert "$20.00" in svg and "$0.00" in svg


@pytest.mark.parametrize(
    ("microdollars", "label"),
    [
        (999_990_000, "$999.99"),
        (1_000_000_000, "$1k"),
        (2_500_000_000, "$2.5k"),
        (12_500_000_000, "$12.5k"),
        (1_250_000_000_000, "$1,250k"),
        (1_234_567_891, "$1.235k"),
    ],
)
def test_axis_labels_in_thousands_of_dollars(microdollars, label):
    """Exact on every Python the project supports (Fraction has no format spec before 3.12)."""
    assert charts._axis_label(microdollars) == label


def test_a_chart_of_thousands_of_dollars_has_its_axis_in_thousands():
    svg = charts.columns(categories=["2026-11"], series=[charts.Series("Cost", [3_000_000_000_000], "cost")], title="t")
    assert ">$5,000k</text>" in svg and ">$1,250k</text>" in svg
