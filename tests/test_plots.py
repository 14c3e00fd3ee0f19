"""Plots from fixture run folders: the files are real PNG/PDF, the curves say what they should."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from _report_runs import block, random_predictions, write_run
from PIL import Image

import greval
from greval import plots
from greval.records import Prediction
from greval.report import load_run

SCENES = {
    "urban": block((0.1, 0.3, 0.5, 0.7, 0.9), n=120),
    "natural": block((0.01, 0.1, 0.3, 0.5, 0.7), n=80),
}


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Plots cache the map outlines: keep that out of the user's home folder.
    monkeypatch.setenv("GREVAL_CACHE_DIR", str(tmp_path / "cache"))


def _run(path: Path, n: int = 300, scenes: bool = True, model: str = "model-a", seed: int = 0) -> Path:
    tasks = {"geo": block((0.05, 0.2, 0.4, 0.6, 0.8), n=n, **({"by_scene": SCENES} if scenes else {}))}
    return write_run(path, tasks, info={"model": model}, predictions=random_predictions(n, seed=seed))


def _assert_png(path: Path, size: tuple[int, int]) -> None:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.size == size


def _assert_pdf(path: Path) -> None:
    data = path.read_bytes()
    assert data[:5] == b"%PDF-"
    assert b"%%EOF" in data[-32:]


def test_make_plots_writes_valid_png_and_pdf_into_the_run_folder(tmp_path: Path) -> None:
    run = _run(tmp_path / "run")
    paths = plots.make_plots(run)
    names = sorted(p.name for p in paths)
    assert names == sorted(
        f"{stem}.{ext}"
        for stem in ("accuracy_vs_threshold", "error_cdf", "scene_accuracy", "map")
        for ext in ("png", "pdf")
    )
    assert all(p.parent == run / "plots" for p in paths)
    _assert_png(run / "plots" / "accuracy_vs_threshold.png", (1050, 675))  # 7 x 4.5 in at 150 dpi
    _assert_png(run / "plots" / "error_cdf.png", (1050, 675))
    _assert_png(run / "plots" / "map.png", (1500, 810))
    with Image.open(run / "plots" / "scene_accuracy.png") as image:
        assert image.size[0] == 1125
    for path in paths:
        if path.suffix == ".pdf":
            _assert_pdf(path)


def test_formats_and_out_dir_and_no_scene_plot_without_scenes(tmp_path: Path) -> None:
    run = _run(tmp_path / "run", scenes=False)
    out = tmp_path / "figures"
    paths = plots.make_plots([run], out, formats=("png",))
    assert sorted(p.name for p in paths) == ["accuracy_vs_threshold.png", "error_cdf.png", "map.png"]
    assert all(p.is_file() and p.parent == out for p in paths)
    assert not (run / "plots").exists()


def test_two_runs_share_line_plots_and_get_one_map_each(tmp_path: Path) -> None:
    a = _run(tmp_path / "a", model="org/model A")
    b = _run(tmp_path / "b", model="model_b", seed=1)
    paths = plots.make_plots([a, load_run(b)], tmp_path / "cmp", formats=("png",))
    assert {p.name for p in paths} >= {"map_org_model_A.png", "map_model_b.png", "error_cdf.png"}
    fig = plots.error_cdf_figure([load_run(a), load_run(b)])
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels[0].startswith("org/model A (no usable answer") and labels[1].startswith("model_b (")


def test_error_cdf_tops_out_at_one_minus_failure_share(tmp_path: Path) -> None:
    records = [
        Prediction("a", "geo", "x", 1.0, 1.0, "ok", 10.0),
        Prediction("b", "geo", "x", 1.0, 1.0, "ok", 1000.0),
        Prediction("c", "geo", "x", None, None, "unparsed", None),
        Prediction("d", "geo", "x", None, None, "refusal", None),
        Prediction("e", "geo", None, None, None, "error", None, error="HTTP 500"),  # not scored
    ]
    run = load_run(write_run(tmp_path / "r", {"geo": block((0.0, 0.25, 0.25, 0.5, 0.5))}, {"model": "m"}, records))
    fig = plots.error_cdf_figure([run])
    ax = fig.axes[0]
    curve = ax.lines[0]
    x, y = np.asarray(curve.get_xdata()), np.asarray(curve.get_ydata())
    assert y.max() == pytest.approx(0.5)  # 2 of 4 scored samples ever arrive
    assert y[x < 10].max() == 0 and y[(x >= 10) & (x < 1000)].max() == pytest.approx(0.25)
    ceiling = ax.lines[1]
    assert list(ceiling.get_ydata()) == [0.5, 0.5]
    assert "no usable answer 50.0%: tops at 50.0%" in ax.get_legend().get_texts()[0].get_text()
    assert any("tops out at 1 − its failure share" in t.get_text() for t in fig.texts)


def test_accuracy_figure_marks_the_reported_granularities(tmp_path: Path) -> None:
    narrowed = {k: v for k, v in block((0.05, 0.2, 0.4, 0.6, 0.8)).items() if k != "acc@1km"}
    run = load_run(write_run(tmp_path / "r", {"geo": narrowed}, {"model": "m"}))  # no predictions
    ax = plots.accuracy_figure([run]).axes[0]
    line = ax.lines[0]
    assert list(line.get_xdata()) == [25.0, 200.0, 750.0, 2500.0]
    assert list(line.get_ydata()) == pytest.approx([20.0, 40.0, 60.0, 80.0])
    assert ax.get_xscale() == "log"


def test_map_sample_is_deterministic_and_bounded(tmp_path: Path) -> None:
    run = load_run(_run(tmp_path / "r", n=500))
    first = plots.map_figure(run, max_pairs=50)
    second = plots.map_figure(load_run(run.path), max_pairs=50)
    offsets = [np.asarray(c.get_offsets()) for c in first.axes[0].collections if hasattr(c, "get_sizes")]
    again = [np.asarray(c.get_offsets()) for c in second.axes[0].collections if hasattr(c, "get_sizes")]
    assert sum(len(o) for o in offsets) == 50  # 50 samples, split by error band
    for a, b in zip(offsets, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert "50 of" in first.axes[0].get_title()


def test_map_colours_points_by_error_band_and_draws_lines_only_on_request(tmp_path: Path) -> None:
    from matplotlib.collections import LineCollection

    run = load_run(_run(tmp_path / "r", n=300))
    records = [r for r in run.predictions() if r["status"] != "error"]
    ax = plots.map_figure(run).axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    expected = []
    lower = 0.0
    for upper, name, _ in plots._BANDS:
        n = sum(1 for r in records if r["status"] == "ok" and lower < r["distance_km"] <= upper or
                (lower == 0 and r["status"] == "ok" and r["distance_km"] == 0))  # fmt: skip
        lower = upper
        expected.append(f"{name} ({n:,})")  # empty bands too: every map has the same legend
    failed = sum(1 for r in records if r["status"] != "ok")
    if failed:
        expected.append(f"no usable answer ({failed:,})")
    assert legend == expected
    lines = lambda ax: [c for c in ax.collections if isinstance(c, LineCollection)]  # noqa: E731
    assert len(lines(ax)) == 1  # the country outlines only
    with_lines = plots.map_figure(run, lines=True).axes[0]
    assert len(lines(with_lines)) == 2


def test_accuracy_curve_has_a_band_and_interval_bars(tmp_path: Path) -> None:
    from matplotlib.collections import LineCollection, PolyCollection

    accs = (0.05, 0.2, 0.4, 0.6, 0.8)
    ci = {f"acc@{km}km": [a - 0.02, a + 0.03] for km, a in zip((1, 25, 200, 750, 2500), accs, strict=True)}
    path = write_run(tmp_path / "r", {"geo": block(accs, n=400, ci=ci)}, {"model": "m"}, random_predictions(400))
    ax = plots.accuracy_figure([load_run(path)]).axes[0]
    assert any(isinstance(c, PolyCollection) for c in ax.collections)  # the shaded 95 % band
    bars = [c for c in ax.collections if isinstance(c, LineCollection)]
    assert bars and len(bars[0].get_segments()) == 5  # one interval per granularity
    np.testing.assert_allclose([seg[:, 1] for seg in bars[0].get_segments()], [[100 * a - 2, 100 * a + 3] for a in accs])


def test_two_runs_are_compared_in_one_axis(tmp_path: Path) -> None:
    a, b = load_run(_run(tmp_path / "a", n=100)), load_run(_run(tmp_path / "b", n=100, seed=1))
    fig = plots.comparison_figure([a, b])
    (ax,) = fig.axes
    assert len(ax.patches) == 2 * 5  # two runs x five granularities, side by side
    assert plots.comparison_figure([a]) is None
    paths = plots.make_plots([a, b], tmp_path / "cmp", formats=("png",))
    assert (tmp_path / "cmp" / "accuracy_by_model.png") in paths


def test_segments_across_the_antimeridian_leave_and_reenter() -> None:
    truth = np.array([[179.0, 10.0], [10.0, 0.0]])
    pred = np.array([[-179.0, 12.0], [20.0, 5.0]])
    segments = plots._segments(truth, pred)
    assert len(segments) == 3  # one straight, two pieces for the wrapping pair
    for (x0, _), (x1, _) in segments:
        assert abs(x1 - x0) <= 180
    pieces = sorted(tuple(map(tuple, s)) for s in segments[1:])
    assert pieces == [((-181.0, 10.0), (-179.0, 12.0)), ((179.0, 10.0), (181.0, 12.0))]


def test_map_draws_country_outlines_and_caches_them(tmp_path: Path) -> None:
    from greval import geo

    run = load_run(_run(tmp_path / "r", n=50))
    ax = plots.map_figure(run).axes[0]
    outlines = ax.collections[0]
    assert len(outlines.get_segments()) > 100  # countries, not an empty map
    assert "no country outlines" not in ax.get_title()
    # The second call reads the cached copy; it must hold the same rings.
    again = plots._outlines()
    expected = geo.world_outlines()
    assert len(again) == len(expected)
    np.testing.assert_allclose(again[5], expected[5])


def test_map_without_geo_outlines_still_draws_a_grid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Simulate an install where greval.geo (or its data) is missing.
    monkeypatch.setitem(sys.modules, "greval.geo", None)
    monkeypatch.delattr(greval, "geo", raising=False)
    run = load_run(_run(tmp_path / "r", n=50))
    fig = plots.map_figure(run)
    ax = fig.axes[0]
    assert "no country outlines available" in ax.get_title()
    assert list(ax.get_xticks()) == list(range(-180, 181, 30))
    fig.savefig(tmp_path / "m.png")
    _assert_png(tmp_path / "m.png", (1000, 540))  # default 100 dpi


@pytest.mark.slow
def test_plots_for_a_100k_sample_run_finish(tmp_path: Path) -> None:
    run = _run(tmp_path / "big", n=100_000)
    paths = plots.make_plots(run)
    assert len(paths) == 8 and all(p.stat().st_size > 1000 for p in paths)
    assert "2,000 of" in plots.map_figure(load_run(run)).axes[0].get_title()
