"""The leaderboard in a real browser: Debian's headless Chromium driven by Playwright.

Pages are opened from file://, as a researcher opening the folder would. Every test
records console errors, page errors and requests; a request to anything but a local file,
or any console error (a CSP violation is one), fails the test. Screenshots go to
tests/_artifacts/leaderboard/ for a developer to look at.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from _skips import APT, require
from leaderboard_fixtures import INJECTIONS, make_images, make_run

from greval.leaderboard import build_site

CHROMIUM = os.environ.get("GREVAL_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
sync_api = require("playwright.sync_api", "dev")
if not Path(CHROMIUM).exists():
    pytest.skip(f"no Chromium at {CHROMIUM}: {APT['chromium']}", allow_module_level=True)

ARTIFACTS = Path(__file__).parent / "_artifacts" / "leaderboard"
EVIL_MODEL = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=1</script>evil'
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("browser")
    data = make_images(root / "data", 60)
    runs = [
        make_run(
            root / "a",
            run_id="gpt-4o-run",
            model="gpt-4o",
            tasks=("greval-urban", "greval-bench"),
            n=60,
            skill_km=120,
            seed=1,
            data_dir=data,
            plots=True,
            cot=True,
        ),
        make_run(
            root / "b",
            run_id="qwen7b-run",
            model="Qwen2.5-VL-7B",
            adapter="transformers",
            kind="open-weights",
            tasks=("greval-urban", "greval-bench"),
            n=60,
            skill_km=2500,
            seed=2,
            data_dir=data,
        ),
        make_run(
            root / "c",
            run_id="internvl-run",
            model="InternVL3-8B",
            adapter="vllm",
            kind="open-weights",
            tasks=("greval-bench",),
            n=60,
            skill_km=900,
            seed=4,
            data_dir=data,
        ),
        make_run(
            root / "d",
            run_id="evil-run",
            model=EVIL_MODEL,
            adapter="replay",
            kind="offline",
            n=60,
            skill_km=400,
            seed=3,
            data_dir=data,
            outputs=INJECTIONS,
        ),
    ]
    return build_site(runs, root / "site").parent


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        yield browser
        browser.close()


class Watched:
    """A page whose console errors, page errors and non-file requests are recorded."""

    def __init__(self, browser) -> None:
        self.page = browser.new_page(viewport={"width": 1440, "height": 1000})
        self.problems: list[str] = []
        self.page.on(
            "console", lambda m: self.problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None
        )
        self.page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        self.page.on(
            "request", lambda r: None if r.url.startswith("file://") else self.problems.append(f"request: {r.url}")
        )
        self.page.on("dialog", lambda d: (self.problems.append(f"dialog: {d.message}"), d.dismiss()))

    def open(self, path: Path) -> None:
        self.page.goto(path.resolve().as_uri())
        self.page.wait_for_load_state("load")

    def shot(self, name: str, full_page: bool = True) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=full_page)

    def check(self) -> None:
        assert self.problems == []
        assert self.page.evaluate("typeof window.__pwned") == "undefined"
        self.page.close()


@pytest.fixture
def watched(browser):
    w = Watched(browser)
    yield w
    w.check()


def _visible_models(page) -> list[str]:
    return page.eval_on_selector_all(
        "section.panel:not([hidden]) tbody tr:not([hidden]) td:first-child a", "els => els.map(e => e.textContent)"
    )


def test_main_page_loads_clean_offline(watched, site):
    watched.open(site / "index.html")
    page = watched.page
    assert page.title().startswith("Geolocation leaderboard")
    tabs = page.eval_on_selector_all('[role="tab"]', "els => els.map(e => e.dataset.task)")
    assert tabs == ["greval-urban", "greval-bench"]
    assert len(_visible_models(page)) == 2  # urban tab: two runs
    page.click('[role="tab"][data-task="greval-bench"]')
    assert len(_visible_models(page)) == 4
    # Breakdown and significance follow the tab.
    assert page.locator("#scene-table tbody tr").count() == 4
    assert page.locator("#sig-matrix tbody tr").count() == 4
    assert page.locator("#sig-matrix td.sig-better").count() >= 1  # 120 km vs 2500 km typical error
    # The model name with HTML in it shows as text.
    assert EVIL_MODEL in _visible_models(page)
    watched.shot("index")


def test_clicking_a_header_sorts_rows(watched, site):
    watched.open(site / "index.html")
    page = watched.page
    page.click('[role="tab"][data-task="greval-bench"]')
    panel = "section.panel:not([hidden])"
    col = page.eval_on_selector_all(
        f"{panel} thead th", "ths => ths.findIndex(th => th.textContent.trim() === 'Median km')"
    )
    assert col > 0

    def column() -> list[float]:
        cells = page.eval_on_selector_all(
            f"{panel} tbody tr td:nth-child({col + 1})", "tds => tds.map(td => td.dataset.sort)"
        )
        return [float(c) for c in cells]

    before = column()
    page.click(f"{panel} thead th:nth-child({col + 1}) button")
    ascending = column()
    assert ascending == sorted(before)
    assert page.get_attribute(f"{panel} thead th:nth-child({col + 1})", "aria-sort") == "ascending"
    page.click(f"{panel} thead th:nth-child({col + 1}) button")
    descending = column()
    assert descending == sorted(before, reverse=True) and descending != before  # the rows really moved
    # Text column: model names, A→Z.
    page.click(f"{panel} thead th:nth-child(1) button")
    names = [n.lower() for n in _visible_models(page)]
    assert names == sorted(names)
    watched.shot("index-sorted-by-model")


def test_filter_hides_rows(watched, site):
    watched.open(site / "index.html")
    page = watched.page
    page.click('[role="tab"][data-task="greval-bench"]')
    page.fill("#filter-text", "qwen")
    assert _visible_models(page) == ["Qwen2.5-VL-7B"]
    assert page.text_content("#filter-count") == "1 of 4 runs shown"
    # The breakdown and the matrix follow the filter.
    assert page.locator("#scene-table tbody tr").count() == 1
    assert page.locator("#sig-matrix tbody tr").count() == 0
    page.fill("#filter-text", "")
    page.select_option("#filter-kind", "open-weights")
    assert sorted(_visible_models(page)) == ["InternVL3-8B", "Qwen2.5-VL-7B"]
    assert page.locator("#sig-matrix tbody tr").count() == 2
    page.fill("#filter-text", "no such model")
    assert _visible_models(page) == []
    assert page.is_visible("#filter-empty")
    watched.shot("index-filtered")


def test_sample_viewer_opens_a_sample(watched, site):
    run_page = site / "runs" / "gpt-4o-run" / "index.html"
    watched.open(run_page)
    page = watched.page
    assert page.is_hidden("#sample-detail")
    assert page.locator("#sample-table tbody tr").count() == 50  # first page of 120 samples
    page.select_option("#s-task", "greval-urban")
    page.select_option("#s-scene", "urban")
    page.select_option("#s-correct", "0")
    page.select_option("#s-granularity", "1")  # wrong at 25 km
    ids = page.eval_on_selector_all("#sample-table tbody tr", "trs => trs.map(tr => tr.dataset.id)")
    assert ids and all(i for i in ids)
    page.click("#sample-table tbody tr:first-child")
    assert page.is_visible("#sample-detail")
    rows = json.loads(page.text_content("#sample-data"))["rows"]
    rec = next(r for r in rows if r["id"] == ids[0] and r["task"] == "greval-urban")
    assert rec["scene"] == "urban" and not (rec["hits"] >> 1) & 1
    assert page.text_content("#d-output") == rec["output"]
    assert page.text_content("#d-title").startswith(ids[0])
    if rec["status"] == "ok":
        assert page.locator("#d-marks circle.pred").count() == 1
    assert page.locator("#d-marks circle.truth").count() == 1
    assert page.evaluate("document.getElementById('d-thumb').naturalWidth") > 0  # the thumbnail loaded
    page.fill("#s-search", ids[0])
    assert page.locator("#sample-table tbody tr").count() == 1
    watched.shot("run-sample-open")


def test_injected_outputs_show_as_text_and_nothing_runs(watched, site):
    watched.open(site / "runs" / "evil-run" / "index.html")
    page = watched.page
    assert page.text_content("h1") == EVIL_MODEL
    assert page.locator("img[src='x']").count() == 0
    shown = set()
    for i in range(len(INJECTIONS)):
        page.click(f"#sample-table tbody tr:nth-child({i + 1})")
        shown.add(page.text_content("#d-output"))
        assert page.locator("#d-output *").count() == 0  # text only, no elements
    assert shown == set(INJECTIONS)
    page.fill("#s-search", "<script>")
    assert page.locator("#sample-table tbody tr.sample-row").count() > 0
    page.click("#sample-table tbody tr:first-child")
    assert "<script>" in page.inner_text("#d-output")  # the literal tag is visible
    watched.shot("run-injection", full_page=False)
    watched.open(site / "index.html")
    watched.page.click('[role="tab"][data-task="greval-bench"]')
    assert EVIL_MODEL in _visible_models(watched.page)


@pytest.fixture(scope="module")
def guarded_site(tmp_path_factory) -> Path:
    """Runs of one task on two data hashes; one incomplete, one with a cost greval cannot price."""
    root = tmp_path_factory.mktemp("guarded")
    common = {"tasks": ("greval-bench",), "n": 5, "task_size": 5}  # n ≤ 5: no errored sample
    runs = [
        make_run(root / "a", run_id="full-run", model="full", seed=1, skill_km=200, **common),
        make_run(root / "b", run_id="unpriced-run", model="unpriced", seed=2, priced=False, **common),
        make_run(root / "c", run_id="short-run", model="short", seed=3, **{**common, "task_size": 1602}),
        make_run(root / "d", run_id="other-data-run", model="other", seed=4, data_hash="cd" * 8, **common),
    ]
    return build_site(runs, root / "site").parent


def _cell(page, column: str) -> dict[str, str]:
    """{model: text} of a column of the visible table."""
    panel = "section.panel:not([hidden])"
    col = page.eval_on_selector_all(
        f"{panel} thead th", f"ths => ths.findIndex(th => th.textContent.trim() === '{column}')"
    )
    assert col >= 0, column
    names = _visible_models(page)
    cells = page.eval_on_selector_all(f"{panel} tbody tr td:nth-child({col + 1})", "tds => tds.map(td => td.innerText)")
    return dict(zip(names, (c.strip() for c in cells), strict=True))


def test_runs_on_other_data_rank_apart_with_coverage_and_unknown_cost(watched, guarded_site):
    watched.open(guarded_site / "index.html")
    page = watched.page
    tabs = page.eval_on_selector_all('[role="tab"]', "els => els.map(e => e.dataset.task)")
    assert tabs == ["greval-bench · data abababab", "greval-bench · data cdcdcdcd"]
    assert sorted(_visible_models(page)) == ["full", "short", "unpriced"]  # never ranked with `other`
    coverage = _cell(page, "Coverage")
    assert coverage["full"] == "5 / 5" and coverage["short"] == "5 / 1,602 (incomplete)"
    incomplete = page.eval_on_selector_all("section.panel:not([hidden]) tbody tr.incomplete", "trs => trs.length")
    assert incomplete == 1
    cost = _cell(page, "Cost")
    assert cost["unpriced"] == "unknown" and cost["full"].startswith("$") and "$0.00" not in cost.values()
    assert page.eval_on_selector_all("#sig-matrix tbody tr", "trs => trs.length") == 3
    page.click('[role="tab"]:nth-child(2)')
    assert _visible_models(page) == ["other"]
    watched.shot("index-data-groups")
