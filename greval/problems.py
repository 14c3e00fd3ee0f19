"""What can be wrong with data: a `Problem` (one bad row or file, tied to a sample when
there is one) and a `DataError` (nothing can be loaded at all). Shared by the loaders
(greval.data) and the scene assignment (greval.scenes), which both report problems."""

from __future__ import annotations

from dataclasses import dataclass

from greval.errors import GrevalError


@dataclass
class Problem:
    """One thing wrong with the data, tied to a sample when there is one."""

    sample_id: str | None
    where: str  # "file:line", or a path
    message: str

    def __str__(self) -> str:
        who = f"sample {self.sample_id}: " if self.sample_id is not None else ""
        return f"{self.where}: {who}{self.message}"


class DataError(GrevalError):
    """The dataset cannot be loaded at all (bad file, missing folder, Hub unreachable)."""
