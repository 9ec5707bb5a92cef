"""A batch: claim ready reports, keep a window of Claude calls in flight.

The coordinating thread claims the reports, starts each call in a small
thread pool as soon as a slot is free (a sliding window: a slow call never
holds idle slots, unlike fixed chunks), and does every database write itself
as calls come back. Worker threads only talk to Claude.

Starting a call needs room in this batch's window, a global slot
(``reports.limits.CallSlots``), the installation's request turn
(``reports.limits.RequestPace``, the requests-per-minute limit), and no
rate-limit pause in force. A batch stops starting calls when its time
budget is spent, when asked to stop, or on an ``auth``/``spend_limit`` error;
reports it claimed but never started go back to the queue untouched.
"""

import collections
import concurrent.futures
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from django.conf import settings
from django.db import connections

from .limits import (
    BATCH_LOCK,
    LEASE_MARGIN_SECONDS,
    CallSlots,
    RequestPace,
    acquire_lease,
    call_worst_case_seconds,
    new_holder,
    release_lease,
)
from .models import Report
from .processing import (
    CallOutcome,
    Outcome,
    ProcessingResult,
    call_claude,
    finish_report,
    interrupts_batch,
    log_result,
    prepare_report,
)

logger = logging.getLogger(__name__)

# How often the coordinating thread looks again for a free global slot (held
# by another batch) while its own calls run. Each look is one small query.
POLL_SECONDS = 0.1

ProgressCallback = Callable[[ProcessingResult, "BatchSummary"], None]


@dataclasses.dataclass
class BatchSummary:
    """Counts of one batch; ``as_dict()`` gives plain values for a task result."""

    claimed: int = 0
    processed: int = 0
    ignored: int = 0
    failed: int = 0
    retried: int = 0
    released: int = 0
    skipped: int = 0
    reposts: int = 0
    violations_created: int = 0
    violations_merged: int = 0
    # Tokens by kind, summed over the batch's calls; ``tokens_used`` is all four.
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    wall_time_seconds: float = 0.0
    stopped_reason: str = ""
    # True when an auth or spend-limit answer stopped the batch: nothing can
    # succeed until someone fixes the key or the account.
    stopped_by_error: bool = False
    errors: dict[str, int] = dataclasses.field(default_factory=dict)

    @property
    def tokens_used(self) -> int:
        """All tokens: input, output, cache read and cache write."""
        return sum(getattr(self, kind) for kind in Report.TOKEN_FIELDS)

    @property
    def tokens(self) -> dict[str, int]:
        """Token counts under the names ``reports.stats`` uses, with the total."""
        counts = {
            kind.removesuffix("_tokens"): getattr(self, kind)
            for kind in Report.TOKEN_FIELDS
        }
        return {**counts, "total": self.tokens_used}

    @property
    def finished(self) -> int:
        """Reports this batch has dealt with, out of ``claimed``."""
        return (
            self.processed
            + self.ignored
            + self.failed
            + self.retried
            + self.released
            + self.skipped
        )

    def add(self, result: ProcessingResult) -> None:
        counter = {
            Outcome.PROCESSED: "processed",
            Outcome.IGNORED: "ignored",
            Outcome.FAILED: "failed",
            Outcome.RETRY: "retried",
            Outcome.RELEASED: "released",
            Outcome.SKIPPED: "skipped",
        }[result.outcome]
        setattr(self, counter, getattr(self, counter) + 1)
        self.reposts += result.repost_of is not None
        self.violations_created += result.violations_created
        self.violations_merged += result.violations_merged
        for kind in Report.TOKEN_FIELDS:
            setattr(self, kind, getattr(self, kind) + getattr(result, kind))
        if result.error_category:
            category = result.error_category
            self.errors[category] = self.errors.get(category, 0) + 1

    def as_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "tokens_used": self.tokens_used}


@dataclasses.dataclass
class InFlight:
    report: Report
    slot: str
    started: float


