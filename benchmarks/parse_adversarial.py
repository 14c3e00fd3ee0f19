"""Parsing hostile inputs: is the parser linear in the text, and fast on a megabyte?

    python benchmarks/parse_adversarial.py

For each adversarial input of tests/test_parse.py (1 MB each: digits, tags, labels, ...)
prints the time of the whole megabyte (target < 1 s) and the ratio of the time on 64,000
characters to the time on 8,000 (linear: about 8; quadratic would be about 64; the 64 KB
region cap keeps both sizes under the parser's own work). Best of three, one process.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from test_parse import _ADVERSARIAL  # noqa: E402

from greval.parse import parse_answer  # noqa: E402


def best_of_3(text: str) -> float:
    times = []
    for _ in range(3):
        start = time.perf_counter()
        parse_answer(text)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    worst_ratio, worst_time = 0.0, 0.0
    for name, text in sorted(_ADVERSARIAL.items()):
        whole = best_of_3(text)
        ratio = best_of_3(text[:64_000]) / max(best_of_3(text[:8_000]), 1e-6)
        worst_ratio, worst_time = max(worst_ratio, ratio), max(worst_time, whole)
        print(f"{name:24s} 1 MB in {whole * 1000:7.1f} ms   64k/8k time ratio {ratio:5.1f}")
    print(f"worst: {worst_time:.2f} s per MB (target < 1 s); worst ratio {worst_ratio:.1f} (linear ~8, quadratic ~64)")


if __name__ == "__main__":
    main()
