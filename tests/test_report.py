"""Report tables and the run summary, from fixture run folders with known numbers."""

from __future__ import annotations

import csv
import io
import json
import subprocess
from pathlib import Path

import pytest
from _report_runs import block, write_run
from _skips import no_program_reason

from greval.report import (
    ReportError,
    load_run,
    metrics_table,
    render,
    scene_table,
    summary_text,
)

# GRE and GeoCLIP on GREval-Bench (paper Table 3) as fractions.
GRE = (0.0614, 0.2615, 0.4467, 0.6656, 0.8316)
GEOCLIP = (0.0245, 0.1571, 0.3408, 0.6485, 0.7661)

SHORT = ["model", "task", "acc@1km", "acc@25km", "median_km", "parse_failure_rate"]


@pytest.fixture
def gre_run(tmp_path: Path) -> Path:
    return write_run(
        tmp_path / "gre",
        {
            "greval-bench": block(
                GRE,
                n=3000,
                median_km=312.5,
                mean_km=1192.25,
                geoscore=2345.6,
                ci={"acc@1km": [0.053, 0.0702], "acc@25km": [0.246, 0.277]},
                by_scene={
                    "natural": block((0.01, 0.1, 0.3, 0.6, 0.8), n=811, median_km=None),
                    "urban": block((0.1, 0.4, 0.5, 0.7, 0.9), n=1138),
                },
            )
        },
        info={"run_id": "run-1", "model": "GRE_7B (ours) & 100%", "adapter": "hf"},
    )


@pytest.fixture
def geoclip_run(tmp_path: Path) -> Path:
    # This run narrowed its granularities: no street level at all.
    narrowed = {
        k: v for k, v in block(GEOCLIP, n=3000, median_km=401.0, parse_failure_rate=0.0).items() if k != "acc@1km"
    }
    return write_run(tmp_path / "geoclip", {"greval-bench": narrowed}, info={"adapter": "geoclip"})


def test_load_run_reads_info_and_metrics_and_labels_by_model(gre_run: Path) -> None:
    run = load_run(gre_run)
    assert run.label == "GRE_7B (ours) & 100%"
    assert run.tasks == ["greval-bench"]
    assert run.metrics["tasks"]["greval-bench"]["n"] == 3000


def test_label_falls_back_to_adapter_then_folder_name(geoclip_run: Path, tmp_path: Path) -> None:
    assert load_run(geoclip_run).label == "geoclip"
    bare = write_run(tmp_path / "my-run", {"t": block(GRE)})  # no run.json
    assert load_run(bare).label == "my-run"


def test_folder_without_metrics_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "predictions.jsonl").write_text("")
    with pytest.raises(ReportError, match=r"is not a greval run folder: no metrics\.json"):
        load_run(tmp_path)
    with pytest.raises(ReportError, match="no such folder"):
        load_run(tmp_path / "missing")


def test_table_keeps_raw_fractions_and_missing_granularity_is_none(gre_run: Path, geoclip_run: Path) -> None:
    df = metrics_table([load_run(gre_run), load_run(geoclip_run)])
    assert list(df.columns) == [
        "model",
        "task",
        "n",
        "acc@1km",
        "acc@25km",
        "acc@200km",
        "acc@750km",
        "acc@2500km",
        "median_km",
        "mean_km",
        "geoscore",
        "country_acc",
        "continent_acc",
        "parse_failure_rate",
        "refusal_rate",
        "truncated_rate",
    ]
    assert df["model"].tolist() == ["GRE_7B (ours) & 100%", "geoclip"]
    assert df["acc@1km"].tolist() == [0.0614, None]
    assert df["acc@2500km"].tolist() == [0.8316, 0.7661]


def test_granularity_no_run_has_is_left_out(geoclip_run: Path) -> None:
    df = metrics_table([load_run(geoclip_run)])
    assert "acc@1km" not in df.columns
    assert "acc@25km" in df.columns


def test_tasks_filter_and_unknown_task(gre_run: Path, tmp_path: Path) -> None:
    two = write_run(tmp_path / "two", {"a": block(GRE), "b": block(GEOCLIP)}, info={"model": "m"})
    assert metrics_table([load_run(two)], tasks=["b"])["task"].tolist() == ["b"]
    assert metrics_table([load_run(two)], tasks=["b", "a"])["task"].tolist() == ["b", "a"]
    with pytest.raises(ReportError, match="no run has task"):
        metrics_table([load_run(gre_run)], tasks=["nope"])


def test_markdown_side_by_side_with_missing_as_dash(gre_run: Path, geoclip_run: Path) -> None:
    df = metrics_table([gre_run, geoclip_run])
    assert render(df, "md", columns=SHORT) == (
        "| Model | Task | Street 1 km | City 25 km | Median km | Parse fail. |\n"
        "|:---|:---|---:|---:|---:|---:|\n"
        "| GRE_7B (ours) & 100% | greval-bench | 6.14 | 26.15 | 312.5 | 3.00 |\n"
        "| geoclip | greval-bench | – | 15.71 | 401.0 | 0.00 |\n"
    )


