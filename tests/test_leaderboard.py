"""The static leaderboard: what the build writes, escaping, exports, significance, images."""

from __future__ import annotations

import json
import math
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from leaderboard_fixtures import INJECTIONS, make_images, make_run
from PIL import Image

from greval.compare import mcnemar_p
from greval.leaderboard import _templates_dir, build_site, load_run, script_json, significance
from greval.records import read_predictions

EVIL_MODEL = '<b>evil</b><script>window.__pwned=1</script> & "co"'


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    data = make_images(root / "data", 30)
    return {
        "strong": make_run(
            root / "strong",
            run_id="strong-run",
            model="gpt-4o",
            tasks=("greval-urban", "greval-bench"),
            n=30,
            skill_km=100,
            seed=1,
            data_dir=data,
            plots=True,
            cot=True,
        ),
        "weak": make_run(
            root / "weak",
            run_id="weak-run",
            model="Qwen2.5-VL-7B",
            adapter="transformers",
            kind="open-weights",
            tasks=("greval-urban", "greval-bench", "im2gps3k"),
            n=30,
            skill_km=3000,
            seed=2,
            data_dir=data,
        ),
        "evil": make_run(
            root / "evil",
            run_id="evil-run",
            model=EVIL_MODEL,
            adapter="replay",
            kind="offline",
            n=30,
            skill_km=300,
            seed=3,
            data_dir=data,
            outputs=INJECTIONS,
        ),
    }


@pytest.fixture(scope="module")
def site(runs, tmp_path_factory) -> Path:
    return build_site(list(runs.values()), tmp_path_factory.mktemp("site") / "site").parent


