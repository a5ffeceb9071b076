"""The plots (logsense/plot.py): real PNGs with something drawn in them."""

from __future__ import annotations

import warnings

import matplotlib
import pytest
from conftest import FIXTURES

import logsense

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def frames():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ev = logsense.events(FIXTURES / "formats", tz="UTC", year=2024)
    return ev, logsense.incidents(ev)


def drawn(fig, path):
    """Write the figure as PNG and read it back: a picture, not an empty canvas."""
    import matplotlib.image

    fig.savefig(path, dpi=60)
    assert path.stat().st_size > 5000
    pixels = matplotlib.image.imread(path)
    assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels.shape[1] > 100
    assert pixels[..., :3].std() > 0.05  # not blank
    return pixels


def test_timeline_is_a_png_of_events_and_incidents(frames, tmp_path):
    from matplotlib.figure import Figure

    ev, inc = frames
    fig = logsense.plot.timeline(ev, inc)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["web01", "(host)"]
    assert len(ax.collections[0].get_offsets()) == len(ev)  # one dot per event
    assert len(ax.patches) >= len(inc)  # the shaded incidents
    drawn(fig, tmp_path / "timeline.png")


def test_timeline_colours_events_by_category(frames):
    from matplotlib.colors import to_hex

    from logsense.report import CATEGORY_COLOURS

    ev, _ = frames
    colours = {to_hex(c) for c in logsense.plot.timeline(ev).axes[0].collections[0].get_facecolors()}
    assert colours == {CATEGORY_COLOURS[c] for c in ev["category"].astype(str)}


def test_heatmap_is_a_png_of_the_cooccurrence(frames, tmp_path):
    ev, _ = frames
    co = logsense.cooccurrence(ev, by="category", window="1h")
    fig = logsense.plot.heatmap(co)
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert labels == sorted(set(co["a"]) | set(co["b"]))
    drawn(fig, tmp_path / "heatmap.png")


def test_plots_of_nothing_say_so(frames):
    ev, _ = frames
    empty = ev.iloc[:0]
    assert "no events" in [t.get_text() for t in logsense.plot.timeline(empty).axes[0].texts]
    cooc = logsense.cooccurrence(empty)
    assert "no co-occurring pairs" in [t.get_text() for t in logsense.plot.heatmap(cooc).axes[0].texts]


def test_plots_draw_on_a_given_axes(frames):
    from matplotlib.figure import Figure

    ev, inc = frames
    fig = Figure()
    left, right = fig.subplots(1, 2)
    assert logsense.plot.timeline(ev, inc, ax=left) is fig
    assert logsense.plot.heatmap(logsense.cooccurrence(ev, by="category", window="1h"), ax=right) is fig
