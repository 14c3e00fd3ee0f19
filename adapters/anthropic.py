"""Anthropic Messages API (Claude), and any server that speaks it (`--base-url`, the host
root without `/v1`, as the SDK expects).

    greval run --adapter anthropic --model claude-sonnet-4-6 ...   # ANTHROPIC_API_KEY

Images go as base64 blocks before the prompt text (Anthropic's advice). They are capped
at 1568 px on the long side and 1.15 megapixels by default: Claude scales larger images
down to about that before the model sees them, so sending more only adds upload time
and latency (`--max-image-side` / `--max-pixels` change it). `--reasoning-effort` turns on
extended thinking: a number is a thinking budget in tokens (added on top of the answer's
max tokens), a word (low, medium, high, …) asks for adaptive thinking at that effort.
Thinking tokens are billed as output and recorded as reasoning tokens. The Messages API
takes no temperature or seed (the SDK has neither): the task's greedy setting cannot be
sent, so runs of Claude are not bit-reproducible; `info()` says so. Retries,
timeouts, images, cache and cost: adapters/_api.py.
"""

from __future__ import annotations

from typing import Any, ClassVar

import anthropic
from greval.adapters._api import ApiAdapter, Completion, PreparedImage

from greval.adapter import register
from greval.types import Request, Usage

_STOP_REASONS = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length"}


@register("anthropic")
class AnthropicAdapter(ApiAdapter):
    sdk: ClassVar[Any] = anthropic
    key_env: ClassVar[str] = "ANTHROPIC_API_KEY"
    base_url_env: ClassVar[str] = "ANTHROPIC_BASE_URL"
    provider_url: ClassVar[str] = "https://api.anthropic.com"
    default_max_side: ClassVar[int | None] = 1568
    default_max_pixels: ClassVar[int | None] = 1_150_000
    max_image_bytes: ClassVar[int] = 5 * 1024 * 1024  # the API's per-image limit

    def _example_model(self) -> str:
        return "claude-sonnet-4-6"

    def _make_client(self) -> anthropic.AsyncAnthropic:
        return anthropic.AsyncAnthropic(**self.client_options())

    def info(self) -> dict[str, Any]:
        sent = "sent as given" if self.options.get("temperature") is not None else "not sent: the Messages API has none"
        return {**super().info(), "temperature": sent, "seed": "not sent: the Messages API has none"}

    def _thinking_budget(self, gen: dict[str, Any]) -> int:
        effort = gen["reasoning_effort"]
        return int(effort) if effort and str(effort).isdigit() else 0

    def _max_output_tokens(self, gen: dict[str, Any]) -> int:
        return int(gen["max_tokens"]) + self._thinking_budget(gen)

    def build_params(self, request: Request, image: PreparedImage | None, gen: dict[str, Any]) -> dict[str, Any]:
        """The Messages body for one request (public so tests can read it)."""
        content: list[dict[str, Any]] = []
        if image is not None:
            content.append(
                {"type": "image", "source": {"type": "base64", "media_type": image.media_type, "data": image.b64()}}
            )
        content.append({"type": "text", "text": request.prompt})
        params: dict[str, Any] = {
            "model": self.model,
            "max_tokens": self._max_output_tokens(gen),
            "messages": [{"role": "user", "content": content}],
        }
        if request.system:
            params["system"] = request.system
        effort = gen["reasoning_effort"]
        if effort:
            if str(effort).isdigit():
                params["thinking"] = {"type": "enabled", "budget_tokens": int(effort)}
            else:
                params["thinking"] = {"type": "adaptive"}
                params["output_config"] = {"effort": str(effort)}
        elif self.options.get("temperature") is not None:
            # The Messages API (SDK 2.x) has no sampling parameters any more; an explicit
            # --temperature is still passed through for servers that take one.
            params["extra_body"] = {"temperature": gen["temperature"]}
        # No seed parameter either: `--seed` is recorded but cannot be sent.
        return params

    async def _call(
        self, client: anthropic.AsyncAnthropic, request: Request, image: PreparedImage | None, gen: dict[str, Any]
    ) -> Completion:
        reply = await client.messages.create(**self.build_params(request, image, gen))
        texts, thinking = [], []
        for block in reply.content or []:
            if block.type == "text":
                texts.append(block.text)
            elif block.type == "thinking":
                thinking.append(block.thinking)
        meta: dict[str, Any] = {"model_reported": reply.model}
        if thinking:
            meta["reasoning"] = "\n".join(thinking)
        usage = Usage()
        if reply.usage is not None:
            u = reply.usage
            details = getattr(u, "output_tokens_details", None)
            usage = Usage(
                # Prompt-cache reads/writes are input too (billed at other rates; counted at the input price).
                input_tokens=(u.input_tokens or 0)
                + (u.cache_creation_input_tokens or 0)
                + (u.cache_read_input_tokens or 0),
                output_tokens=u.output_tokens or 0,  # includes thinking tokens
                reasoning_tokens=(getattr(details, "thinking_tokens", 0) or 0) if details else 0,
            )
        finish = _STOP_REASONS.get(reply.stop_reason or "", reply.stop_reason)
        return Completion(text="".join(texts), finish_reason=finish, usage=usage, meta=meta)

    def _image_token_estimate(self, image: PreparedImage) -> int:
        """Anthropic's rule of thumb: width × height / 750 tokens."""
        w, h = image.size
        return int(w * h / 750) + 1