class _Refs(HTMLParser):
    """Collects src/href attributes and the script elements of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.scripts: list[dict[str, str | None]] = []
        self.handlers: list[str] = []

    def handle_starttag(self, tag, attrs):
        d = dict(attrs)
        self.refs += [v for k, v in attrs if k in ("src", "href") and v]
        self.handlers += [k for k, _ in attrs if k.startswith("on")]
        if tag == "script":
            self.scripts.append(d)


def _parse(page: Path) -> _Refs:
    parser = _Refs()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def _pages(site: Path) -> list[Path]:
    return [site / "index.html", *sorted((site / "runs").glob("*/index.html"))]


def test_build_writes_main_page_run_pages_and_exports(site, runs):
    assert (site / "index.html").is_file()
    assert sorted(p.parent.name for p in (site / "runs").glob("*/index.html")) == ["evil-run", "strong-run", "weak-run"]
    html = (site / "index.html").read_text(encoding="utf-8")
    for task in ("greval-urban", "greval-bench", "im2gps3k"):
        assert f'data-task="{task}"' in html
    # Plots are copied next to the run page; the page links the copy.
    assert (site / "runs" / "strong-run" / "plots" / "error_cdf.png").is_file()
    assert 'src="plots/error_cdf.png"' in (site / "runs" / "strong-run" / "index.html").read_text(encoding="utf-8")


def test_json_export_matches_metrics(site, runs):
    export = json.loads((site / "leaderboard.json").read_text(encoding="utf-8"))
    assert set(export["tasks"]) == {"greval-urban", "greval-bench", "im2gps3k"}
    metrics = json.loads((runs["strong"] / "metrics.json").read_text(encoding="utf-8"))["tasks"]["greval-bench"]
    row = next(r for r in export["tasks"]["greval-bench"] if r["run_id"] == "strong-run")
    assert row["metrics"]["acc@750km"] == pytest.approx(metrics["acc@750km"])
    assert row["ci95"]["acc@750km"] == pytest.approx(metrics["ci"]["acc@750km"])
    assert row["metrics"]["cot_score"] == pytest.approx(metrics["cot_score"])
    assert row["page"] == "runs/strong-run/index.html"
    # Rows come best-first at the country level; the strong run has the best 750 km accuracy.
    bench = export["tasks"]["greval-bench"]
    assert [r["run_id"] for r in bench][0] in {"strong-run", "evil-run"}
    assert "acc@750km" in bench[0]["best"]
    assert [r["metrics"]["acc@750km"] for r in bench] == sorted(
        (r["metrics"]["acc@750km"] for r in bench), reverse=True
    )
    # Only one run on im2gps3k: nothing is "best" alone.
    assert export["tasks"]["im2gps3k"][0]["best"] == []


def test_latex_export_escapes_names_and_bolds_best(site):
    tex = (site / "leaderboard.tex").read_text(encoding="utf-8")
    assert "\\toprule" in tex and "\\begin{tabular}" in tex
    assert r"\textless{}b\textgreater{}evil" in tex and r"\& " in tex
    assert "<script>" not in tex
    assert "\\textbf{" in tex
    assert tex.count("\\begin{table}") == 3


def test_best_value_is_marked_in_the_table(site, runs):
    html = (site / "index.html").read_text(encoding="utf-8")
    panel = html.split('data-task="greval-urban"', 2)[2].split("</table>")[0]
    rows = panel.split("<tr ")[1:]
    strong = next(r for r in rows if "strong-run" in r)
    weak = next(r for r in rows if "weak-run" in r)
    assert strong.count("best") > weak.count("best")
    # Lower-is-better columns: the strong run's median error is the smallest and is marked.
    cells = re.findall(r'<td data-sort="([^"]*)" class="([^"]*)"', strong)
    median = json.loads((runs["strong"] / "metrics.json").read_text())["tasks"]["greval-urban"]["median_km"]
    numeric = [(float(v), c) for v, c in cells if re.fullmatch(r"[0-9.e+-]+", v)]
    assert any(math.isclose(v, median) and "best" in c for v, c in numeric)


def test_untrusted_text_is_escaped_everywhere(site):
    for page in _pages(site):
        text = page.read_text(encoding="utf-8")
        parsed = _parse(page)
        # Our scripts only: one external file and JSON data blocks; no event-handler attributes.
        assert all(
            s.get("src", "").endswith("assets/greval.js") or s.get("type") == "application/json" for s in parsed.scripts
        ), page
        assert sum(1 for s in parsed.scripts if s.get("src")) == 1
        assert parsed.handlers == [], page
        assert "window.__pwned=1</script>" not in text
        assert "<b>evil" not in text
        assert "49" not in re.findall(r"<pre[^>]*>([^<]*)", text)  # {{ 7*7 }} is never evaluated
    evil_page = (site / "runs" / "evil-run" / "index.html").read_text(encoding="utf-8")
    data = evil_page.split('<script type="application/json" id="sample-data">')[1].split("</script>")[0]
    assert "<" not in data and ">" not in data  # nothing inside can close the script element
    outputs = {r["output"] for r in json.loads(data)["rows"] if r["output"] is not None}
    assert outputs == set(INJECTIONS)


def test_script_json_round_trips_and_cannot_close_the_script():
    payload = {"x": "</script><script>alert(1)</script>", "y": "a & b <!-- c -->", "z": "line\u2028sep"}
    text = str(script_json(payload))
    assert "</" not in text and "<!--" not in text and "\u2028" not in text
    assert json.loads(text) == payload


def test_every_reference_stays_inside_the_site(site):
    for page in _pages(site):
        for ref in _parse(page).refs:
            assert not re.match(r"^[a-z][a-z0-9+.-]*:", ref, re.I), f"{page}: external reference {ref}"
            target = (page.parent / ref.split("#")[0]).resolve()
            assert target.is_relative_to(site.resolve()), f"{page}: {ref} leaves the site folder"
            assert target.exists(), f"{page}: {ref} is missing"


def test_thumbnails_are_small_copies_shared_by_runs(site):
    thumbs = sorted((site / "thumbs").glob("*.jpg"))
    assert len(thumbs) == 30  # three runs over the same 30 images share their thumbnails
    with Image.open(thumbs[0]) as img:
        assert max(img.size) <= 256 and img.format == "JPEG"
    page = (site / "runs" / "weak-run" / "index.html").read_text(encoding="utf-8")
    rows = json.loads(page.split('id="sample-data">')[1].split("</script>")[0])["rows"]
    assert all(r["thumb"].startswith("../../thumbs/") for r in rows)


def test_missing_or_escaping_images_are_skipped(tmp_path, caplog):
    run = make_run(tmp_path / "run", run_id="r", model="m", n=8, data_dir=tmp_path / "nowhere")
    # One record points outside the data folder: it must never be read or referenced.
    lines = (run / "predictions.jsonl").read_text().splitlines()
    rec = json.loads(lines[0])
    rec["image"] = "../../etc/passwd"
    (run / "predictions.jsonl").write_text("\n".join([json.dumps(rec), *lines[1:]]) + "\n")
    make_images(tmp_path / "data", 3)  # only 3 of the 8 images exist
    index = build_site([run], tmp_path / "site", data_root=tmp_path / "data")
    assert len(list((tmp_path / "site" / "thumbs").glob("*.jpg"))) == 2  # 00001, 00002; 00000 rejected
    rows = json.loads(
        (tmp_path / "site" / "runs" / "r" / "index.html")
        .read_text()
        .split('id="sample-data">')[1]
        .split("</script>")[0]
    )["rows"]
    assert sum(r["thumb"] is not None for r in rows) == 2  # s00000 is the rejected one
    assert "leaves the data folder" in caplog.text and "not found" in caplog.text
    assert index.is_file()


def test_rebuild_clears_stale_run_pages_and_refuses_foreign_folders(tmp_path, runs):
    out = tmp_path / "site"
    build_site([runs["strong"], runs["weak"]], out)
    build_site([runs["strong"]], out)
    assert [p.name for p in (out / "runs").iterdir()] == ["strong-run"]
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not built by greval"):
        build_site([runs["strong"]], foreign)
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_missing_metrics_names_the_folder(tmp_path, runs):
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "run.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match=r"bare: missing metrics\.json"):
        build_site([bare], tmp_path / "site")
    with pytest.raises(ValueError, match="unknown granularity"):
        build_site([runs["strong"]], tmp_path / "site2", granularity_for_significance="planet")


def test_mcnemar_exact_matches_the_binomial_by_hand():
    # b = 10 discordant for A, c = 2 for B: p = 2 * P(X <= 2), X ~ Bin(12, 1/2).
    assert mcnemar_p(10, 2) == pytest.approx(2 * (1 + 12 + 66) / 4096)
    assert mcnemar_p(2, 10) == pytest.approx(mcnemar_p(10, 2))
    assert mcnemar_p(5, 5) == 1.0
    assert mcnemar_p(0, 0) == 1.0
    assert mcnemar_p(1500, 1400) == pytest.approx(0.0661, abs=2e-3)  # large n stays finite


def test_significance_pairs_samples_and_leaves_errors_out(runs):
    strong = load_run(runs["strong"], "s")
    weak = load_run(runs["weak"], "w")
    result = significance([strong, weak], "greval-urban")
    (pair,) = result["acc@750km"]
    i, j, n, acc_i, acc_j, p = pair
    errored = {
        r["sample_id"]
        for run in (strong, weak)
        for r in read_predictions(run.run_dir)
        if r["task"] == "greval-urban" and r["status"] == "error"
    }
    assert (i, j) == (0, 1) and n == 30 - len(errored)
    assert acc_i > acc_j and p < 0.01  # 100 km vs 3000 km typical error: clearly different
    same = significance([strong, strong], "greval-urban")["acc@750km"][0]
    assert same[5] == 1.0 and same[3] == same[4]


def test_templates_ship_with_the_package():
    templates = _templates_dir()
    for name in ("base.html", "index.html", "run.html", "style.css", "greval.js"):
        assert (templates / name).is_file()
    js = (templates / "greval.js").read_text(encoding="utf-8")
    assert "innerHTML" not in js and "eval(" not in js and "fetch(" not in js


def test_significance_agrees_with_greval_compare(runs):
    """The matrix uses its own vectorised McNemar (compare_records costs ~0.1 s a pair,
    too slow for 190 pairs); both must give the same paired accuracies and p-values."""
    from greval import compare

    strong, weak = load_run(runs["strong"], "s"), load_run(runs["weak"], "w")
    ours = significance([strong, weak], "greval-urban")
    theirs = compare.compare_records(strong.records, weak.records, n_boot=10)["tasks"]["greval-urban"]
    for key in ("acc@25km", "acc@200km", "acc@750km", "acc@2500km"):
        (_, _, n, acc_a, acc_b, p) = ours[key][0]
        assert n == theirs[key]["n"]
        assert acc_a == pytest.approx(theirs[key]["a"], abs=1e-5) and acc_b == pytest.approx(theirs[key]["b"], abs=1e-5)
        assert p == pytest.approx(theirs[key]["p_value"], rel=1e-3)


def test_site_from_real_greval_runs(tmp_path):
    """Runs written by `greval run` (replay adapter) build a site, with their thumbnails."""
    from click.testing import CliRunner

    from greval.cli import main
    from greval.testing import make_fixture_bench

    bench = make_fixture_bench(tmp_path / "bench", n=9)
    (annotations,) = bench.glob("*.json")
    rows = json.loads(annotations.read_text())
    run_dirs = []
    for name, answer in (
        ("near", '{{"lat": {lat}, "lon": {lon}}}'),
        ("evil", "<script>window.__pwned=1</script> 10, 20"),
    ):
        replay = tmp_path / f"{name}.jsonl"
        lines = [
            {"sample_id": r["sample_id"], "output": answer.format(lat=r["gt_lat"] + 0.05, lon=r["gt_lon"])}
            for r in rows
        ]
        replay.write_text("".join(json.dumps(line) + "\n" for line in lines))
        args = ["run", "--quiet", "--adapter", "replay", "--predictions", replay, "--model", f"{name}<i>!</i>"]
        args += ["--data", bench, "--tasks", "all,urban", "--output", tmp_path / name]
        result = CliRunner().invoke(main, list(map(str, args)))
        assert result.exit_code == 0, result.output
        run_dirs.append(tmp_path / name)
    index = build_site(run_dirs, tmp_path / "site")
    html = index.read_text(encoding="utf-8")
    assert "near&lt;i&gt;!&lt;/i&gt;" in html and "<i>!" not in html
    assert len(list((tmp_path / "site" / "thumbs").glob("*.jpg"))) == 9  # found through run.json's data_dir
    export = json.loads((tmp_path / "site" / "leaderboard.json").read_text())
    assert [r["model"] for r in export["tasks"]["all"]] == ["near<i>!</i>", "evil<i>!</i>"]
    assert export["tasks"]["all"][0]["metrics"]["acc@25km"] == 1.0


# --- runs on different data never share a ranking; coverage; --common-samples (issue 8)


def _cli_run(bench, out, *extra):
    from click.testing import CliRunner

    from greval.cli import main

    args = ["run", "-q", "-a", "random", "--data", str(bench), "--tasks", "all", "-o", str(out), *map(str, extra)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return out


def test_runs_on_other_data_get_their_own_table_with_coverage(tmp_path):
    from greval.testing import make_fixture_bench

    bench = make_fixture_bench(tmp_path / "bench", n=12, seed=0)
    other = make_fixture_bench(tmp_path / "other", n=12, seed=1)  # same ids, other ground truth
    full = _cli_run(bench, tmp_path / "full", "--seed", 1)
    part = _cli_run(bench, tmp_path / "part", "--seed", 2, "--limit", 5)
    elsewhere = _cli_run(other, tmp_path / "elsewhere", "--seed", 3)
    site = tmp_path / "site"
    build_site([full, part, elsewhere], site)
    board = json.loads((site / "leaderboard.json").read_text())
    keys = sorted(board["tasks"])
    assert len(keys) == 2 and all(k.startswith("all · data ") for k in keys)
    sizes = sorted(len(rows) for rows in board["tasks"].values())
    assert sizes == [1, 2]  # the two runs on `bench` share a table; the other data has its own
    html = (site / "index.html").read_text()
    assert "5 / 12 (incomplete)" in html and "12 / 12" in html
    assert board["common_samples"] is False


def _common_samples_site(tmp_path):
    """A run on all 12 samples and one on its first 5, on a leaderboard built with
    --common-samples: (full, part, site)."""
    from greval.testing import make_fixture_bench

    bench = make_fixture_bench(tmp_path / "bench", n=12, seed=0)
    full = _cli_run(bench, tmp_path / "full", "--seed", 1)
    part = _cli_run(bench, tmp_path / "part", "--seed", 2, "--limit", 5)
    site = tmp_path / "site"
    build_site([full, part], site, common_samples=True)
    return full, part, site


def test_common_samples_ranks_every_run_on_the_shared_samples(tmp_path):
    full, part, site = _common_samples_site(tmp_path)
    rows = json.loads((site / "leaderboard.json").read_text())["tasks"]["all"]
    assert [r["metrics"]["n"] for r in rows] == [5, 5]
    # The full run's numbers are those of its first 5 samples, not of all 12.
    from greval.records import read_predictions
    from greval.score import summarize

    shared = {r["sample_id"] for r in read_predictions(part)}
    mine = summarize([r for r in read_predictions(full) if r["sample_id"] in shared], n_boot=0)
    row = next(r for r in rows if r["run_id"] == "full")
    assert row["metrics"]["acc@2500km"] == pytest.approx(mine["acc@2500km"])
    assert "samples all runs of its table answered" in (site / "index.html").read_text()


def test_tables_say_their_data_coverage_and_prompt_in_the_json_latex_and_page(tmp_path):
    from greval.testing import make_fixture_bench

    bench = make_fixture_bench(tmp_path / "bench", n=12, seed=0)
    other = make_fixture_bench(tmp_path / "other", n=12, seed=1)
    full = _cli_run(bench, tmp_path / "full", "--seed", 1)
    part = _cli_run(bench, tmp_path / "part", "--seed", 2, "--limit", 5, "--template", "gre-r1")
    elsewhere = _cli_run(other, tmp_path / "elsewhere", "--seed", 3)
    site = tmp_path / "site"
    build_site([full, part, elsewhere], site)
    board = json.loads((site / "leaderboard.json").read_text())
    hashes = {json.loads((d / "run.json").read_text())["data_hash"]["all"] for d in (full, elsewhere)}
    assert len(hashes) == 2
    tables = board["tables"]
    assert {t["data_hash"] for t in tables.values()} == hashes and {t["task"] for t in tables.values()} == {"all"}
    for key, rows in board["tasks"].items():
        assert {r["data_hash"] for r in rows} == {tables[key]["data_hash"]}  # one data per ranking
        assert key.endswith(tables[key]["data_hash"][:8])
    rows = {r["run_id"]: r for rows in board["tasks"].values() for r in rows}
    assert rows["part"]["coverage"] == {"answered": 5, "total": 12, "incomplete": True}
    assert rows["full"]["coverage"] == {"answered": 12, "total": 12, "incomplete": False}
    prompt_hash = json.loads((part / "run.json").read_text())["prompt_hashes"]["all"]
    assert rows["part"]["prompt"] == {"template": "gre-r1", "hash": prompt_hash}
    assert rows["full"]["prompt"]["template"] == "gre"
    html = (site / "index.html").read_text()
    assert f"gre-r1 {prompt_hash[:8]}" in html
    assert html.count('class="incomplete"') == 1 and "5 / 12 (incomplete)" in html
    assert all(f"Scored on data {h}" in html for h in hashes)
    tex = (site / "leaderboard.tex").read_text()
    assert tex.count("\\begin{table}") == 2  # one per data group, never one table for both
    assert all(f"all, data {h[:8]}" in tex for h in hashes)


def test_an_old_run_without_task_sizes_degrades_to_an_unknown_size(tmp_path):
    from greval.testing import make_fixture_bench

    bench = make_fixture_bench(tmp_path / "bench", n=12, seed=0)
    whole = _cli_run(bench, tmp_path / "whole", "--seed", 1)
    limited = _cli_run(bench, tmp_path / "limited", "--seed", 2, "--limit", 5)
    for run in (whole, limited):  # as written before greval recorded task_sizes
        info = json.loads((run / "run.json").read_text())
        del info["task_sizes"]
        (run / "run.json").write_text(json.dumps(info))
    site = tmp_path / "site"
    build_site([whole, limited], site)
    rows = {r["run_id"]: r for r in json.loads((site / "leaderboard.json").read_text())["tasks"]["all"]}
    # Without --limit or --shard the planned samples were the whole task; with --limit nobody knows.
    assert rows["whole"]["coverage"] == {"answered": 12, "total": 12, "incomplete": False}
    assert rows["limited"]["coverage"] == {"answered": 5, "total": None, "incomplete": None}
    html = (site / "index.html").read_text()
    assert "5 / ?" in html and "5 / 5" not in html


def test_common_samples_charts_and_latex_use_the_rescored_numbers(tmp_path):
    _, _, site = _common_samples_site(tmp_path)
    board = json.loads((site / "leaderboard.json").read_text())
    rows = {r["run_id"]: r for r in board["tasks"]["all"]}
    assert board["tables"]["all"]["n_common"] == 5
    assert rows["full"]["coverage"]["answered"] == 12  # its own coverage stays visible
    html = (site / "index.html").read_text()
    analysis = json.loads(re.search(r'id="analysis-data"[^>]*>(.*?)</script>', html, re.S).group(1))["all"]
    for i, run in enumerate(analysis["runs"]):
        assert analysis["acc"]["acc@2500km"][i] == pytest.approx(rows[run["run_id"]]["metrics"]["acc@2500km"], abs=1e-5)
        n_scenes = sum(s["n"] for s in analysis["scenes"]["scenes"])
        assert n_scenes == 5  # the per-scene breakdown is over the common samples too
    assert "re-scored on the 5 samples all of them answered" in html
    assert "on the 5 samples every run answered" in (site / "leaderboard.tex").read_text()


def test_a_metric_greval_could_not_compute_is_null_never_zero(tmp_path):
    from greval.records import Prediction, PredictionWriter, write_json_atomic
    from greval.score import score_records

    run = tmp_path / "refuser"
    run.mkdir()
    written = []
    with PredictionWriter(run) as writer:
        for i in range(4):
            rec = Prediction(
                sample_id=f"s{i}", task="t", output="I cannot tell where this is.", lat=None, lon=None,
                status="refusal", distance_km=None, error=None, gt_lat=10.0 + i, gt_lon=20.0,
            )  # fmt: skip
            writer.write(rec)
            written.append(json.loads(rec.to_json()))
    write_json_atomic(run / "metrics.json", score_records(written, n_boot=0))
    write_json_atomic(run / "run.json", {"run_id": "refuser", "model": "m", "kind": "offline", "task_sizes": {"t": 4}})
    site = tmp_path / "site"
    build_site([run], site)
    (row,) = json.loads((site / "leaderboard.json").read_text())["tasks"]["t"]
    assert row["metrics"]["median_km"] is None and row["metrics"]["acc@2500km"] == 0.0  # 0 hits is a real 0
    assert row["metrics"]["cost_usd"] is None and row["cost_status"] == "not_applicable"
    html = (site / "index.html").read_text()
    cells = re.findall(r'<td data-sort="([^"]*)" class="num">\s*([^<]*)', html)
    assert ("", "—") in cells  # the median: a dash, not 0
