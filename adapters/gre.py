"""GRE (Qwen2.5-VL-7B fine-tuned for geo-reasoning) with its own prompt.

    greval run --adapter gre --tasks urban,natural,landmark --data ~/data/GREval-Bench
    greval run --adapter gre --model ./my-gre-checkpoint --backend vllm --tasks all

The model answers `<think> … </think><answer>{"Latitude": …, "Longitude": …}</answer>`;
greval prompts it with the `gre` template and reads the coordinates from the answer
tags. By default the weights come from the hub (`Anonymous0515/GRE`); `--model PATH`
takes a local folder, e.g. one written by greval's trainer. Inference runs on the `hf`
backend (transformers, the default) or `vllm` (`--backend vllm`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from greval.adapters.vllm import VLLMOptions

from greval.adapter import Adapter, AdapterError, option, register
from greval.types import Request, Response

GRE_HUB_ID = "Anonymous0515/GRE"
BACKENDS = ("hf", "vllm")


@dataclass
class GREOptions(VLLMOptions):
    backend: str | None = option(help="hf (transformers, default) or vllm")


@register("gre")
class GREAdapter(Adapter):
    Options = GREOptions
    kind = "open-weights"
    default_template = "gre"

    def __init__(self, model: str | None = None, *, backend: str | None = None, **options: Any) -> None:
        backend = (backend or "hf").lower()
        if backend not in BACKENDS:
            raise AdapterError(f"unknown --backend {backend!r} for gre: use hf or vllm")
        if backend == "vllm":
            from greval.adapters.vllm import VLLMAdapter as backend_cls
        else:
            from greval.adapters.hf import HFAdapter as backend_cls
        checkpoint = model or GRE_HUB_ID
        try:
            self.backend = backend_cls(checkpoint, **options)
        except AdapterError as exc:
            raise AdapterError(f"GRE checkpoint {checkpoint}: {exc}") from exc
        super().__init__(checkpoint, **options)
        self.backend_name = backend
        self.batch_size = self.backend.batch_size

    def prepare(self, requests: list[Request]) -> None:
        if hasattr(self.backend, "prepare"):
            self.backend.prepare(requests)
            self.batch_size = self.backend.batch_size

    def input_size(self, request: Request):
        return self.backend.input_size(request) if hasattr(self.backend, "input_size") else (0, len(request.prompt))

    def generate(self, requests: list[Request]) -> list[Response]:
        return self.backend.generate(requests)

    def info(self) -> dict[str, Any]:
        return {
            **self.backend.info(),
            "adapter": self.name,
            "gre_backend": self.backend_name,
            "default_template": self.default_template,
        }

    def cache_key_extra(self) -> dict[str, Any] | None:
        return self.backend.cache_key_extra()

    def close(self) -> None:
        self.backend.close()
