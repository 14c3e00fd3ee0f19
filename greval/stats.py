"""Bootstrap helpers, public: reproducible streams and fast exact replicates.

`rng_for(seed, *names)` gives an independent stream per (seed, metric, group), so an
interval never depends on which other metrics were computed. `boot_proportion`,
`boot_mean` and `boot_median` draw replicates of a share, a mean and a median of m
values among n_total samples (resampling n_total: a sample without a value, e.g. an
unparsed answer, is drawn too and counts toward n, as in the metric itself), exactly in
distribution and without materialising n_boot resamples (see greval/score.py's docstring
for the derivations). `percentile_ci` turns replicates into a 95 % percentile interval.
greval.score, greval.compare and greval.cot use these; so can any analysis of runs.
"""

from __future__ import annotations

import zlib

import numpy as np

_PLAIN_BOOTSTRAP_MAX_DRAWS = 20_000_000
_STRATA = 256


def rng_for(seed: int, *names: str) -> np.random.Generator:
    """An independent, reproducible stream per (seed, metric, group)."""
    return np.random.default_rng([seed, *(zlib.crc32(name.encode()) for name in names)])


def percentile_ci(replicates: np.ndarray) -> list[float] | None:
    replicates = replicates[np.isfinite(replicates)]
    if len(replicates) == 0:
        return None
    lo, hi = np.percentile(replicates, [2.5, 97.5])
    return [float(lo), float(hi)]


def boot_proportion(hits: np.ndarray, rng: np.random.Generator, n_boot: int) -> np.ndarray:
    """Bootstrap replicates of a 0/1 mean: exactly Binomial(n, p̂) / n."""
    n = len(hits)
    if n == 0:
        return np.full(n_boot, np.nan)
    return rng.binomial(n, hits.mean(), size=n_boot) / n


def boot_mean(values: np.ndarray, n_total: int, rng: np.random.Generator, n_boot: int) -> np.ndarray:
    """Replicates of the mean of `values` (m of n_total samples) under resampling n_total.

    The number of the m included samples that land in a resample is Binomial(n_total,
    m / n_total); a replicate with none of them is NaN.
    """
    m = len(values)
    if m == 0 or n_total == 0:
        return np.full(n_boot, np.nan)
    # Sorted, so the draws pick the same values whatever order the records came in:
    # the interval must not change when a run's predictions.jsonl is reordered.
    values = np.sort(values)
    counts = rng.binomial(n_total, m / n_total, size=n_boot) if m < n_total else np.full(n_boot, m)
    with np.errstate(invalid="ignore", divide="ignore"):
        if m * n_boot <= _PLAIN_BOOTSTRAP_MAX_DRAWS:
            sums = np.array([values[rng.integers(0, m, size=c)].sum() for c in counts])
        else:
            sums = stratified_sums(values, counts, rng)
        return np.where(counts > 0, sums / counts, np.nan)


def stratified_sums(sorted_values: np.ndarray, counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    m = len(sorted_values)
    edges = np.linspace(0, m, min(_STRATA, m) + 1).round().astype(np.int64)
    sizes = np.diff(edges)
    sums = np.add.reduceat(sorted_values, edges[:-1])
    squares = np.add.reduceat(sorted_values * sorted_values, edges[:-1])
    means = sums / sizes
    sds = np.sqrt(np.maximum(squares / sizes - means * means, 0.0))
    per_stratum = rng.multinomial(counts, sizes / m)  # (n_boot, strata): exact
    noise = rng.standard_normal(per_stratum.shape) * np.sqrt(per_stratum) * sds
    return (per_stratum * means + noise).sum(axis=1)


def boot_median(values: np.ndarray, n_total: int, rng: np.random.Generator, n_boot: int) -> np.ndarray:
    """Replicates of the median of `values` (m of n_total samples) under resampling n_total.

    Exact in distribution via order statistics of uniforms (see the module docstring).
    """
    m = len(values)
    if m == 0 or n_total == 0:
        return np.full(n_boot, np.nan)
    ordered = np.sort(values)
    counts = rng.binomial(n_total, m / n_total, size=n_boot) if m < n_total else np.full(n_boot, m)
    out = np.full(n_boot, np.nan)
    have = counts > 0
    c = counts[have]
    k = (c + 1) // 2  # the lower middle (the middle for odd c)
    u_k = rng.beta(k, c - k + 1)
    # the next order statistic: the smallest of the c - k uniforms above u_k
    above = np.maximum(c - k, 1)
    u_next = u_k + (1.0 - u_k) * rng.beta(1, above)

    def quantile(u: np.ndarray) -> np.ndarray:
        return ordered[np.clip(np.ceil(u * m).astype(np.int64) - 1, 0, m - 1)]

    lower = quantile(u_k)
    out[have] = np.where(c % 2 == 1, lower, (lower + quantile(u_next)) / 2.0)
    return out


# --------------------------------------------------------------------------- summaries
