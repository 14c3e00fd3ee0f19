"""Shared pytest fixtures. Keep each one small and documented: several test files use them."""

from __future__ import annotations

from pathlib import Path

import pytest

from greval.testing import make_fixture_bench


@pytest.fixture(scope="session")
def fixture_bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 24-sample GREval-Bench-layout folder (seed 0, scene labels in the data). Read-only:
    tests that modify data should call make_fixture_bench into their own tmp_path."""
    return make_fixture_bench(tmp_path_factory.mktemp("fixture_bench"), n=24, seed=0)


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Qwen2.5-VL (greval.testing.build_tiny_vlm), built once per session.
    Read-only: a test that changes a checkpoint copies it first. Files that use it start
    with `require("transformers", "local")` and `require("torchvision", "local")`."""
    from greval.testing import build_tiny_vlm

    return build_tiny_vlm(tmp_path_factory.mktemp("tiny") / "qwen")


@pytest.fixture(autouse=True)
def _own_response_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test gets an empty response cache (greval/cache.py), never the user's
    ~/.cache/greval: an answer cached by one test must not answer another."""
    monkeypatch.setenv("GREVAL_CACHE_DIR", str(tmp_path / "greval-cache"))
