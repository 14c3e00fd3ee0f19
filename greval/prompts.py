"""Prompt templates: named text files in greval/templates/ (or any file path).

A template is the user turn sent with the image. `$scene` / `${sample_id}` style
placeholders are filled from the sample (`string.Template`, unknown ones left as is),
so most templates are plain text. A run records the hash of every rendered prompt.
"""

from __future__ import annotations

import string
from functools import lru_cache
from importlib import resources
from pathlib import Path

from greval.errors import GrevalError
from greval.types import Sample


class TemplateError(GrevalError):
    pass


def template_names() -> list[str]:
    folder = resources.files("greval.templates")
    return sorted(p.name[:-4] for p in folder.iterdir() if p.name.endswith(".txt"))


@lru_cache(maxsize=64)
def load_template(name: str) -> string.Template:
    path = Path(name)
    if path.suffix == ".txt" and path.is_file():
        text = path.read_text(encoding="utf-8")
    else:
        res = resources.files("greval.templates").joinpath(f"{name}.txt")
        if not res.is_file():
            raise TemplateError(
                f"unknown prompt template {name!r}; built-in: {', '.join(template_names())}, or a path to a .txt file"
            )
        text = res.read_text(encoding="utf-8")
    return string.Template(text.strip())


def render(template_name: str, sample: Sample) -> str:
    template = load_template(template_name)
    if "$" not in template.template:
        return template.template
    fields = {
        "sample_id": sample.sample_id,
        "scene": sample.scene or "",
        **{k: str(v) for k, v in sample.metadata.items()},
    }
    return template.safe_substitute(fields)
