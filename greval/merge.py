"""`greval merge`: join the shard runs (`--shard I/N`) of one model into one run folder."""

from __future__ import annotations

from pathlib import Path

from greval.cost import merged as merged_cost
from greval.errors import GrevalError
from greval.records import (
    ERROR,
    PREDICTIONS,
    RUN_INFO,
    Prediction,
    PredictionWriter,
    read_json,
    read_predictions,
    write_json_atomic,
)


class MergeError(GrevalError):
    pass


def merge_runs(run_dirs: list[Path], output: Path) -> dict:
    infos = []
    for d in run_dirs:
        if not (Path(d) / RUN_INFO).exists():
            raise MergeError(f"{d} is not a greval run folder: no {RUN_INFO}")
        infos.append(read_json(Path(d) / RUN_INFO))
    models = {(i.get("adapter"), i.get("model")) for i in infos}
    if len(models) > 1:
        raise MergeError(f"runs of different models cannot be merged: {sorted(map(str, models))}")
    if Path(output).resolve() in {Path(d).resolve() for d in run_dirs}:
        raise MergeError("--output must be a new folder, not one of the runs being merged")
    if (Path(output) / PREDICTIONS).exists():
        raise MergeError(f"{output} already holds predictions; choose a new folder")

    shards = [tuple(s) for i in infos if (s := i.get("args", {}).get("shard"))]
    counts = sorted({n for _, n in shards})
    if len(counts) > 1:
        raise MergeError(f"the runs were split different ways (--shard .../{' and .../'.join(map(str, counts))})")
    # A forgotten node's folder would otherwise pass for the whole benchmark.
    missing = [f"{i}/{counts[0]}" for i in range(counts[0]) if (i, counts[0]) not in shards] if counts else []

    merged: dict[tuple[str, str], dict] = {}
    for d in run_dirs:
        for rec in read_predictions(Path(d), overrides=False):  # overrides are carried over below
            key = (rec["task"], rec["sample_id"])
            # A real answer beats an error for the same sample (overlapping or re-run shards).
            if key not in merged or merged[key].get("status") == ERROR:
                merged[key] = rec
    fields = set(Prediction.__dataclass_fields__)
    with PredictionWriter(Path(output)) as writer:
        for rec in merged.values():
            writer.write(Prediction(**{k: v for k, v in rec.items() if k in fields}))

    first = infos[0]
    info = {
        **first,
        "run_id": Path(output).name,
        "merged_from": [str(d) for d in run_dirs],
        "shards": [i.get("args", {}).get("shard") for i in infos],
        "missing_shards": missing,
        **merged_cost(infos),
        "samples_per_task": _sum_counts(i.get("samples_per_task", {}) for i in infos),
    }
    write_json_atomic(Path(output) / RUN_INFO, info)
    # The shards' `greval audit --override`s hold for the merged run too.
    from greval.audit import append_overrides, read_overrides

    append_overrides(Path(output), [o for d in run_dirs for o in read_overrides(Path(d))])
    from greval.run import score_run_dir

    args = first.get("args", {})
    return score_run_dir(
        Path(output), None, args.get("granularities"), first.get("earth", "haversine"), first.get("seed", 0)
    )


def _sum_counts(dicts) -> dict[str, int]:
    total: dict[str, int] = {}
    for d in dicts:
        for k, v in d.items():
            total[k] = total.get(k, 0) + v
    return total
