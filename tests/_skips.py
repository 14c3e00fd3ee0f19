"""Skips that name the command which removes them.

A skipped test is only useful when the reader knows how to run it, so every optional
dependency the tests need is required through `require`, whose skip reason is the install
command (the same ones the README's Install section and `.ci/run` use).
"""

from __future__ import annotations

import shutil

import pytest

TORCH = "pip install torch==2.14.1 torchvision==0.29.1"
INSTALL = {
    "api": "pip install -e '.[api]'",
    "hub": "pip install -e '.[hub]'",
    "local": f"{TORCH} && pip install -e '.[local]'",
    "train": f"{TORCH} && pip install -e '.[train]'",
    "lmeval": "pip install -e '.[lmeval]'",
    "dev": "pip install -e '.[dev]'",
    "vllm": "pip install -e '.[vllm]' (on a CUDA machine)",
}
APT = {
    "chromium": "apt-get install -y chromium (or set GREVAL_CHROMIUM to a Chromium binary)",
    "pdflatex": "apt-get install -y texlive-latex-base texlive-latex-recommended",
}


def require(module: str, extra: str):
    """Import `module`, or skip with the command that installs greval's `extra`."""
    return pytest.importorskip(module, reason=f"{module} is not installed: {INSTALL[extra]}")


def no_program_reason(program: str) -> str | None:
    """None when `program` is on PATH, else a skip reason naming the apt command."""
    return None if shutil.which(program) else f"{program} is not on PATH: {APT[program]}"


def vllm_gpu_reason() -> str | None:
    """None where vLLM and a CUDA GPU are both here, else how to get them."""
    try:
        import vllm  # noqa: F401
    except ImportError:
        return f"vLLM is not installed: {INSTALL['vllm']}"
    import torch

    if not torch.cuda.is_available():
        return "no CUDA GPU: run `python -m pytest -m gpu` on a machine with one"
    return None
