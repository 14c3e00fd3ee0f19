"""What every API adapter shares: between a `Request` and a `Response`.

`ApiAdapter.agenerate` takes each request through the same steps:

1. prepare (in a worker thread, so the event loop never waits on it): read the image
   bytes and resize / re-encode them only when they must (`prepare_image`), then base64;
2. budget: with `--max-cost`, reserve the request's worst-case cost before sending, or
   do not send it at all (`Budget`);
3. send under the retry policy (`RetryPolicy`, adapters/_retry.py), which owns the
   retries: backoff, `Retry-After`, a per-attempt timeout, a bounded number of attempts,
   the breaker that stops a run whose endpoint is wrong (`Breaker`, adapters/_faults.py).
   An empty answer is retried like a fault; after the last attempt it is returned as
   empty text (`text == ""`, `finish_reason` as the provider said it), which the parser
   records as "empty";
4. account: tokens and cost per sample, totals in `ApiStats` (`run_summary()`).

The response cache is not here: `greval.cache.with_cache` puts it in front of any adapter
(the run and the judge send through it), so a request it answers never reaches this class.

The parts, each in one place: a provider (openai.py, anthropic.py: a subclass that builds
the SDK client and the request and reads the reply: `_make_client`, `_call`,
`_image_token_estimate`, and `classify` when its faults need another reading), the retry
policy, the budget (adapters/_budget.py), the stats (`ApiStats`), and concurrency: the
`--concurrency` slots of `_LoopState`, which also size the HTTP connection pool. Adding a
provider is one adapter file.

How cost counts: `Response.cost_usd` is what THIS run paid for the sample, summed over
every billed attempt (an empty answer that was retried was still billed), so summing
`cost_usd` over a run folder's records gives its true spend (a cache hit costs 0.0 now;
greval/cache.py); `run_summary()` counts only tokens paid for in this run.

A request that still fails is a `Response(error=...)` naming the cause ("rate_limit",
"server_error", "timeout", ...): the run records it as an error and retries it on the
next run; it is never scored and never dropped.
"""

from __future__ import annotations

import asyncio
import logging
import os
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from greval.adapters._budget import Budget, worst_case_cost
from greval.adapters._faults import Breaker, Fault, RateGate, classify, unreachable_message
from greval.adapters._images import ImageSettings, PreparedImage, prepare_image
from greval.adapters._retry import Completion, Outcome, RetryPolicy

from greval.adapter import Adapter, AdapterError, option
from greval.cache import CacheOptions
from greval.pricing import Price, PriceTable
from greval.types import Request, Response, Usage, image_problem

log = logging.getLogger(__name__)

# 16 requests in flight: with ~5-15 s per vision request that is ~60-200 requests a
# minute, inside the lowest paid rate-limit tiers of OpenAI and Anthropic for their
# main models, while a 3,000-sample run still finishes in well under an hour. Raise it
# (`--concurrency 64`) on higher tiers or a local vLLM server.
DEFAULT_CONCURRENCY = 16
DEFAULT_REQUEST_TIMEOUT_S = 180.0  # reasoning models can think for minutes
DEFAULT_MAX_ATTEMPTS = 6  # 1 + 5 retries; with backoff up to 60 s, ~2-3 minutes of outage survived
DEFAULT_JPEG_QUALITY = 90


# Formats both APIs accept as they are; anything else is re-encoded as JPEG.
def http_pool(sdk: Any, concurrency: int) -> Any:
    """One keep-alive connection pool for the whole run, sized for the concurrency, built
    with the SDK's own default client class (so its timeouts and redirects stay)."""
    try:
        import httpx2 as httpx  # what current SDKs are built on
    except ImportError:  # older SDKs
        import httpx  # type: ignore[no-redef]
    size = concurrency + 8  # room for connections the server closed while we reuse others
    client_class = getattr(sdk, "DefaultAsyncHttpx2Client", None) or sdk.DefaultAsyncHttpxClient
    return client_class(limits=httpx.Limits(max_connections=size, max_keepalive_connections=size))


# -- the adapter base --------------------------------------------------------------------