def run_batch(
    *,
    limit: int | None = None,
    concurrency: int | None = None,
    time_budget: float | None = None,
    exclusive: bool = False,
    progress: ProgressCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> BatchSummary:
    """Claims up to ``limit`` reports and processes them; returns the summary.

    ``concurrency`` bounds this batch's calls in flight; the installation-wide
    bound is REPORTS_MAX_CONCURRENT_CALLS. With ``exclusive`` the batch first
    takes the batch lock and does nothing if another batch holds it (the
    schedule's guard against overlapping runs). ``progress`` is called on the
    coordinating thread after each report; without it each report is logged.
    ``should_stop`` is polled between reports: once true, no new call starts.
    """
    batch = Batch(
        limit=limit or settings.REPORTS_BATCH_SIZE,
        concurrency=concurrency or settings.REPORTS_MAX_CONCURRENT_CALLS,
        time_budget=(
            settings.REPORTS_BATCH_TIME_BUDGET_SECONDS
            if time_budget is None
            else time_budget
        ),
        progress=progress,
        should_stop=should_stop or (lambda: False),
    )
    if exclusive:
        return batch.run_exclusive()
    return batch.run()


class Batch:
    def __init__(
        self,
        *,
        limit: int,
        concurrency: int,
        time_budget: float,
        progress: ProgressCallback | None,
        should_stop: Callable[[], bool],
    ) -> None:
        self.limit = limit
        self.concurrency = concurrency
        self.time_budget = time_budget
        self.progress = progress
        self.should_stop = should_stop
        self.holder = new_holder()
        self.summary = BatchSummary()
        self.started = time.monotonic()
        self.paused_until = 0.0
        # When the request turn another request holds ends, as last seen.
        self.next_turn_at = 0.0
        self.pending: collections.deque[Report] = collections.deque()
        self.in_flight: dict[concurrent.futures.Future, InFlight] = {}
        # Texts of reports sent to Claude and not yet stored.
        self.unsettled: collections.Counter[str] = collections.Counter()

    def run_exclusive(self) -> BatchSummary:
        # The lock outlives the longest run: the budget plus a last call.
        ttl = self.time_budget + call_worst_case_seconds() + LEASE_MARGIN_SECONDS
        if not acquire_lease(BATCH_LOCK, self.holder, ttl):
            self.summary.stopped_reason = "Another batch is running."
            logger.info("batch skipped: another batch is running")
            return self.summary
        try:
            return self.run()
        finally:
            release_lease(BATCH_LOCK, self.holder)

    def run(self) -> BatchSummary:
        self.slots = CallSlots(self.holder)
        self.pace = RequestPace(self.holder)
        claimed = Report.objects.claim(self.limit)
        self.summary.claimed = len(claimed)
        self.pending.extend(claimed)
        logger.info("batch claimed %s reports", len(claimed))

        try:
            self.work()
        finally:
            self.release_pending()
            self.summary.wall_time_seconds = round(time.monotonic() - self.started, 3)
        log_summary(self.summary)
        return self.summary

    def work(self) -> None:
        pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=self.concurrency, thread_name_prefix="claude-call"
        )
        with pool:
            while self.pending or self.in_flight:
                self.start_calls(pool)
                if self.stop_reason():
                    self.release_pending()
                self.wait_for_calls(pool)

    def start_calls(self, pool: concurrent.futures.ThreadPoolExecutor) -> None:
        """Starts calls while this batch and the installation have room."""
        while self.pending and len(self.in_flight) < self.concurrency:
            if self.stop_reason() or self.seconds_until_next_call() > 0:
                return
            index = self.next_index()
            if index is None:
                return
            slot = self.slots.acquire()
            if slot is None:
                return

            report = self.pending[index]
            del self.pending[index]
            started = time.monotonic()
            settled = prepare_report(report, claimed=True, started=started)
            if settled is not None:
                self.slots.release(slot)
                self.record(settled)
                continue

            # The turn is taken last, once a request will surely follow: a
            # turn taken and not used would hold back every batch for nothing.
            if not self.take_request_turn():
                self.pending.insert(index, report)
                self.slots.release(slot)
                return

            future = pool.submit(call_in_worker, report)
            self.in_flight[future] = InFlight(report, slot, started)
            self.unsettled[report.text_hash] += 1

    def next_index(self) -> int | None:
        """The first pending report whose text is not in a call right now.

        A repost in the same batch waits for its original's result, so it is
        linked to the original's violations instead of sent to Claude again.
        """
        for index, report in enumerate(self.pending):
            if not self.unsettled[report.text_hash]:
                return index
        return None

    def wait_for_calls(self, pool: concurrent.futures.ThreadPoolExecutor) -> None:
        timeout = self.wait_timeout()
        if not self.in_flight:
            if self.pending:
                time.sleep(timeout)
            return
        done, _ = concurrent.futures.wait(
            self.in_flight,
            timeout=timeout,
            return_when=concurrent.futures.FIRST_COMPLETED,
        )
        ended = [self.end_call(future) for future in done]

        # Refill the window before the database work of the ended calls, so
        # the next calls wait on Claude while this thread writes. Not when an
        # answer asks the batch to pause or stop: that must be known first.
        if not any(interrupts_batch(outcome) for _, outcome in ended):
            self.start_calls(pool)
        for call, outcome in ended:
            self.finish(call, outcome)

    def end_call(
        self, future: concurrent.futures.Future
    ) -> tuple[InFlight, CallOutcome]:
        """The call is over: its slot is free for the next one."""
        call = self.in_flight.pop(future)
        self.slots.release(call.slot)
        return call, future.result()

    def finish(self, call: InFlight, outcome: CallOutcome) -> None:
        result = finish_report(call.report, outcome, started=call.started)
        self.unsettled[call.report.text_hash] -= 1
        self.record(result)

        if result.stops_batch and not self.summary.stopped_by_error:
            self.summary.stopped_reason = f"{result.error_category}: {result.error}"
            self.summary.stopped_by_error = True
            logger.error("batch stopped: %s", self.summary.stopped_reason)
        if result.retry_after:
            # A rate-limit answer holds for the account, so no call of this
            # batch starts before it has passed.
            resume_at = time.monotonic() + result.retry_after
            self.paused_until = max(self.paused_until, resume_at)
            logger.warning(
                "batch paused for %.1f s (%s)",
                result.retry_after,
                result.error_category,
            )

    def record(self, result: ProcessingResult) -> None:
        self.summary.add(result)
        if self.progress is not None:
            self.progress(result, self.summary)
        else:
            log_result(result)

    def stop_reason(self) -> str:
        """Why no new call may start, or "" while calls may start."""
        if not self.summary.stopped_reason:
            if self.should_stop():
                self.summary.stopped_reason = "Stop requested."
            elif time.monotonic() - self.started >= self.time_budget:
                self.summary.stopped_reason = (
                    f"Time budget of {self.time_budget:g} s spent."
                )
        return self.summary.stopped_reason

    def take_request_turn(self) -> bool:
        wait = self.pace.acquire()
        self.next_turn_at = time.monotonic() + wait
        return wait == 0

    def seconds_until_next_call(self) -> float:
        now = time.monotonic()
        return max(self.paused_until - now, self.next_turn_at - now, 0.0)

    def wait_timeout(self) -> float | None:
        if not self.pending:
            return None
        budget_left = self.time_budget - (time.monotonic() - self.started)
        wait = max(self.seconds_until_next_call(), POLL_SECONDS)
        return max(min(wait, budget_left), 0.01)

    def release_pending(self) -> None:
        """Gives every claimed but unstarted report back, attempt not spent."""
        while self.pending:
            report = self.pending.popleft()
            if report.release():
                self.summary.released += 1


def call_in_worker(report: Report) -> CallOutcome:
    try:
        return call_claude(report)
    finally:
        # A worker thread should not touch the database; if the extraction
        # ever does, its connection must not outlive the thread's task.
        connections.close_all()


def log_summary(summary: BatchSummary) -> None:
    logger.info(
        "batch done: %s claimed, %s processed, %s ignored, %s failed, %s retried, "
        "%s released; %s violations created, %s merged; %s tokens (all kinds) "
        "in %.1f s",
        summary.claimed,
        summary.processed,
        summary.ignored,
        summary.failed,
        summary.retried,
        summary.released,
        summary.violations_created,
        summary.violations_merged,
        summary.tokens_used,
        summary.wall_time_seconds,
    )


def describe_tokens(tokens: Mapping[str, int]) -> str:
    """One line for people: the total, then each kind, as report_stats prints."""
    return (
        f"{tokens['total']:,} in all (input {tokens['input']:,}, output "
        f"{tokens['output']:,}, cache read {tokens['cache_read']:,}, "
        f"cache write {tokens['cache_write']:,})"
    )
