"""Loading a user's own Python file (an adapter, a dataset format) by path, with a
one-line error that says which file broke and where, never a traceback."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType


def load_file(path: Path, prefix: str, what: str, error: type[Exception]) -> ModuleType:
    """Import `path` as module `<prefix>_<stem>`; raise `error` naming the file on failure."""
    if not path.is_file():
        raise error(f"{what} not found: {path}")
    spec = importlib.util.spec_from_file_location(f"{prefix}_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # a user's file: say where it broke
        line = f" line {e.lineno}" if isinstance(e, SyntaxError) and e.lineno else ""
        raise error(f"{what} {path}{line} failed to load: {type(e).__name__}: {e}") from e
    return module