class _LoopState:
    """Everything bound to one event loop (asyncio primitives, the SDK's HTTP pool). `slots`
    is where concurrency is limited: at most `--concurrency` requests in flight."""

    def __init__(self, adapter: ApiAdapter) -> None:
        self.loop = asyncio.get_running_loop()
        self.client = adapter._make_client()
        self.slots = asyncio.Semaphore(adapter.concurrency)
        self.gate = RateGate()
        self.budget = Budget(adapter.max_cost) if adapter.max_cost is not None else None
        if self.budget is not None and adapter.stats.cost_usd:
            self.budget.spent = adapter.stats.cost_usd  # a second asyncio.run of the same adapter


def _int_option(options: dict[str, Any], name: str, default: int | None) -> int | None:
    value = options.get(name)
    return default if value is None else int(value)


@dataclass
class ApiStats:
    """What an API adapter did in this run; `summary()` is run.json's adapter_summary.
    Tokens and costs count what this run paid for (cache hits never reach the adapter)."""

    requests: int = 0
    sent: int = 0
    attempts: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float = 0.0
    cost_unknown_requests: int = 0
    errors: int = 0
    empty: int = 0
    truncated: int = 0
    not_sent_max_cost: int = 0
    retries_by_cause: Counter[str] = field(default_factory=Counter)
    errors_by_cause: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)

    def paid(self, latency_s: float, usage: Usage, cost_usd: float | None) -> None:
        """One sent request settled: its latency, and what its billed attempts cost."""
        self.latencies.append(latency_s)
        self.input_tokens += usage.input_tokens
        self.output_tokens += usage.output_tokens
        self.reasoning_tokens += usage.reasoning_tokens
        if cost_usd is None:
            self.cost_unknown_requests += 1
        else:
            self.cost_usd += cost_usd

    def summary(self, *, priced: bool, max_cost: float | None, max_cost_stopped: bool) -> dict[str, Any]:
        counts = {
            f.name: getattr(self, f.name) for f in fields(self) if isinstance(getattr(self, f.name), (int, float))
        }
        lat = sorted(self.latencies)
        return {
            **counts,
            "cost_usd": round(self.cost_usd, 6),
            "retries": sum(self.retries_by_cause.values()),
            "retries_by_cause": dict(self.retries_by_cause),
            "errors_by_cause": dict(self.errors_by_cause),
            "cost_complete": self.cost_unknown_requests == 0 and priced,
            "max_cost_usd": max_cost,
            "max_cost_stopped": max_cost_stopped,
            "latency_s_p50": round(statistics.median(lat), 3) if lat else None,
            "latency_s_p95": round(lat[min(len(lat) - 1, int(0.95 * len(lat)))], 3) if lat else None,
        }


@dataclass
class ApiOptions(CacheOptions):
    """Options every API adapter takes (`-M KEY=VALUE` or the flag of the same name)."""

    base_url: str | None = option(help="OpenAI-compatible server URL")
    api_key_env: str | None = option(help="the environment variable holding the key")
    concurrency: int | None = option(help="requests in flight")
    request_timeout: float | None = option(help="seconds per attempt")
    max_attempts: int | None = option(help="attempts per request")
    backoff_base: float | None = option(help="seconds: first retry wait")
    backoff_max: float | None = option(help="seconds: longest retry wait")
    max_image_side: int | None = option(answer=True, help="longest image side sent, pixels")
    max_pixels: int | None = option(answer=True, help="most pixels sent")
    jpeg_quality: int | None = option(answer=True, help="re-encoding quality")
    reasoning_effort: str | None = option(answer=True, help="reasoning models' effort")
    prices: str | None = option(help="price file")
    max_cost: float | None = option(help="USD budget")


def _endpoint(adapter: ApiAdapter, options: dict[str, Any]) -> tuple[str | None, str, str]:
    """The base URL (the option, else the provider's environment variable), the name of the
    key's variable, and the key. Without a key only a local server (a base URL) will do."""
    base_url: str | None = (
        (options.get("base_url") or os.environ.get(adapter.base_url_env) or None)
        if adapter.base_url_env
        else options.get("base_url")
    )
    if base_url:
        base_url = base_url.rstrip("/")
    key_var = options.get("api_key_env") or adapter.key_env
    key = os.environ.get(key_var, "").strip()
    if not key:
        if base_url is None:
            raise AdapterError(
                f"{key_var} is not set: export it, or name the variable that holds the key with --api-key-env"
            )
        key = "not-needed"  # a local server usually checks nothing; the SDK insists on a value
    return base_url, key_var, key


