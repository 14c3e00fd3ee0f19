"""The retry policy of an API request: greval owns retries (the SDKs' own are off, so every
HTTP attempt is counted exactly once). `RetryPolicy.run` makes attempts with `tenacity`
until an answer, a fault that another attempt cannot help, or `max_attempts`:

- exponential backoff with full jitter (`backoff_base`, `backoff_max`); a `Retry-After`
  is honoured instead (capped), and a 429's pauses every new attempt (`RateGate`), not
  only the one that got it;
- a per-attempt timeout (`request_timeout`);
- each failure is read by `classify` (the provider's `ApiAdapter.classify`, which may
  refine `_faults.classify`), and shown to the `Breaker` first, which stops the run when
  the endpoint itself is wrong;
- an empty answer is retried like a fault, unless the token limit emptied it (a reasoning
  model that spent everything thinking: a truncation); every billed attempt is summed.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from greval.adapters._faults import RETRY_AFTER_CAP_S, Breaker, Fault, RateGate, retryable
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, wait_random_exponential

from greval.types import Usage


@dataclass
class Completion:
    """A parsed 200 reply."""

    text: str
    finish_reason: str | None
    usage: Usage
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Outcome:
    """What the attempts at one request came to: the last reply (`completion`), the fault
    it ended on (None: answered), the cause of each failed attempt in order, and usage and
    cost summed over every billed attempt (cost None once one of them could not be priced)."""

    completion: Completion | None = None
    fault: Fault | None = None
    attempts: int = 0
    faults: list[str] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    cost_usd: float | None = 0.0

    def bill(self, completion: Completion, cost: float | None) -> None:
        self.usage.input_tokens += completion.usage.input_tokens
        self.usage.output_tokens += completion.usage.output_tokens
        self.usage.reasoning_tokens += completion.usage.reasoning_tokens
        self.cost_usd = None if cost is None or self.cost_usd is None else self.cost_usd + cost


@dataclass
class RetryPolicy:
    """How often, how long and after what an API request is tried again."""

    classify: Callable[[BaseException], Fault]
    max_attempts: int
    request_timeout: float
    backoff_base: float = 1.0
    backoff_max: float = 60.0

    def wait(self, retry_state: RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(exc, Fault) and exc.retry_after is not None:
            # The server said when: wait that long, plus a little jitter so the herd spreads.
            delay = min(exc.retry_after, RETRY_AFTER_CAP_S)
            return delay + random.uniform(0, min(1.0, 0.1 * delay + 0.05))
        return wait_random_exponential(multiplier=self.backoff_base, max=self.backoff_max)(retry_state)

    async def run(
        self,
        call: Callable[[], Awaitable[Completion]],
        outcome: Outcome,
        *,
        gate: RateGate,
        breaker: Breaker,
        bill: Callable[[Completion], float | None],
    ) -> Outcome:
        """Attempts of `call` until it is settled, recorded in `outcome` as they happen (so a
        tripped breaker's `AdapterUnavailable` still leaves the attempts counted). `bill`
        prices a billed reply."""
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=self.wait,
            retry=retry_if_exception(retryable),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    await gate.wait()
                    outcome.attempts += 1
                    try:
                        completion = await asyncio.wait_for(call(), self.request_timeout)
                    except Exception as exc:
                        fault = self.classify(exc)
                        breaker.failed(exc, fault)
                        outcome.faults.append(fault.cause)
                        if fault.cause == "rate_limit" and fault.retry_after:
                            gate.pause(fault.retry_after)
                        raise fault from exc
                    breaker.answered()
                    outcome.completion = completion
                    outcome.bill(completion, bill(completion))
                    if not completion.text.strip() and completion.finish_reason != "length":
                        outcome.faults.append("empty")
                        raise Fault("empty", "empty response", billed=completion)
        except Fault as fault:
            outcome.fault = fault
        return outcome
