"""`--max-cost`: the budget of an API run. A request is sent only once its worst-case cost
(`worst_case_cost`: a generous input estimate and the full output allowance) is reserved
within the limit; its real cost replaces the reservation when it settles."""

from __future__ import annotations

import asyncio

from greval.pricing import Price


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


def worst_case_cost(
    price: Price, text_chars: int, image_tokens: int, max_output_tokens: int, observed_max_input: int
) -> float:
    """The reservation for one request: input tokens guessed generously (a token per 3
    characters of prompt, the provider's image-token rule, 20 % on top, never below the
    largest input this run has seen billed), and every output token the request may use."""
    text_tokens = text_chars // 3 + 16
    input_tokens = max(observed_max_input, int(1.2 * (text_tokens + image_tokens)))
    return price.cost(input_tokens, max_output_tokens)
