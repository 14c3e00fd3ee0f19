"""What an API request costs: USD per 1M input / output tokens, per model.

PRICES_AS_OF: list prices (standard tier, short context, text+image input, no batch or
prompt-cache discounts) as of 2026-06 for the newest models (OpenAI's pricing page as
quoted in June 2026; Anthropic's model pages), and the last list price we know for older
ones. Providers change them and add models often (a model newer than this table has no
price): check their pricing pages, and override or extend this table with
`--prices FILE` (JSON or YAML):

    {"gpt-4o": {"input": 2.5, "output": 10.0}, "my-vllm-model": {"input": 0, "output": 0}}

Output prices apply to reasoning/thinking tokens too: both OpenAI and Anthropic bill
them as output and include them in the reported output-token count. A model that is not
in the table has cost None (reported as unknown, with one warning), never a crash.
Lookup is by exact name, then by the longest table key the name starts with, so dated
snapshots (`gpt-4o-2024-08-06`, `claude-sonnet-4-5-20250929`) find their family and
`gpt-4o-mini` never falls back to `gpt-4o`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

PRICES_AS_OF = "2026-06"


@dataclass(frozen=True)
class Price:
    input_per_m: float  # USD per 1M input tokens
    output_per_m: float  # USD per 1M output tokens (reasoning included)
    source: str = f"built-in table, prices as of {PRICES_AS_OF}"

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input_per_m + output_tokens * self.output_per_m) / 1_000_000


# (input, output) USD per 1M tokens.
_BUILTIN: dict[str, tuple[float, float]] = {
    # OpenAI, current line-up (2026-06)
    "gpt-5.5": (5.00, 30.00),
    "gpt-5.5-pro": (30.00, 180.00),
    "gpt-5.4": (2.50, 15.00),
    "gpt-5.4-mini": (0.75, 4.50),
    "gpt-5.4-nano": (0.20, 1.25),
    "gpt-5.4-pro": (30.00, 180.00),
    # OpenAI, earlier models (last list price known to us, 2025-11)
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "chatgpt-4o-latest": (5.00, 15.00),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4.5-preview": (75.00, 150.00),
    "gpt-5": (1.25, 10.00),
    "gpt-5-mini": (0.25, 2.00),
    "gpt-5-nano": (0.05, 0.40),
    "gpt-5-chat-latest": (1.25, 10.00),
    "gpt-5.1": (1.25, 10.00),
    "o1": (15.00, 60.00),
    "o1-mini": (1.10, 4.40),
    "o1-pro": (150.00, 600.00),
    "o3": (2.00, 8.00),
    "o3-mini": (1.10, 4.40),
    "o3-pro": (20.00, 80.00),
    "o4-mini": (1.10, 4.40),
    # Anthropic, from platform.claude.com model pages (2026-06/07)
    "claude-fable-5-1": (10.00, 50.00),
    "claude-opus-5-5": (4.00, 20.00),
    "claude-opus-5": (5.00, 25.00),
    "claude-sonnet-5-5": (2.00, 10.00),
    "claude-sonnet-5": (3.00, 15.00),  # standard rate from 2026-09 (an introductory $2/$10 before)
    "claude-opus-4-7": (5.00, 25.00),
    "claude-opus-4-6": (5.00, 25.00),
    "claude-sonnet-4-6": (3.00, 15.00),
    # Anthropic, earlier models (2025-11)
    "claude-opus-4-5": (5.00, 25.00),
    "claude-opus-4-1": (15.00, 75.00),
    "claude-opus-4": (15.00, 75.00),
    "claude-sonnet-4-5": (3.00, 15.00),
    "claude-sonnet-4": (3.00, 15.00),
    "claude-haiku-4-5": (1.00, 5.00),
    "claude-3-7-sonnet": (3.00, 15.00),
    "claude-3-5-sonnet": (3.00, 15.00),
    "claude-3-5-haiku": (0.80, 4.00),
    "claude-3-opus": (15.00, 75.00),
    "claude-3-haiku": (0.25, 1.25),
    # Google (OpenAI-compatible endpoint; prompts ≤ 200k tokens)
    "gemini-3-pro-preview": (2.00, 12.00),
    "gemini-2.5-pro": (1.25, 10.00),
    "gemini-2.5-flash": (0.30, 2.50),
    "gemini-2.5-flash-lite": (0.10, 0.40),
    "gemini-2.0-flash": (0.10, 0.40),
    "gemini-2.0-flash-lite": (0.075, 0.30),
    "gemini-1.5-pro": (1.25, 5.00),
    "gemini-1.5-flash": (0.075, 0.30),
}


def load_price_file(path: str | Path) -> dict[str, Price]:
    """Read a user's price table: `{model: {"input": USD/1M, "output": USD/1M}}`."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"--prices: file not found: {path}")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        data: Any = yaml.safe_load(text)
    else:
        data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"--prices {path}: expected a mapping of model name to {{input, output}}")
    table = {}
    for model, entry in data.items():
        try:
            table[str(model)] = Price(float(entry["input"]), float(entry["output"]), source=f"--prices {path}")
        except (TypeError, KeyError, ValueError) as exc:
            raise ValueError(
                f"--prices {path}: model {model!r} needs numeric 'input' and 'output' (USD per 1M tokens)"
            ) from exc
    return table


class PriceTable:
    """The built-in table, overlaid with the user's file (theirs wins)."""

    def __init__(self, overrides: str | Path | dict[str, Price] | None = None) -> None:
        self.prices: dict[str, Price] = {name: Price(i, o) for name, (i, o) in _BUILTIN.items()}
        if isinstance(overrides, dict):
            self.prices.update(overrides)
        elif overrides:
            self.prices.update(load_price_file(overrides))
        self._warned: set[str] = set()

    def lookup(self, model: str | None) -> Price | None:
        if not model:
            return None
        if model in self.prices:
            return self.prices[model]
        # Provider prefixes as OpenRouter writes them ("openai/gpt-4o", "models/gemini-…").
        bare = model.rsplit("/", 1)[-1]
        if bare in self.prices:
            return self.prices[bare]
        matches = [key for key in self.prices if bare.startswith(key + "-") or bare.startswith(key + "@")]
        if matches:
            return self.prices[max(matches, key=len)]
        return None

    def price_or_warn(self, model: str | None) -> Price | None:
        price = self.lookup(model)
        if price is None and model not in self._warned:
            self._warned.add(model or "")
            log.warning(
                "no price known for model %r: its cost is reported as unknown (add it with --prices FILE)", model
            )
        return price