def _unsent(budget: Budget, stats: ApiStats, meta: dict[str, Any]) -> Response:
    """A request --max-cost did not let go: an error that a re-run with a larger budget sends."""
    if not stats.not_sent_max_cost:
        log.warning(
            "--max-cost $%.2f reached (spent $%.4f): no new requests are sent; "
            "unsent samples are recorded as errors and sent by a re-run with a larger budget",
            budget.limit,
            budget.spent,
        )
    stats.not_sent_max_cost += 1
    return Response(
        error=f"not sent: --max-cost budget of ${budget.limit:.2f} reached "
        f"(spent ${budget.spent:.4f}); re-run with a larger --max-cost to send it",
        attempts=0,
        meta={**meta, "not_sent": "max_cost"},
    )


class ApiAdapter(Adapter):
    Options: ClassVar[type] = ApiOptions
    """Base for API adapters: a provider subclass builds the SDK client, the request and
    reads the reply; this class runs everything around it (see the module docstring)."""

    kind: ClassVar[str] = "api"
    batch_size = 1
    key_env: ClassVar[str] = ""
    base_url_env: ClassVar[str] = ""
    provider_url: ClassVar[str] = ""
    default_max_side: ClassVar[int | None] = None
    default_max_pixels: ClassVar[int | None] = None
    max_image_bytes: ClassVar[int] = 20 * 1024 * 1024

    def __init__(self, model: str | None = None, **options: Any) -> None:
        super().__init__(model, **options)
        if not model:
            raise AdapterError(f"the {self.name} adapter needs --model (e.g. {self._example_model()})")
        self.base_url, self.key_var, self._api_key = _endpoint(self, options)
        self.concurrency = max(1, _int_option(options, "concurrency", DEFAULT_CONCURRENCY))
        self.request_timeout = float(options.get("request_timeout") or DEFAULT_REQUEST_TIMEOUT_S)
        self.retry = RetryPolicy(
            classify=self.classify,
            max_attempts=max(1, _int_option(options, "max_attempts", DEFAULT_MAX_ATTEMPTS)),
            request_timeout=self.request_timeout,
            backoff_base=float(options.get("backoff_base", 1.0)),
            backoff_max=float(options.get("backoff_max", 60.0)),
        )
        self.breaker = Breaker(self.sdk, self._unreachable_message)
        self.images = ImageSettings(
            max_side=_int_option(options, "max_image_side", self.default_max_side) or None,
            max_pixels=_int_option(options, "max_pixels", self.default_max_pixels) or None,
            jpeg_quality=_int_option(options, "jpeg_quality", DEFAULT_JPEG_QUALITY),
            max_bytes=self.max_image_bytes,
        )
        self.reasoning_effort = options.get("reasoning_effort") or None
        self.max_new_tokens = _int_option(options, "max_new_tokens", None)
        self.temperature = None if options.get("temperature") is None else float(options["temperature"])
        self.seed = _int_option(options, "seed", None)
        self.prices = PriceTable(options.get("prices"))
        self.price: Price | None = self.prices.price_or_warn(model)
        max_cost = options.get("max_cost")
        self.max_cost = None if max_cost is None else float(max_cost)
        if self.max_cost is not None and self.price is None:
            raise AdapterError(
                f"--max-cost needs a price for model {model!r}, and greval has none: give one with --prices FILE "
                '(JSON: {"' + model + '": {"input": USD_PER_1M, "output": USD_PER_1M}})'
            )
        self._state_: _LoopState | None = None
        self.stats = ApiStats()
        self._observed_max_input = 0  # the largest billed input: a floor for --max-cost estimates

    # -- the provider's part: a subclass defines these -------------------------------------
    sdk: ClassVar[Any] = None

    def _example_model(self) -> str:
        return "MODEL"

    def _make_client(self) -> Any:
        """The SDK's async client, e.g. `openai.AsyncOpenAI(**self.client_options())`."""
        raise NotImplementedError

    def client_options(self) -> dict[str, Any]:
        """What every provider's SDK client is built with: greval owns retries and timeouts."""
        return {
            "api_key": self._api_key,
            "base_url": self.base_url,
            "max_retries": 0,  # greval owns retries: every attempt is counted once
            "timeout": (self.request_timeout or DEFAULT_REQUEST_TIMEOUT_S) + 5,  # greval's own timeout fires first
            "http_client": http_pool(self.sdk, self.concurrency),
        }

    async def _call(
        self, client: Any, request: Request, image: PreparedImage | None, gen: dict[str, Any]
    ) -> Completion:
        """Build the request, send it once, read the reply (the retry policy calls this)."""
        raise NotImplementedError

    def _image_token_estimate(self, image: PreparedImage) -> int:
        raise NotImplementedError

    def _settings_key(self) -> dict[str, Any]:
        """Adapter-specific settings that change the answer (e.g. OpenAI's `detail`)."""
        return {}

    def _max_output_tokens(self, gen: dict[str, Any]) -> int:
        return int(gen["max_tokens"])

    def classify(self, exc: BaseException) -> Fault:
        """The retry policy's reading of one failed attempt; a provider may refine it."""
        return classify(exc, self.sdk)

    # -- the contract ------------------------------------------------------------------------
    def generation(self, request: Request) -> dict[str, Any]:
        """The effective generation settings: the task's, overridden from the command line."""
        g = request.generation
        return {
            "max_tokens": self.max_new_tokens if self.max_new_tokens is not None else g.max_tokens,
            "temperature": self.temperature if self.temperature is not None else g.temperature,
            "top_p": g.top_p,
            "seed": request.seed if request.seed is not None else self.seed,
            "reasoning_effort": self.reasoning_effort,
        }

    def cache_key_extra(self) -> dict[str, Any] | None:
        return {"base_url": self.base_url or self.provider_url, "images": self.images.key(), **self._settings_key()}

    async def agenerate(self, requests: list[Request]) -> list[Response]:
        return list(await asyncio.gather(*(self._one(r) for r in requests)))

    def info(self) -> dict[str, Any]:
        sdk = self.sdk
        return {
            "adapter": self.name,
            "model": self.model,
            "kind": self.kind,
            "base_url": self.base_url or self.provider_url,
            "api_key_env": self.key_var,  # the variable's name, never its value
            "sdk": f"{sdk.__name__} {sdk.__version__}",
            "concurrency": self.concurrency,
            "request_timeout_s": self.request_timeout,
            "max_attempts": self.retry.max_attempts,
            "images": self.images.key(),
            "generation_overrides": {
                "max_new_tokens": self.max_new_tokens,
                "temperature": self.temperature,
                "seed": self.seed,
                "reasoning_effort": self.reasoning_effort,
            },
            **self._settings_key(),
            "price": None
            if self.price is None
            else {
                "input_per_1m": self.price.input_per_m,
                "output_per_1m": self.price.output_per_m,
                "source": self.price.source,
            },
            "max_cost_usd": self.max_cost,
        }

    def run_summary(self) -> dict[str, Any]:
        """Totals for run.json and the end-of-run summary. Costs are what this run paid."""
        budget = self._state_.budget if self._state_ else None
        return self.stats.summary(
            priced=self.price is not None, max_cost=self.max_cost, max_cost_stopped=bool(budget and budget.stopped)
        )

    # -- one request ---------------------------------------------------------------------
    def _state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        if self._state_ is None or self._state_.loop is not loop:
            self._state_ = _LoopState(self)
        return self._state_

    async def _one(self, request: Request) -> Response:
        state = self._state()
        self.stats.requests += 1
        gen = self.generation(request)
        async with state.slots:
            started = time.perf_counter()
            try:
                image = await asyncio.to_thread(self._prepare, request)
            except Exception as exc:  # unreadable image: the sample's own data problem, named
                return Response(data_problem=image_problem(request.sample, exc), attempts=0)
            meta = image.meta() if image is not None else {}
            estimate = 0.0
            if state.budget is not None:
                estimate = self._estimate_cost(request, image, gen)
                if not await state.budget.reserve(estimate):
                    return _unsent(state.budget, self.stats, meta)
            outcome = Outcome()
            try:
                self.stats.sent += 1
                await self.retry.run(
                    lambda: self._call(state.client, request, image, gen),
                    outcome,
                    gate=state.gate,
                    breaker=self.breaker,
                    bill=self._bill,
                )
            finally:
                self.stats.attempts += outcome.attempts
                if state.budget is not None:
                    paid = outcome.cost_usd
                    await state.budget.settle(estimate, paid if paid is not None else estimate)
            response = self._response(outcome, meta)
            response.latency_s = time.perf_counter() - started
        self.stats.paid(response.latency_s, outcome.usage, outcome.cost_usd)
        return response

    def _bill(self, completion: Completion) -> float | None:
        """A billed attempt: what it cost (None: no price)."""
        self._observed_max_input = max(self._observed_max_input, completion.usage.input_tokens)
        return self._cost(completion.usage)

    def _cost(self, usage: Usage) -> float | None:
        return None if self.price is None else self.price.cost(usage.input_tokens, usage.output_tokens)

    def _response(self, outcome: Outcome, meta: dict[str, Any]) -> Response:
        """The sample's Response from its attempts: the answer, an empty answer after the
        last attempt, or an error naming its cause; usage and cost of every billed attempt."""
        fault, faults, n = outcome.fault, outcome.faults, outcome.attempts
        paid: dict[str, Any] = {"usage": outcome.usage, "cost_usd": outcome.cost_usd, "attempts": n}
        if fault is None:
            completion = outcome.completion
            assert completion is not None
            self.stats.retries_by_cause.update(faults)
            if completion.finish_reason == "length":
                self.stats.truncated += 1
            meta = {**meta, **completion.meta, **({"retries": faults} if faults else {})}
            return Response(text=completion.text, finish_reason=completion.finish_reason, meta=meta, **paid)
        self.stats.retries_by_cause.update(faults[:-1])
        if fault.cause == "empty":  # bounded retries spent: an answer that is empty, recorded as such
            self.stats.empty += 1
            last = fault.billed
            meta = {**meta, **last.meta, "empty_attempts": faults.count("empty"), "retries": faults[:-1]}
            return Response(text="", finish_reason=last.finish_reason, meta=meta, **paid)
        self.stats.errors_by_cause[fault.cause] += 1
        self.stats.errors += 1
        error = f"{fault.cause}: {self._redact(str(fault))} (after {n} attempt{'s' if n != 1 else ''})"
        return Response(error=error, meta={**meta, "error_cause": fault.cause, "retries": faults[:-1]}, **paid)

    def _prepare(self, request: Request) -> PreparedImage | None:
        """Worker-thread part: read the image and prepare it for sending."""
        sample = request.sample
        raw = sample.image_bytes() if sample.has_image else None
        return prepare_image(raw, self.images) if raw is not None else None

    # -- the budget (adapters/_budget.py) --------------------------------------------------
    def _estimate_cost(self, request: Request, image: PreparedImage | None, gen: dict[str, Any]) -> float:
        """Worst case for --max-cost: generous input estimate, the full output allowance."""
        assert self.price is not None
        image_tokens = self._image_token_estimate(image) if image is not None else 0
        text_chars = len(request.prompt) + len(request.system or "")
        return worst_case_cost(
            self.price, text_chars, image_tokens, self._max_output_tokens(gen), self._observed_max_input
        )

    # -- messages ----------------------------------------------------------------------------
    def _unreachable_message(self, fault: Fault, exc: BaseException) -> str:
        state = self._state_
        client_url = getattr(state.client, "base_url", "") if state is not None else ""
        url = self.base_url or str(client_url or self.provider_url)
        root = exc.__cause__ or exc  # the transport's own words: "[Errno 111] Connection refused"
        cause = self._redact(f"{type(root).__name__}: {root}" if fault.cause == "connection" else str(fault))
        return unreachable_message(self.name, url, self.base_url, self.key_var, self.model, cause, fault)

    def _redact(self, text: str) -> str:
        """Error text goes into records and logs: never let the key ride along."""
        if self._api_key and len(self._api_key) > 8:
            text = text.replace(self._api_key, "***")
        return text
