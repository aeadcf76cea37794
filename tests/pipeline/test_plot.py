"""`plot`: a PNG with ink in every panel, an SVG whose text names the symbol, gaps left as
gaps, a clear error without data, and the install hint without matplotlib."""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET

import pytest

pytest.importorskip("matplotlib", reason="the plot extra is not installed: pip install '.[plot]'")

from PIL import Image  # noqa: E402 - matplotlib brings Pillow

from stockpipe import calendars  # noqa: E402
from stockpipe.errors import ConfigError, ExitCode, NoDataError, UsageError  # noqa: E402
from stockpipe.pipeline import plot as plotting  # noqa: E402
from stockpipe.storage import reads  # noqa: E402
from stockpipe.pipeline.reading import open_reader  # noqa: E402


def panels(image: Image.Image) -> dict[str, list[int]]:
    return json.loads(image.info["Description"].removeprefix("panels "))


def coloured(image: Image.Image) -> int:
    """Pixels with a clear hue (candles, lines, bars), not the white, black or grey of the frame."""
    data = image.convert("RGB").convert("HSV").tobytes()
    return sum(1 for s, v in zip(data[1::3], data[2::3]) if s > 60 and v > 40)


def test_png_has_several_colours_and_ink_in_every_panel(demo_warehouse, tmp_path):
    out = tmp_path / "aapl.png"
    result = plotting.plot(demo_warehouse, "AAPL", out)
    assert result.path == out and result.details["bars"] > 200
    image = Image.open(out)
    assert image.size == (1100, 800)
    colours = image.convert("RGB").quantize(colors=64).getcolors()
    assert len([c for c in colours if c[0] > 50]) >= 8  # white, grid, candles up/down, bands, lines...
    boxes = panels(image)
    assert list(boxes) == ["price", "volume", "rsi", "macd"]
    for name, (left, top, right, bottom) in boxes.items():
        inside = image.crop((left + 3, top + 3, right - 3, bottom - 3))
        assert coloured(inside) > 300, f"no ink in the {name} panel"
    tops = [box[1] for box in boxes.values()]
    assert tops == sorted(tops)  # stacked top to bottom, none drawn over another


def test_svg_text_names_the_symbol_provider_and_adjustment(demo_warehouse, tmp_path):
    out = tmp_path / "msft.svg"
    plotting.plot(demo_warehouse, "MSFT", out, adjusted=True, style="line")
    root = ET.parse(out).getroot()
    text = " ".join("".join(node.itertext()) for node in root.iter("{http://www.w3.org/2000/svg}text"))
    assert "MSFT" in text and "demo (synthetic data)" in text and "adjusted for splits and dividends" in text
    assert "RSI 14" in text and "MACD" in text


def test_splits_and_dividends_are_marked(demo_warehouse, tmp_path):
    out = tmp_path / "aapl.svg"
    result = plotting.plot(demo_warehouse, "AAPL", out)
    root = ET.parse(out).getroot()
    labels = ["".join(node.itertext()) for node in root.iter("{http://www.w3.org/2000/svg}text")]
    with open_reader(demo_warehouse).connect() as conn:
        actions = reads.actions(conn, "AAPL", start=result.details["start"])
    assert actions, "the demo provider pays a dividend every 91 days"
    marked = [label for label in labels if label.startswith(("D ", "S "))]
    assert marked == [f"D {a['value']:g}" if a["kind"] == "dividend" else f"S {a['value']:g}:1" for a in actions]


def test_the_axis_has_a_slot_per_session_and_a_missing_bar_stays_a_gap(demo_warehouse):
    with open_reader(demo_warehouse).connect() as conn:
        held = reads.bars(conn, "AAPL")
    frame = plotting._with_overlays("AAPL", held)
    frame = frame[frame["date"] >= frame["date"].iloc[-60]]
    missing = frame["date"].iloc[30]
    chart = plotting._chart(demo_warehouse, "AAPL", frame.drop(frame.index[30]), [], False, "candle")
    assert chart.sessions == calendars.sessions_between(frame["date"].iloc[0], frame["date"].iloc[-1], "XNYS")
    assert all(day.weekday() < 5 for day in chart.sessions)  # no weekend slots
    slot = chart.sessions.index(missing)
    assert all(chart.series[name][slot] != chart.series[name][slot] for name in ("close", "sma_20", "rsi_14"))  # NaN
    assert chart.series["close"][slot - 1] == chart.series["close"][slot - 1]  # its neighbours are drawn
    assert chart.notes == ("1 session(s) without a bar left empty",)


def test_no_data_is_a_clear_error(demo_warehouse, tmp_path):
    with pytest.raises(NoDataError, match="no bars for ZZZ.*stockpipe run --symbol ZZZ"):
        plotting.plot(demo_warehouse, "ZZZ", tmp_path / "z.png")
    with pytest.raises(NoDataError, match="from 2030-01-01 on"):
        plotting.plot(demo_warehouse, "AAPL", tmp_path / "z.png", start=__import__("datetime").date(2030, 1, 1))
    assert not (tmp_path / "z.png").exists()


@pytest.mark.parametrize("name", ["chart.jpg", "missing-dir/chart.png"])
def test_an_output_that_cannot_be_a_chart_is_refused_before_any_work(demo_warehouse, tmp_path, name):
    with pytest.raises(UsageError, match="--out"):
        plotting.plot(demo_warehouse, "AAPL", tmp_path / name)


def test_without_matplotlib_it_says_how_to_install_it(make_cli, monkeypatch, demo_warehouse, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` raises ImportError
    with pytest.raises(ConfigError, match=r"pip install 'stockpipe\[plot\]'"):
        plotting.plot(demo_warehouse, "AAPL", tmp_path / "a.png")
    cli = make_cli(STOCKPIPE_DATA_DIR=str(demo_warehouse.data_dir))
    code, out, err = cli("plot", "AAPL", "--out", "a.png")
    assert code == ExitCode.CONFIG and out == ""
    assert err == ("stockpipe plot: error: plot needs matplotlib: pip install 'stockpipe[plot]' "
                   "(or: pip install matplotlib)\n")


def test_plot_from_the_command_line(make_cli, demo_warehouse, tmp_path):
    cli = make_cli(STOCKPIPE_DATA_DIR=str(demo_warehouse.data_dir))
    code, out, err = cli("plot", "AAPL", "--out", "a.png", "--start", "2026-06-01", "--end", "2026-09-30", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["command"] == "plot" and doc["path"] == "a.png", err
    assert doc["start"] >= "2026-06-01" and doc["end"] <= "2026-09-30" and (tmp_path / "a.png").stat().st_size > 10_000
    code, _, err = cli("plot", "AAPL", "--out", "a.png", "--start", "2026-09-30", "--end", "2026-06-01")
    assert code == ExitCode.USAGE and "--start 2026-09-30 is after --end 2026-06-01" in err
