"""What can go wrong with one API attempt, and what greval does about it: each SDK or
transport exception becomes a `Fault` with a cause ("rate_limit", "server_error",
"timeout", "connection", "auth", ...) and whether another attempt may help (`classify`;
a provider overrides `ApiAdapter.classify` to refine it). `unreachable` tells a wrong
endpoint (refused connection, 401/403/404) from a transient fault; `RateGate` holds every
new attempt after a 429 with Retry-After; `Budget` enforces --max-cost."""

from __future__ import annotations

import asyncio
import email.utils
import time
from typing import Any

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
