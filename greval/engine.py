"""The run engine: send requests to an adapter, in batches and concurrently, and hand each
answer to the caller the moment it arrives. `greval run` (answers to score) and
`greval judge` (an LLM judging reasoning chains) both drive it; so can any later command
that needs model calls.

- `Job`: one request and every target that shares its answer (identical requests from
  overlapping tasks are sent once; the caller decides what a target is).
- A request may carry its own seed (`Request.seed`): the judge re-asks with a new seed
  after an answer it could not read.
- `dispatch`: batches of `adapter.batch_size`, at most `adapter.concurrency` in flight;
  a batch that fails as a whole becomes error responses (recorded, retried next run),
  except `AdapterUnavailable`, which stops the run at once; local models show tokens/s.
- `batched_for`: local GPU adapters size `--batch-size auto` and order requests by input
  size before batches are cut.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from greval.adapter import Adapter, AdapterUnavailable
from greval.types import Request, Response


@dataclass
class Job:
    """One request to send, and every target (for a run: each (task, sample)) that shares its answer."""

    request: Request
    targets: list[Any]


def batched_for(adapter: Adapter, jobs: list[Job]) -> list[Job]:
    """Local GPU adapters: size `--batch-size auto` on the run's inputs, and order the jobs
    by input size so each batch holds similar inputs (little padding). Every response still
    goes to its own sample; under greedy decoding the outputs equal batch size 1's."""
    if hasattr(adapter, "prepare"):
        adapter.prepare([job.request for job in jobs])
    if hasattr(adapter, "input_size") and jobs:
        sizes = {id(job): adapter.input_size(job.request) for job in jobs}
        jobs = sorted(jobs, key=lambda job: sizes[id(job)])
    return jobs


async def dispatch(adapter: Adapter, jobs: list[Job], on_done, progress) -> None:
    """Batches of `adapter.batch_size`, at most `adapter.concurrency` in flight."""
    size = max(1, int(adapter.batch_size))
    batches = iter([jobs[i : i + size] for i in range(0, len(jobs), size)])
    local = adapter.kind == "open-weights"
    started, tokens, generated = time.perf_counter(), 0, 0

    async def worker() -> None:
        for batch in batches:  # a shared iterator: each batch goes to one worker
            requests = [job.request for job in batch]
            try:
                responses = await adapter.agenerate(requests)
                if len(responses) != len(requests):
                    raise RuntimeError(f"adapter returned {len(responses)} responses for {len(requests)} requests")
            except AdapterUnavailable:
                raise  # nothing can be answered: stop the run (what was answered is on disk)
            except Exception as e:  # the batch failed as a whole: record why, go on
                responses = [Response(error=f"{type(e).__name__}: {e}") for _ in requests]
            on_done(batch, responses)
            if local:  # a local model's speed is its output tokens per second
                nonlocal tokens, generated
                tokens += sum(r.usage.output_tokens for r in responses if not r.cached)  # generated now
                generated += sum(not r.cached for r in responses)
                speed = tokens / max(time.perf_counter() - started, 1e-9)
                progress.set_postfix_str(f"{speed:,.0f} tok/s" if generated else "from the cache", refresh=False)
            progress.update(len(batch))

    workers = max(1, min(int(adapter.concurrency), len(jobs)))
    await asyncio.gather(*(worker() for _ in range(workers)))