def test_markdown_full_header_names_every_granularity(gre_run: Path) -> None:
    first_line = render(metrics_table([gre_run]), "md").splitlines()[0]
    assert first_line == (
        "| Model | Task | N | Street 1 km | City 25 km | Region 200 km | Country 750 km | Continent 2500 km"
        " | Median km | Mean km | GeoScore | Country acc. | Continent acc. | Parse fail. | Refusal | Truncated |"
    )
    row = render(metrics_table([gre_run]), "md").splitlines()[2]
    assert row == (
        "| GRE_7B (ours) & 100% | greval-bench | 3000 | 6.14 | 26.15 | 44.67 | 66.56 | 83.16"
        " | 312.5 | 1192.2 | 2346 | 50.00 | 80.00 | 3.00 | 2.00 | 0.00 |"
    )


def test_markdown_with_ci(gre_run: Path, geoclip_run: Path) -> None:
    df = metrics_table([gre_run, geoclip_run], ci=True)
    assert list(df.columns)[-2:] == ["acc@1km_ci", "acc@25km_ci"]  # only the intervals metrics.json has
    assert render(df, "md", columns=["model", "acc@1km", "acc@25km"]) == (
        "| Model | Street 1 km | City 25 km |\n"
        "|:---|---:|---:|\n"
        "| GRE_7B (ours) & 100% | 6.14 ± 0.86 | 26.15 ± 1.55 |\n"
        "| geoclip | – | 15.71 |\n"
    )


def test_csv_is_percentages_with_empty_missing(gre_run: Path, geoclip_run: Path) -> None:
    text = render(metrics_table([gre_run, geoclip_run]), "csv", columns=SHORT)
    assert text == (
        "Model,Task,Street 1 km,City 25 km,Median km,Parse fail.\n"
        "GRE_7B (ours) & 100%,greval-bench,6.14,26.15,312.5,3.00\n"
        "geoclip,greval-bench,,15.71,401.0,0.00\n"
    )
    rows = list(csv.DictReader(io.StringIO(render(metrics_table([gre_run], ci=True), "csv"))))
    assert rows[0]["Street 1 km CI lo"] == "5.30"
    assert rows[0]["Street 1 km CI hi"] == "7.02"


def test_json_is_raw_unrounded_fractions(gre_run: Path, geoclip_run: Path) -> None:
    records = json.loads(render(metrics_table([gre_run, geoclip_run], ci=True), "json"))
    assert records[0]["acc@1km"] == 0.0614
    assert records[0]["mean_km"] == 1192.25
    assert records[0]["acc@1km_ci"] == [0.053, 0.0702]
    assert records[1]["acc@1km"] is None
    assert records[1]["model"] == "geoclip"
    assert set(records[0]) == set(records[1])


def test_unknown_format_and_column(gre_run: Path) -> None:
    df = metrics_table([gre_run])
    with pytest.raises(ReportError, match="unknown report format 'html'"):
        render(df, "html")
    with pytest.raises(ReportError, match="unknown column"):
        render(df, "md", columns=["model", "acc@10km"])


EXPECTED_LATEX = r"""% greval table: needs \usepackage{booktabs} and \usepackage{graphicx}
\begin{table}[t]
\centering
\caption{GREval-Bench, 3,000 images.}
\label{tab:geo}
\resizebox{\linewidth}{!}{%
\begin{tabular}{lrrrr}
\toprule
Model & Street 1 km & City 25 km & Median km & Parse fail. \\
\midrule
GRE\_7B (ours) \& 100\% & 6.14\,$\pm$\,0.86 & \textbf{26.15}\,$\pm$\,1.55 & \textbf{312.5} & 3.00 \\
geoclip & -- & 15.71 & 401.0 & \textbf{0.00} \\
\bottomrule
\end{tabular}%
}
\end{table}
"""


def test_latex_exact_structure_escaping_and_bold_best(gre_run: Path, geoclip_run: Path) -> None:
    # Street 1 km: one value only (geoclip has none), so nothing to win; lower is better for
    # median and parse failures.
    df = metrics_table([gre_run, geoclip_run], ci=True)
    text = render(
        df,
        "latex",
        columns=["model", "acc@1km", "acc@25km", "median_km", "parse_failure_rate"],
        caption="GREval-Bench, 3,000 images.",
        label="tab:geo",
    )
    assert text == EXPECTED_LATEX


def test_latex_bold_is_per_task_and_skips_ties(tmp_path: Path) -> None:
    a = write_run(tmp_path / "a", {"t1": block(GRE), "t2": block(GEOCLIP)}, info={"model": "a"})
    b = write_run(tmp_path / "b", {"t1": block(GEOCLIP), "t2": block(GRE)}, info={"model": "b"})
    text = render(metrics_table([a, b]), "latex", columns=["model", "task", "acc@1km", "country_acc"])
    body = text.split("\\midrule\n")[1].split("\\bottomrule")[0].splitlines()
    # Rows: a/t1, a/t2, b/t1, b/t2; country_acc is 50 % everywhere: nothing bold there.
    assert body == [
        r"a & t1 & \textbf{6.14} & 50.00 \\",
        r"a & t2 & 2.45 & 50.00 \\",
        r"b & t1 & 2.45 & 50.00 \\",
        r"b & t2 & \textbf{6.14} & 50.00 \\",
    ]


