"""What every API adapter shares: between a `Request` and a `Response`.

`ApiAdapter.agenerate` takes each request through the same steps:

1. prepare (in a worker thread, so the event loop never waits on it): read the image
   bytes once, hash them, look the answer up in the response cache, and only on a miss
   resize / re-encode the image when it must (`prepare_image`) and base64 it;
2. budget: with `--max-cost`, reserve the request's worst-case cost before sending, or
   do not send it at all (`Budget`);
3. send with retries owned by greval (`tenacity`): exponential backoff with full jitter,
   `Retry-After` honoured (and a 429 pauses every new attempt, not only the one that
   got it), a per-attempt timeout, a bounded number of attempts. The SDK's own retries
   are off, so every HTTP attempt is counted exactly once. An empty answer is retried
   like a fault; after the last attempt it is returned as empty text (`text == ""`,
   `finish_reason` as the provider said it), which the parser records as "empty";
4. account: tokens and cost per sample, totals for `run_summary()`; store real answers
   in the cache (never errors, never empty text).

How cost counts: `Response.cost_usd` is what THIS run paid for the sample, summed over
every billed attempt (an empty answer that was retried was still billed), so summing
`cost_usd` over a run folder's records gives its true spend. A cache hit cost nothing
now: `cost_usd == 0.0`, `cached=True`, and `meta["original_cost_usd"]` keeps what the
answer cost when it was bought. `usage` of a cache hit is the cached answer's token
counts (they describe the answer); `run_summary()` counts only tokens paid for in this
run, and cache hits separately.

A request that still fails is a `Response(error=...)` naming the cause ("rate_limit",
"server_error", "timeout", ...): the run records it as an error and retries it on the
next run; it is never scored and never dropped.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import hashlib
import io
import logging
import math
import os
import random
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, ClassVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, wait_random_exponential

from greval.adapter import Adapter, AdapterError, AdapterUnavailable, option
from greval.cache import ResponseCache, cache_key
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
RETRY_AFTER_CAP_S = 120.0  # a Retry-After longer than this (a daily quota) is not waited out per request

# Formats both APIs accept as they are; anything else is re-encoded as JPEG.
_MEDIA_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif"}
_EXIF_ORIENTATION = 0x0112
_EXIF_GPS_IFD = 0x8825


# -- images ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageSettings:
    max_side: int | None
    max_pixels: int | None
    jpeg_quality: int
    max_bytes: int  # the provider's per-image limit (decoded bytes)

    def key(self) -> dict[str, Any]:
        return {"max_side": self.max_side, "max_pixels": self.max_pixels, "jpeg_quality": self.jpeg_quality}


@dataclass
class PreparedImage:
    data: bytes
    media_type: str
    size: tuple[int, int]  # (width, height) as sent
    original_size: tuple[int, int]
    reencoded: str | None  # why it was re-encoded, None when sent byte for byte

    def b64(self) -> str:
        return base64.b64encode(self.data).decode("ascii")


def prepare_image(raw: bytes, settings: ImageSettings) -> PreparedImage:
    """The image as it will be sent: the original bytes whenever possible.

    Re-encoded (JPEG at `settings.jpeg_quality`) only when it must be: larger than
    `max_side` / `max_pixels` (then resized, aspect kept), a format the APIs do not take,
    EXIF GPS tags (they would leak the answer) or an EXIF rotation (the model should see
    the photo upright, as a person would), or over the provider's size limit.
    """
    from PIL import Image, ImageOps

    with Image.open(io.BytesIO(raw)) as img:
        width, height = img.size
        exif = img.getexif()
        scale = 1.0
        if settings.max_side and max(width, height) > settings.max_side:
            scale = settings.max_side / max(width, height)
        if settings.max_pixels and width * height * scale * scale > settings.max_pixels:
            scale = min(scale, math.sqrt(settings.max_pixels / (width * height)))
        if scale < 1.0:
            reason = "resized"
        elif img.format not in _MEDIA_TYPES:
            reason = f"format {img.format}"
        elif _EXIF_GPS_IFD in exif:
            reason = "exif_gps"
        elif exif.get(_EXIF_ORIENTATION, 1) != 1:
            reason = "exif_orientation"
        elif len(raw) > settings.max_bytes:
            reason = "too_large"
        else:
            return PreparedImage(raw, _MEDIA_TYPES[img.format], (width, height), (width, height), None)
        upright = ImageOps.exif_transpose(img)
        rgb = upright.convert("RGB")
    if scale < 1.0:
        new_size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
        rgb = rgb.resize(new_size, Image.Resampling.LANCZOS)
    quality = settings.jpeg_quality
    while True:
        out = io.BytesIO()
        rgb.save(out, format="JPEG", quality=quality)  # no exif= argument: metadata is dropped
        data = out.getvalue()
        if len(data) <= settings.max_bytes or quality <= 40:
            break
        quality -= 10
    return PreparedImage(data, "image/jpeg", rgb.size, (width, height), reason)


# -- faults and retries ------------------------------------------------------------------


class Fault(Exception):
    """One failed attempt, classified. `retryable` decides whether tenacity tries again."""

    def __init__(
        self, cause: str, message: str, *, retryable: bool = True, retry_after: float | None = None, billed: Any = None
    ) -> None:
        super().__init__(message)
        self.cause = cause
        self.retryable = retryable
        self.retry_after = retry_after
        self.billed = billed  # the Completion of an empty answer (it was paid for)


def parse_retry_after(headers: Any) -> float | None:
    """Seconds to wait from `retry-after-ms`, `retry-after` (seconds or an HTTP date)."""
    if headers is None:
        return None
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(0.0, float(value) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def classify(exc: BaseException, sdk: Any) -> Fault:
    """Map an SDK / transport exception onto a cause; decide if another attempt may help."""
    if isinstance(exc, Fault):
        return exc
    if isinstance(exc, (asyncio.TimeoutError, sdk.APITimeoutError)):
        return Fault("timeout", "no complete answer within --request-timeout")
    if isinstance(exc, sdk.APIStatusError):
        status = exc.status_code
        retry_after = parse_retry_after(getattr(exc.response, "headers", None))
        message = f"HTTP {status}: {exc.message}"
        if status == 429:
            return Fault("rate_limit", message, retry_after=retry_after)
        if status in (503, 529):
            return Fault("overloaded", message, retry_after=retry_after)
        if status >= 500:
            return Fault("server_error", message, retry_after=retry_after)
        if status in (408, 409):
            return Fault("server_error", message, retry_after=retry_after)
        if status in (401, 403):
            return Fault("auth", message, retryable=False)
        return Fault("bad_request", message, retryable=False)
    if isinstance(exc, sdk.APIConnectionError):
        return Fault("connection", f"connection failed: {exc}")
    if isinstance(exc, (ValueError, sdk.APIResponseValidationError)):
        # json.JSONDecodeError and pydantic errors are ValueErrors: a garbled reply body.
        return Fault("malformed", f"malformed response: {type(exc).__name__}: {exc}")
    return Fault("unexpected", f"{type(exc).__name__}: {exc}", retryable=False)


def _unreachable(exc: BaseException, sdk: Any) -> bool:
    """A fault that says the endpoint itself is wrong, not this request: no connection (refused,
    DNS, TLS), or 401 / 403 / 404 from the server. Timeouts, resets, 429 and 5xx are transient."""
    if isinstance(exc, sdk.APIStatusError):
        return exc.status_code in (401, 403, 404)
    # The transport's ConnectError (httpx, or the httpx2 newer SDKs use): refused, DNS or TLS
    # failure before any byte was exchanged. A reset or a cut stream after connecting
    # (ReadError, RemoteProtocolError) is transient.
    cause = type(exc.__cause__).__mro__ if exc.__cause__ is not None else ()
    return isinstance(exc, sdk.APIConnectionError) and any(c.__name__ == "ConnectError" for c in cause)


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, Fault) and exc.retryable


class RateGate:
    """After a 429 with Retry-After, no new attempt starts before the server asked."""

    def __init__(self) -> None:
        self.resume_at = 0.0

    def pause(self, seconds: float) -> None:
        self.resume_at = max(self.resume_at, time.monotonic() + min(seconds, RETRY_AFTER_CAP_S))

    async def wait(self) -> None:
        while (delay := self.resume_at - time.monotonic()) > 0:
            await asyncio.sleep(delay)


# -- budget ------------------------------------------------------------------------------


class Budget:
    """`--max-cost`: reserve a request's worst-case cost before sending it.

    A request is sent only if spent + reserved + its estimate stays within the limit.
    When it would not, it waits for in-flight requests to settle (their real cost is
    usually far below the reservation); if it still would not fit with nothing in
    flight, sending stops for the rest of the run and every later request is returned
    unsent. Requests in flight always finish and are recorded.
    """

    def __init__(self, limit_usd: float) -> None:
        self.limit = limit_usd
        self.spent = 0.0
        self.reserved = 0.0
        self.stopped = False
        self._cond = asyncio.Condition()

    async def reserve(self, estimate: float) -> bool:
        async with self._cond:
            while True:
                if self.stopped:
                    return False
                if self.spent + self.reserved + estimate <= self.limit:
                    self.reserved += estimate
                    return True
                if self.reserved <= 1e-12:
                    self.stopped = True
                    return False
                await self._cond.wait()

    async def settle(self, estimate: float, actual: float) -> None:
        async with self._cond:
            self.reserved = max(0.0, self.reserved - estimate)
            self.spent += actual
            self._cond.notify_all()


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


@dataclass
class Completion:
    """A parsed 200 reply."""

    text: str
    finish_reason: str | None
    usage: Usage
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Prepared:
    key: str | None
    image: PreparedImage | None = None
    cached: Any = None


class _LoopState:
    """Everything bound to one event loop (asyncio primitives, the SDK's HTTP pool)."""

    def __init__(self, adapter: ApiAdapter) -> None:
        self.loop = asyncio.get_running_loop()
        self.client = adapter._make_client()
        self.slots = asyncio.Semaphore(adapter.concurrency)
        self.gate = RateGate()
        self.budget = Budget(adapter.max_cost) if adapter.max_cost is not None else None
        if self.budget is not None and adapter._stats["cost_usd"]:
            self.budget.spent = adapter._stats["cost_usd"]  # a second asyncio.run of the same adapter


def _int_option(options: dict[str, Any], name: str, default: int | None) -> int | None:
    value = options.get(name)
    return default if value is None else int(value)


@dataclass
class ApiOptions:
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
    no_cache: bool | None = option(help="do not use the response cache")
    cache_dir: str | None = option(help="response cache folder")


class ApiAdapter(Adapter):
    Options: ClassVar[type] = ApiOptions
    """Base for API adapters: subclasses build the SDK client, the request and the parse."""

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
        self.base_url: str | None = (
            (options.get("base_url") or os.environ.get(self.base_url_env) or None)
            if self.base_url_env
            else options.get("base_url")
        )
        if self.base_url:
            self.base_url = self.base_url.rstrip("/")
        self.key_var = options.get("api_key_env") or self.key_env
        key = os.environ.get(self.key_var, "").strip()
        if not key:
            if self.base_url is None:
                raise AdapterError(
                    f"{self.key_var} is not set: export it, or name the variable that holds the key with --api-key-env"
                )
            key = "not-needed"  # a local server usually checks nothing; the SDK insists on a value
        self._api_key = key
        self.concurrency = max(1, _int_option(options, "concurrency", DEFAULT_CONCURRENCY))
        self.request_timeout = float(options.get("request_timeout") or DEFAULT_REQUEST_TIMEOUT_S)
        self.max_attempts = max(1, _int_option(options, "max_attempts", DEFAULT_MAX_ATTEMPTS))
        self.backoff_base = float(options.get("backoff_base", 1.0))
        self.backoff_max = float(options.get("backoff_max", 60.0))
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
        self.cache: ResponseCache | None = None if options.get("no_cache") else ResponseCache(options.get("cache_dir"))
        self._state_: _LoopState | None = None
        self._stats: dict[str, Any] = {
            "requests": 0,
            "sent": 0,
            "attempts": 0,
            "cached_hits": 0,
            "input_tokens": 0,
            "output_tokens": 0,
            "reasoning_tokens": 0,
            "cost_usd": 0.0,
            "cost_unknown_requests": 0,
            "cached_original_cost_usd": 0.0,
            "errors": 0,
            "empty": 0,
            "truncated": 0,
            "not_sent_max_cost": 0,
        }
        self._retries: Counter[str] = Counter()
        self._errors: Counter[str] = Counter()
        self._latencies: list[float] = []
        self._observed_max_input = 0
        self._reached = False  # the server answered once: from then on faults are per request

    # -- hooks for subclasses ------------------------------------------------------------
    sdk: ClassVar[Any] = None

    def _example_model(self) -> str:
        return "MODEL"

    def _make_client(self) -> Any:
        raise NotImplementedError

    async def _call(
        self, client: Any, request: Request, image: PreparedImage | None, gen: dict[str, Any]
    ) -> Completion:
        raise NotImplementedError

    def _image_token_estimate(self, image: PreparedImage) -> int:
        raise NotImplementedError

    def _settings_key(self) -> dict[str, Any]:
        """Adapter-specific settings that change the answer (e.g. OpenAI's `detail`)."""
        return {}

    # -- the contract ------------------------------------------------------------------------
    def generation(self, request: Request) -> dict[str, Any]:
        """The effective generation settings: the task's, overridden from the command line."""
        g = request.generation
        return {
            "max_tokens": self.max_new_tokens if self.max_new_tokens is not None else g.max_tokens,
            "temperature": self.temperature if self.temperature is not None else g.temperature,
            "top_p": g.top_p,
            "seed": self.seed,
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
            "max_attempts": self.max_attempts,
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
            "cache": str(self.cache.path) if self.cache else None,
        }

    def run_summary(self) -> dict[str, Any]:
        """Totals for run.json and the end-of-run summary. Costs are what this run paid."""
        s = dict(self._stats)
        budget = self._state_.budget if self._state_ else None
        lat = sorted(self._latencies)
        s.update(
            {
                "retries": sum(self._retries.values()),
                "retries_by_cause": dict(self._retries),
                "errors_by_cause": dict(self._errors),
                "cost_usd": round(s["cost_usd"], 6),
                "cost_complete": s["cost_unknown_requests"] == 0 and self.price is not None,
                "cached_original_cost_usd": round(s["cached_original_cost_usd"], 6),
                "max_cost_usd": self.max_cost,
                "max_cost_stopped": bool(budget and budget.stopped),
                "latency_s_p50": round(statistics.median(lat), 3) if lat else None,
                "latency_s_p95": round(lat[min(len(lat) - 1, int(0.95 * len(lat)))], 3) if lat else None,
            }
        )
        return s

    def close(self) -> None:
        if self.cache is not None:
            self.cache.close()
            self.cache = None

    # -- one request ---------------------------------------------------------------------
    def _state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        if self._state_ is None or self._state_.loop is not loop:
            self._state_ = _LoopState(self)
        return self._state_

    def _prepare(self, request: Request, gen: dict[str, Any]) -> _Prepared:
        """Worker-thread part: read + hash the image, look up the cache, prepare on a miss."""
        raw = request.sample.image_bytes() if (request.sample.image_path or request.sample.image_loader) else None
        key = None
        if self.cache is not None:
            key = cache_key(
                {
                    "v": 1,
                    "adapter": self.name,
                    "model": self.model,
                    "system": request.system,
                    "prompt": request.prompt,
                    "image_sha256": hashlib.sha256(raw).hexdigest() if raw is not None else None,
                    "generation": gen,
                    **(self.cache_key_extra() or {}),
                }
            )
            hit = self.cache.get(key)
            if hit is not None:
                return _Prepared(key, cached=hit)
        image = prepare_image(raw, self.images) if raw is not None else None
        return _Prepared(key, image=image)

    def _estimate_cost(self, request: Request, image: PreparedImage | None, gen: dict[str, Any]) -> float:
        """Worst case for --max-cost: generous input estimate, the full output allowance."""
        assert self.price is not None
        text_tokens = (len(request.prompt) + len(request.system or "")) // 3 + 16
        image_tokens = self._image_token_estimate(image) if image is not None else 0
        input_tokens = max(self._observed_max_input, int(1.2 * (text_tokens + image_tokens)))
        return self.price.cost(input_tokens, self._max_output_tokens(gen))

    def _max_output_tokens(self, gen: dict[str, Any]) -> int:
        return int(gen["max_tokens"])

    def _cost(self, usage: Usage) -> float | None:
        return None if self.price is None else self.price.cost(usage.input_tokens, usage.output_tokens)

    async def _one(self, request: Request) -> Response:
        state = self._state()
        stats = self._stats
        stats["requests"] += 1
        gen = self.generation(request)
        async with state.slots:
            started = time.perf_counter()
            try:
                prepared = await asyncio.to_thread(self._prepare, request, gen)
            except Exception as exc:  # unreadable image: the sample's own data problem, named
                return Response(data_problem=image_problem(request.sample, exc), attempts=0)
            if prepared.cached is not None:
                hit = prepared.cached
                stats["cached_hits"] += 1
                stats["cached_original_cost_usd"] += hit.cost_usd or 0.0
                return Response(
                    text=hit.text,
                    finish_reason=hit.finish_reason,
                    usage=hit.usage,
                    cost_usd=0.0,
                    latency_s=time.perf_counter() - started,
                    attempts=0,
                    cached=True,
                    meta={**hit.meta, "original_cost_usd": hit.cost_usd},
                )
            image = prepared.image
            meta: dict[str, Any] = {}
            if image is not None:
                meta.update(
                    image_bytes_sent=len(image.data),
                    image_size_sent=list(image.size),
                    image_media_type=image.media_type,
                )
                if image.reencoded:
                    meta.update(image_reencoded=image.reencoded, image_size_original=list(image.original_size))
            estimate = 0.0
            if state.budget is not None:
                estimate = self._estimate_cost(request, image, gen)
                if not await state.budget.reserve(estimate):
                    if not stats["not_sent_max_cost"]:
                        log.warning(
                            "--max-cost $%.2f reached (spent $%.4f): no new requests are sent; "
                            "unsent samples are recorded as errors and sent by a re-run with a larger budget",
                            self.max_cost,
                            state.budget.spent,
                        )
                    stats["not_sent_max_cost"] += 1
                    return Response(
                        error=f"not sent: --max-cost budget of ${self.max_cost:.2f} reached "
                        f"(spent ${state.budget.spent:.4f}); re-run with a larger --max-cost to send it",
                        attempts=0,
                        meta={**meta, "not_sent": "max_cost"},
                    )
            paid = Usage()
            paid_cost: float | None = 0.0
            try:
                stats["sent"] += 1
                response, answer = await self._send(state, request, image, gen, meta)
                paid = response.usage
                paid_cost = response.cost_usd
            finally:
                if state.budget is not None:
                    await state.budget.settle(estimate, paid_cost if paid_cost is not None else estimate)
            response.latency_s = time.perf_counter() - started
        self._latencies.append(response.latency_s)
        stats["input_tokens"] += paid.input_tokens
        stats["output_tokens"] += paid.output_tokens
        stats["reasoning_tokens"] += paid.reasoning_tokens
        if paid_cost is None:
            stats["cost_unknown_requests"] += 1
        else:
            stats["cost_usd"] += paid_cost
        if answer is not None and prepared.key is not None and self.cache is not None:
            # Only a real answer reaches here (errors and empty text return answer=None).
            await asyncio.to_thread(
                self.cache.put,
                prepared.key,
                model=self.model,
                text=answer.text,
                finish_reason=answer.finish_reason,
                usage=answer.usage,
                cost_usd=self._cost(answer.usage),
                meta={k: v for k, v in answer.meta.items() if k in ("model_reported", "reasoning")},
            )
        return response

    def _wait(self, retry_state: RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(exc, Fault) and exc.retry_after is not None:
            # The server said when: wait that long, plus a little jitter so the herd spreads.
            delay = min(exc.retry_after, RETRY_AFTER_CAP_S)
            return delay + random.uniform(0, min(1.0, 0.1 * delay + 0.05))
        return wait_random_exponential(multiplier=self.backoff_base, max=self.backoff_max)(retry_state)

    async def _send(
        self,
        state: _LoopState,
        request: Request,
        image: PreparedImage | None,
        gen: dict[str, Any],
        meta: dict[str, Any],
    ) -> tuple[Response, Completion | None]:
        """Attempts until an answer, a non-retryable fault, or `max_attempts`. Returns the
        sample's Response (usage and cost summed over billed attempts) and the answer
        itself when there is a real one (for the cache)."""
        attempts = 0
        faults: list[str] = []
        paid = Usage()
        paid_cost: float | None = 0.0

        def bill(completion: Completion) -> None:
            nonlocal paid_cost
            paid.input_tokens += completion.usage.input_tokens
            paid.output_tokens += completion.usage.output_tokens
            paid.reasoning_tokens += completion.usage.reasoning_tokens
            self._observed_max_input = max(self._observed_max_input, completion.usage.input_tokens)
            cost = self._cost(completion.usage)
            paid_cost = None if cost is None or paid_cost is None else paid_cost + cost

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=self._wait,
            retry=retry_if_exception(_retryable),
            reraise=True,
        )
        completion: Completion | None = None
        try:
            async for attempt in retrying:
                with attempt:
                    await state.gate.wait()
                    attempts += 1
                    self._stats["attempts"] += 1
                    try:
                        completion = await asyncio.wait_for(
                            self._call(state.client, request, image, gen), self.request_timeout
                        )
                    except Exception as exc:
                        fault = classify(exc, self.sdk)
                        if not self._reached and _unreachable(exc, self.sdk):
                            raise AdapterUnavailable(self._unreachable_message(state, fault, exc)) from exc
                        self._reached = self._reached or isinstance(exc, self.sdk.APIStatusError)
                        faults.append(fault.cause)
                        if fault.cause == "rate_limit" and fault.retry_after:
                            state.gate.pause(fault.retry_after)
                        raise fault from exc
                    self._reached = True
                    bill(completion)
                    # Empty text is retried like a fault, unless the token limit emptied it
                    # (a reasoning model that spent everything thinking): that is a truncation.
                    if not completion.text.strip() and completion.finish_reason != "length":
                        faults.append("empty")
                        raise Fault("empty", "empty response", billed=completion)
        except Fault as fault:
            if fault.cause == "empty":
                # Bounded retries spent: an answer that is empty, recorded as such.
                self._retries.update(faults[:-1])
                self._stats["empty"] += 1
                last = fault.billed
                return Response(
                    text="",
                    finish_reason=last.finish_reason,
                    usage=paid,
                    cost_usd=paid_cost,
                    attempts=attempts,
                    meta={**meta, **last.meta, "empty_attempts": faults.count("empty"), "retries": faults[:-1]},
                ), None
            self._retries.update(faults[:-1])
            self._errors[fault.cause] += 1
            self._stats["errors"] += 1
            return Response(
                error=f"{fault.cause}: {self._redact(str(fault))} (after {attempts} attempt{'s' if attempts != 1 else ''})",
                usage=paid,
                cost_usd=paid_cost,
                attempts=attempts,
                meta={**meta, "error_cause": fault.cause, "retries": faults[:-1]},
            ), None
        assert completion is not None
        self._retries.update(faults)
        if completion.finish_reason == "length":
            self._stats["truncated"] += 1
        return Response(
            text=completion.text,
            finish_reason=completion.finish_reason,
            usage=paid,
            cost_usd=paid_cost,
            attempts=attempts,
            meta={**meta, **completion.meta, **({"retries": faults} if faults else {})},
        ), completion

    def _unreachable_message(self, state: _LoopState, fault: Fault, exc: BaseException) -> str:
        url = self.base_url or str(getattr(state.client, "base_url", "") or self.provider_url)
        root = exc.__cause__ or exc  # the transport's own words: "[Errno 111] Connection refused"
        cause = self._redact(f"{type(root).__name__}: {root}" if fault.cause == "connection" else str(fault))
        checks = [f"that a server is running at {url}"]
        if self.base_url and not self.base_url.rstrip("/").endswith("/v1"):
            checks.append(f"the URL: OpenAI-compatible servers usually want the /v1 suffix ({self.base_url}/v1)")
        checks.append(f"the API key in ${self.key_var}")
        checks.append(f"the model name {self.model!r} (the server's /models lists what it serves)")
        return (
            f"cannot use the {self.name} API at {url}: {fault.cause}: {cause}. Check {'; '.join(checks)}. "
            "Stopped before sending the rest; nothing answered is lost: re-run the same command once it is fixed."
        )

    def _redact(self, text: str) -> str:
        """Error text goes into records and logs: never let the key ride along."""
        if self._api_key and len(self._api_key) > 8:
            text = text.replace(self._api_key, "***")
        return text
