"""OpenAI Chat Completions, and any server that speaks it (`--base-url`).

    greval run --adapter openai --model gpt-4o ...                 # OPENAI_API_KEY
    greval run --adapter openai --model Qwen/Qwen2.5-VL-7B-Instruct \\
        --base-url http://127.0.0.1:8000/v1 ...                    # `vllm serve`, no key needed
    greval run --adapter openai --model gemini-2.5-flash --api-key-env GEMINI_API_KEY \\
        --base-url https://generativelanguage.googleapis.com/v1beta/openai ...

Images go as base64 data URLs with `detail: high` by default (geolocation lives in small
details; `--detail low` sends 512 px thumbnails). Images are capped at 2048 px on the long
side by default: OpenAI scales anything larger down to that anyway, so sending more only
costs upload time. Reasoning models (o-series, gpt-5) get `max_completion_tokens` and
`--reasoning-effort`, and no temperature (they reject it); their reasoning tokens are
recorded. Retries, timeouts, images, cache and cost: adapters/_api.py.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, ClassVar

import openai
from greval.adapters._api import ApiAdapter, ApiOptions, Completion, PreparedImage

from greval.adapter import AdapterError, option, register
from greval.types import Request, Usage

# o1/o3/o4-…, gpt-5 and later (not the "-chat" models): no temperature / top_p.
_REASONING_MODEL = re.compile(r"^(?:[\w.-]+/)?(?:o\d|gpt-(?:[5-9]|\d\d)(?!.*-chat))")


@dataclass
class OpenAIOptions(ApiOptions):
    detail: str | None = option(answer=True, help="image detail: high (default), low or auto")


@register("openai")
class OpenAIAdapter(ApiAdapter):
    Options: ClassVar[type] = OpenAIOptions
    sdk: ClassVar[Any] = openai
    key_env: ClassVar[str] = "OPENAI_API_KEY"
    base_url_env: ClassVar[str] = "OPENAI_BASE_URL"
    provider_url: ClassVar[str] = "https://api.openai.com/v1"
    default_max_side: ClassVar[int | None] = 2048
    max_image_bytes: ClassVar[int] = 20 * 1024 * 1024

    def __init__(self, model: str | None = None, **options: Any) -> None:
        super().__init__(model, **options)
        self.detail = options.get("detail") or "high"
        if self.detail not in ("high", "low", "auto"):
            raise AdapterError(f"--detail must be high, low or auto, not {self.detail!r}")
        self.reasoning_model = bool(_REASONING_MODEL.match(self.model or ""))
        # OpenAI's own endpoint wants max_completion_tokens (reasoning models reject
        # max_tokens); OpenAI-compatible servers (vLLM, OpenRouter, Together) all take max_tokens.
        self.token_param = "max_completion_tokens" if self.base_url is None or self.reasoning_model else "max_tokens"

    def _example_model(self) -> str:
        return "gpt-4o"

    def _settings_key(self) -> dict[str, Any]:
        return {"detail": self.detail}

    def _make_client(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(**self.client_options())

    def build_params(self, request: Request, image: PreparedImage | None, gen: dict[str, Any]) -> dict[str, Any]:
        """The Chat Completions body for one request (public so tests can read it)."""
        content: list[dict[str, Any]] | str = []
        if image is not None:
            url = f"data:{image.media_type};base64,{image.b64()}"
            content.append({"type": "image_url", "image_url": {"url": url, "detail": self.detail}})
            content.append({"type": "text", "text": request.prompt})
        else:
            # A text-only request (an LLM judge): plain string content, which every
            # OpenAI-compatible server takes, text-only models included.
            content = request.prompt
        messages: list[dict[str, Any]] = []
        if request.system:
            messages.append({"role": "system", "content": request.system})
        messages.append({"role": "user", "content": content})
        params: dict[str, Any] = {"model": self.model, "messages": messages, self.token_param: gen["max_tokens"]}
        if not self.reasoning_model:
            params["temperature"] = gen["temperature"]
            if gen["top_p"] != 1.0:
                params["top_p"] = gen["top_p"]
        if gen["reasoning_effort"]:
            params["reasoning_effort"] = gen["reasoning_effort"]
        if gen["seed"] is not None:
            params["seed"] = gen["seed"]
        return params

    async def _call(
        self, client: openai.AsyncOpenAI, request: Request, image: PreparedImage | None, gen: dict[str, Any]
    ) -> Completion:
        reply = await client.chat.completions.create(**self.build_params(request, image, gen))
        if not reply.choices:
            raise ValueError("reply has no choices")
        choice = reply.choices[0]
        message = choice.message
        text = message.content or ""
        meta: dict[str, Any] = {"model_reported": reply.model}
        if not text and getattr(message, "refusal", None):
            text, meta["refusal"] = message.refusal, True
        # vLLM / DeepSeek-style servers return the chain of thought beside the answer.
        extra = message.model_extra or {}
        reasoning = extra.get("reasoning_content") or extra.get("reasoning")
        if isinstance(reasoning, str) and reasoning:
            meta["reasoning"] = reasoning
        usage = Usage()
        if reply.usage is not None:
            details = reply.usage.completion_tokens_details
            usage = Usage(
                input_tokens=reply.usage.prompt_tokens or 0,
                output_tokens=reply.usage.completion_tokens or 0,  # includes reasoning tokens
                reasoning_tokens=(details.reasoning_tokens or 0) if details else 0,
            )
        return Completion(text=text, finish_reason=choice.finish_reason, usage=usage, meta=meta)

    def _image_token_estimate(self, image: PreparedImage) -> int:
        """GPT-4o's tile rule: fit 2048², shortest side to 768, 170 per 512-px tile + 85."""
        if self.detail == "low":
            return 85
        w, h = image.size
        scale = min(1.0, 2048 / max(w, h))
        w, h = w * scale, h * scale
        scale = min(1.0, 768 / min(w, h))
        w, h = w * scale, h * scale
        return 85 + 170 * math.ceil(w / 512) * math.ceil(h / 512)
