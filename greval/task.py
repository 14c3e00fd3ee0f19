"""Task definitions: one YAML file per task, readable at a glance.

    include: _greval_bench.yaml     # optional: start from another file's settings
    name: urban                     # default: the file name
    description: ...
    dataset: {format: greval-bench, hub: Anonymous0515/GREval-Bench}
                                    # or your own format: {format: loader.py:load, path: DIR}
    scene: urban                    # optional filter on the sample's scene label
    template: gre                   # prompt template (greval/templates/NAME.txt or a path)
    generation: {max_tokens: 2048, temperature: 0}

Built-in tasks are the files in the top-level `tasks/` folder; files whose name starts
with `_` are shared settings, not tasks. `--include-path DIR` adds a folder of your own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from greval.errors import GrevalError
from greval.types import SCENES, GenerationConfig


class TaskError(GrevalError):
    """A task name that does not exist or a task file that cannot be read."""


@dataclass(frozen=True)
class TaskSpec:
    name: str
    dataset: dict[str, Any]
    description: str = ""
    scene: str | None = None
    template: str | None = None
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    path: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "dataset": self.dataset,
            "scene": self.scene,
            "template": self.template,
            "generation": vars(self.generation),
            "path": str(self.path) if self.path else None,
        }


def _task_dirs(include_paths: list[Path] | None) -> list[Path]:
    builtin = Path(str(resources.files("greval.tasks")))
    return [Path(p) for p in (include_paths or [])] + [builtin]


def _read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    if path in seen:
        raise TaskError(f"{path}: include cycle ({' -> '.join(map(str, seen + (path,)))})")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise TaskError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise TaskError(f"{path}: a task file must be a mapping of keys to values")
    base = data.pop("include", None)
    if base is None:
        return data
    merged = _read_yaml(path.parent / base, seen + (path,))
    for key, value in data.items():  # nested mappings merge one level deep
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


_KNOWN_KEYS = {"name", "description", "dataset", "scene", "template", "generation"}


def load_task_file(path: Path) -> TaskSpec:
    data = _read_yaml(path)
    if "metrics" in data:
        raise TaskError(
            f"{path}: `metrics:` is not a task setting: every run reports every metric (accuracy at each "
            "granularity, median and mean error, GeoScore, country and continent accuracy, rates); remove it"
        )
    unknown = set(data) - _KNOWN_KEYS
    if unknown:
        raise TaskError(f"{path}: unknown key(s) {sorted(unknown)}; known: {sorted(_KNOWN_KEYS)}")
    if not isinstance(data.get("dataset"), dict):
        raise TaskError(f"{path}: needs a `dataset:` mapping (e.g. {{format: greval-bench, path: DIR}})")
    scene = data.get("scene")
    if scene is not None and scene not in SCENES:
        raise TaskError(f"{path}: scene must be one of {SCENES}, not {scene!r}")
    gen = data.get("generation") or {}
    try:
        generation = GenerationConfig(**gen)
    except TypeError as e:
        raise TaskError(f"{path}: bad generation settings {gen}: {e}") from None
    dataset = dict(data["dataset"])
    fmt = str(dataset.get("format", ""))
    if ".py:" in fmt and not Path(fmt.rpartition(":")[0]).expanduser().is_absolute():
        dataset["format"] = str((path.parent / fmt).resolve())  # `format: loader.py:load`, beside the YAML
    return TaskSpec(
        name=str(data.get("name") or path.stem),
        description=str(data.get("description") or "").strip(),
        dataset=dataset,
        scene=scene,
        template=data.get("template"),
        generation=generation,
        path=path,
    )


def available_tasks(include_paths: list[Path] | None = None) -> dict[str, Path]:
    """Task name -> file. Earlier folders win, so a user's task can shadow a built-in."""
    found: dict[str, Path] = {}
    for folder in _task_dirs(include_paths):
        if not folder.is_dir():
            raise TaskError(f"task folder not found: {folder}")
        for path in sorted(folder.glob("*.yaml")) + sorted(folder.glob("*.yml")):
            if not path.name.startswith("_"):
                found.setdefault(path.stem, path)
    return found


def resolve_tasks(names: list[str], include_paths: list[Path] | None = None) -> list[TaskSpec]:
    """Names, or paths to YAML files, to task specs (in the order given, no duplicates)."""
    known = available_tasks(include_paths)
    specs: list[TaskSpec] = []
    given = [n if isinstance(n, TaskSpec) else n.strip() for n in names if n]
    for name in [n for i, n in enumerate(given) if n and n not in given[:i]]:  # in order, no duplicates
        if isinstance(name, TaskSpec):  # built by the caller (greval.own_data for --data alone)
            specs.append(name)
        elif name.endswith((".yaml", ".yml")) and Path(name).is_file():
            specs.append(load_task_file(Path(name)))
        elif name in known:
            specs.append(load_task_file(known[name]))
        else:
            raise TaskError(f"unknown task {name!r}; available: {', '.join(sorted(known))} (or a path to a .yaml file)")
    return specs