def test_latex_default_caption_mentions_units_and_ci(gre_run: Path) -> None:
    text = render(metrics_table([gre_run], ci=True), "latex")
    assert "\\caption{Geolocation accuracy (\\%)" in text
    assert "95\\,\\% confidence interval" in text
    assert text.count("\\toprule") == text.count("\\midrule") == text.count("\\bottomrule") == 1


@pytest.mark.skipif(no_program_reason("pdflatex") is not None, reason=str(no_program_reason("pdflatex")))
def test_latex_compiles(gre_run: Path, geoclip_run: Path, tmp_path: Path) -> None:
    table = render(metrics_table([gre_run, geoclip_run], ci=True), "latex")
    table += render(scene_table(gre_run), "latex", label="tab:scenes")
    document = (
        "\\documentclass{article}\n\\usepackage[T1]{fontenc}\n\\usepackage{booktabs}\n\\usepackage{graphicx}\n"
        "\\begin{document}\n" + table + "\\end{document}\n"
    )
    (tmp_path / "t.tex").write_text(document, encoding="utf-8")
    result = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "t.tex"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout[-2000:]
    assert (tmp_path / "t.pdf").read_bytes()[:5] == b"%PDF-"


def test_scene_table_all_row_then_scenes_by_size(gre_run: Path) -> None:
    df = scene_table(gre_run)
    assert df["scene"].tolist() == ["all", "urban", "natural"]
    assert df["n"].tolist() == [3000, 1138, 811]
    assert render(df, "md", columns=["scene", "n", "acc@1km", "median_km"]) == (
        "| Scene | N | Street 1 km | Median km |\n"
        "|:---|---:|---:|---:|\n"
        "| all | 3000 | 6.14 | 312.5 |\n"
        "| urban | 1138 | 10.00 | 312.4 |\n"
        "| natural | 811 | 1.00 | – |\n"
    )


def test_scene_table_without_scenes_has_only_the_all_row(geoclip_run: Path) -> None:
    assert scene_table(geoclip_run)["scene"].tolist() == ["all"]


def test_summary_text(tmp_path: Path) -> None:
    run = write_run(
        tmp_path / "r",
        {"greval-bench": block(GRE, n=3000, n_parsed=2850, n_errors=12, median_km=312.5, mean_km=1192.25)},
        info={"run_id": "run-7", "model": "gpt-x", "cost_usd": 12.5, "skipped": {"image missing": 3, "no gt": 5}},
    )
    assert summary_text(run) == (
        "gpt-x  (run run-7)\n"
        "greval-bench: 3000 samples, 2850 with a usable answer\n"
        "  accuracy  Street 1 km 6.14 % · City 25 km 26.15 % · Region 200 km 44.67 % · Country 750 km 66.56 %"
        " · Continent 2500 km 83.16 %\n"
        "  median 312.5 km · mean 1,192.2 km · GeoScore 2346 · country 50.00 % · continent 80.00 %\n"
        "  no usable answer: parse failures 3.00 % · refusals 2.00 % · truncated 0.00 %\n"
        "  12 request errors: not scored; re-run the same command to retry them\n"
        "cost: $12.5000\n"
        "skipped 8 samples (no gt: 5, image missing: 3)\n"
    )


def test_summary_text_with_missing_values_and_no_cost(tmp_path: Path) -> None:
    run = write_run(tmp_path / "r", {"t": {"n": 0, "acc@25km": None, "median_km": None}})
    text = summary_text(run)
    assert "  accuracy  City 25 km –\n" in text
    assert "  median – · mean –\n" in text
    assert "cost" not in text and "skipped" not in text and "request errors" not in text


def test_concatenated_scene_tables_bold_per_scene_and_show_missing(gre_run: Path, geoclip_run: Path) -> None:
    import pandas as pd

    # The CLI's `--scenes` for several runs: concat turns a missing column's cells into NaN.
    df = pd.concat([scene_table(gre_run), scene_table(geoclip_run)], ignore_index=True)
    text = render(df, "latex", columns=["model", "scene", "acc@1km", "acc@25km"])
    body = text.split("\\midrule\n")[1].split("\\bottomrule")[0].splitlines()
    assert body == [
        r"GRE\_7B (ours) \& 100\% & all & 6.14 & \textbf{26.15} \\",
        r"GRE\_7B (ours) \& 100\% & urban & 10.00 & 40.00 \\",
        r"GRE\_7B (ours) \& 100\% & natural & 1.00 & 10.00 \\",
        r"geoclip & all & -- & 15.71 \\",
    ]
    assert render(df, "md", columns=["model", "scene", "acc@1km"]).splitlines()[-1] == "| geoclip | all | – |"
