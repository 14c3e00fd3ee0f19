"""The options `greval run` and `greval judge` share, defined once (click only).

Both commands send requests through an adapter: the same flags set the same adapter
options (`--concurrency` is `-M concurrency=N`), and `-M KEY=VALUE` sets any other one.
`run` marks the adapter-specific ones with the adapters they apply to ("[api] ..."); the
judge always asks through the `openai` adapter, so its help needs no marks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click


def model_call_options(*, for_run: bool) -> Callable[[Callable], Callable]:
    """Decorator adding the shared options to a command (`for_run`: tag the adapter-specific ones)."""

    def tag(adapters: str) -> str:
        return f"[{adapters}] " if for_run else ""

    options = [
        click.option(
            "--limit",
            type=click.IntRange(min=1),
            help=f"{'Use only the first N samples' if for_run else 'Judge at most N samples'} of each task (a quick check).",
        ),
        click.option(
            "--base-url", help=f"{tag('openai, anthropic')}Server URL, e.g. http://127.0.0.1:8000/v1 for `vllm serve`."
        ),
        click.option(
            "--api-key-env",
            help=f"{tag('openai, anthropic')}Environment variable holding the key "
            f"[default: OPENAI_API_KEY{' / ANTHROPIC_API_KEY' if for_run else ''}].",
        ),
        click.option(
            "--concurrency", type=click.IntRange(min=1), help=f"{tag('api')}Requests in flight at once [default: 16]."
        ),
        click.option(
            "--request-timeout",
            type=click.FloatRange(min=0.1),
            help=f"{tag('api')}Seconds before one attempt is abandoned.",
        ),
        click.option(
            "--max-attempts", type=click.IntRange(min=1), help=f"{tag('api')}Attempts per request, retries included."
        ),
        click.option(
            "--prices",
            type=click.Path(exists=True, dir_okay=False),
            help=f"{tag('api')}JSON/YAML price table overriding the built-in one.",
        ),
        click.option("--no-cache", is_flag=True, help=f"{tag('api')}Do not read or write the response cache."),
        click.option(
            "-M",
            "--option",
            "extra",
            multiple=True,
            metavar="KEY=VALUE",
            help="Any adapter option, value read as YAML (repeatable): -M concurrency=16 -M detail=high. "
            "Unknown keys are refused; `greval adapters NAME` lists an adapter's options.",
        ),
        click.option("--quiet", "-q", is_flag=True, help="No progress bar."),
    ]

    def apply(command: Callable) -> Callable:
        for decorate in reversed(options):  # the order of the list is the order in --help
            command = decorate(command)
        return command

    return apply


# The settings a command itself passes the adapter (and records as its own): -M may not set
# them, or run.json would record one value while the adapter used another. name -> what to do.
RUN_SETTINGS = {"seed": "use --seed", "max_new_tokens": "use --max-tokens", "temperature": "use --temperature"}
JUDGE_SETTINGS = {
    "seed": "the judge sets it (a new seed for each re-ask)",
    "max_new_tokens": "use --max-tokens",
    "temperature": "the judge always asks at temperature 0",
}


def adapter_options(flags: dict[str, Any], extra: tuple[str, ...], settings: dict[str, str]) -> dict[str, Any]:
    """The adapter's options: the flags given (unset ones dropped), then each -M KEY=VALUE.
    A -M that contradicts a flag given for the same option is refused, not silently ranked;
    so is a -M naming one of the command's own `settings`."""
    options = {k: v for k, v in flags.items() if v not in (None, False)}
    for key, value in parse_model_options(extra).items():
        if key in settings:
            raise click.UsageError(
                f"-M {key}: this is a setting of the command, not an adapter option; {settings[key]}"
            )
        if key in options and options[key] != value:
            raise click.UsageError(
                f"-M {key}={value!r} contradicts the flag --{key.replace('_', '-')} {options[key]!r}"
            )
        options[key] = value
    return options


def parse_model_options(items: tuple[str, ...]) -> dict[str, Any]:
    """-M KEY=VALUE pairs, each value read as YAML (16 -> int, high -> str, [a, b] -> list)."""
    import yaml

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="-M")
        name = key.strip().replace("-", "_")
        try:
            out[name] = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError:
            out[name] = value
    return out
