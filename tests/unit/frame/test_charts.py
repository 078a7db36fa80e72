"""Live charts: what they draw, what they refuse, and how they show progress outside a notebook."""

from __future__ import annotations

import pytest

from labkit.charts import LiveChart

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_a_chart_draws_its_series_as_png() -> None:
    chart = LiveChart("Traffic per version", ["v1", "v2"], ylabel="requests/s")
    for second in range(5):
        chart.add(second, v1=10 - second, v2=second)
    image = chart.png()
    assert image.startswith(PNG_SIGNATURE) and len(image) > 5_000
    assert chart.series["v2"].ys == [0, 1, 2, 3, 4]


def test_points_for_an_unknown_series_are_refused() -> None:
    chart = LiveChart("Replicas", ["replicas"])
    with pytest.raises(ValueError, match=r"no series named \['replica'\]"):
        chart.add(0, replica=1)


def test_a_stacked_chart_needs_shared_x_values() -> None:
    chart = LiveChart("Split", ["v1", "v2"], stacked=True)
    chart.add(0, v1=1, v2=1)
    chart.add(1, v1=1)
    with pytest.raises(ValueError, match="same x values"):
        chart.png()


def test_outside_ipython_each_redraw_is_a_summary_line(capsys: pytest.CaptureFixture[str]) -> None:
    chart = LiveChart("Stock sold and money taken", ["sold", "charged"])
    chart.add(0, sold=1, charged=99)
    chart.add(1, sold=3, charged=297)  # within the redraw interval: not drawn yet
    chart.close()
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "Stock sold and money taken: sold=1, charged=99",
        "Stock sold and money taken: sold=3, charged=297",
    ]
