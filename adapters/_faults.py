"""What can go wrong with one API attempt, and what greval does about it: each SDK or
transport exception becomes a `Fault` with a cause ("rate_limit", "server_error",
"timeout", "connection", "auth", ...) and whether another attempt may help (`classify`;
a provider overrides `ApiAdapter.classify` to refine it). `unreachable` tells a wrong
endpoint (refused connection, 401/403/404) from a transient fault; `RateGate` holds every
new attempt after a 429 with Retry-After; `Breaker` stops a run whose endpoint is wrong
before it sends the rest."""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Callable
from typing import Any

from greval.adapter import AdapterUnavailable

RETRY_AFTER_CAP_S = 120.0  # a Retry-After longer than this (a daily quota) is not waited out per request


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


def unreachable(exc: BaseException, sdk: Any) -> bool:
    """A fault that says the endpoint itself is wrong, not this request: no connection (refused,
    DNS, TLS), or 401 / 403 / 404 from the server. Timeouts, resets, 429 and 5xx are transient."""
    if isinstance(exc, sdk.APIStatusError):
        return exc.status_code in (401, 403, 404)
    # The transport's ConnectError (httpx, or the httpx2 newer SDKs use): refused, DNS or TLS
    # failure before any byte was exchanged. A reset or a cut stream after connecting
    # (ReadError, RemoteProtocolError) is transient.
    cause = type(exc.__cause__).__mro__ if exc.__cause__ is not None else ()
    return isinstance(exc, sdk.APIConnectionError) and any(c.__name__ == "ConnectError" for c in cause)


def retryable(exc: BaseException) -> bool:
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


class Breaker:
    """The preflight and circuit breaker. Until the server has answered once, a fault that
    says the endpoint itself is wrong (`unreachable`) stops the run at once with
    `AdapterUnavailable` (the message from `describe`: the URL, the cause, what to check)
    instead of retrying every sample for minutes. Once the server has answered (any HTTP
    status, an error too), faults are the request's own and the retry policy handles them.
    One breaker per adapter, not per event loop: a new loop does not forget the server."""

    def __init__(self, sdk: Any, describe: Callable[[Fault, BaseException], str]) -> None:
        self.sdk = sdk
        self.describe = describe
        self.reached = False

    def failed(self, exc: BaseException, fault: Fault) -> None:
        """One attempt failed with `exc` (read as `fault`): trip, or remember an HTTP reply."""
        if not self.reached and unreachable(exc, self.sdk):
            raise AdapterUnavailable(self.describe(fault, exc)) from exc
        self.reached = self.reached or isinstance(exc, self.sdk.APIStatusError)

    def answered(self) -> None:
        self.reached = True


def unreachable_message(
    adapter: str, url: str, base_url: str | None, key_var: str, model: str | None, cause: str, fault: Fault
) -> str:
    """What the breaker says: the URL, the cause, and what to check (a server there, the
    /v1 suffix, the key variable, the model name), and that re-running resumes."""
    checks = [f"that a server is running at {url}"]
    if base_url and not base_url.rstrip("/").endswith("/v1"):
        checks.append(f"the URL: OpenAI-compatible servers usually want the /v1 suffix ({base_url}/v1)")
    checks.append(f"the API key in ${key_var}")
    checks.append(f"the model name {model!r} (the server's /models lists what it serves)")
    return (
        f"cannot use the {adapter} API at {url}: {fault.cause}: {cause}. Check {'; '.join(checks)}. "
        "Stopped before sending the rest; nothing answered is lost: re-run the same command once it is fixed."
    )
