import datetime
import threading
import time

import pytest
from django.db import connections
from django.utils import timezone

from reports.batch import run_batch
from reports.limits import (
    BATCH_LOCK,
    REQUEST_PACE,
    CallSlots,
    RequestPace,
    acquire_lease,
)
from reports.models import Lease, Report
from tests.factories import ReportFactory, incident_text, incident_tool_input
from violations.models import Violation

PLACES = ["Kafranbel", "Saraqib", "Ariha", "Maarrat", "Khan Shaykhun", "Taftanaz"]


@pytest.fixture
def standin(claude_standin, settings):
    settings.CLAUDE_MAX_RETRIES = 0
    settings.REPORTS_MAX_CONCURRENT_CALLS = 3
    return claude_standin


def incident_reports(standin, count: int, **fields) -> list[Report]:
    reports = []
    for place in PLACES[:count]:
        text = incident_text(place)
        standin.record(text, incident_tool_input(place))
        reports.append(
            ReportFactory(text=text, language=Report.Language.ENGLISH, **fields)
        )
    return reports


class RequestLog:
    """Latency for the stand-in that also notes when each request arrived."""

    def __init__(self, *seconds: float, default: float = 0.0) -> None:
        self.seconds = list(seconds)
        self.default = default
        self.arrivals: list[float] = []
        self.lock = threading.Lock()

    def __call__(self) -> float:
        with self.lock:
            self.arrivals.append(time.monotonic())
            return self.seconds.pop(0) if self.seconds else self.default


@pytest.mark.django_db
def test_a_batch_leaves_every_report_finished_and_linked(standin):
    with_violations = incident_reports(standin, 2)
    quiet = ReportFactory(text="A bakery in Idlib reopened today after repairs.")
    source = with_violations[0]

    summary = run_batch(limit=10, concurrency=3)

    for report in [*with_violations, quiet]:
        report.refresh_from_db()
    assert [r.status for r in with_violations] == [Report.Status.PROCESSED] * 2
    assert quiet.status == Report.Status.IGNORED
    assert Violation.objects.count() == 2
    assert Violation.objects.get(report=source).report_ids == [source.pk]
    assert (summary.claimed, summary.processed, summary.ignored) == (3, 2, 1)
    assert (summary.failed, summary.retried, summary.released) == (0, 0, 0)
    assert summary.violations_created == 2
    assert summary.tokens_used > 0
    assert summary.stopped_reason == ""
    assert not Report.objects.filter(status=Report.Status.PROCESSING).exists()


@pytest.mark.django_db
def test_a_repost_in_the_same_batch_is_linked_not_sent(standin):
    (source,) = incident_reports(standin, 1, priority=Report.Priority.HIGH)
    repost = ReportFactory(text=source.text, source_url="https://example.org/copy")

    summary = run_batch(limit=10, concurrency=1)

    repost.refresh_from_db()
    assert len(standin.requests) == 1
    assert repost.duplicate_of_id == source.pk
    assert repost.status == Report.Status.PROCESSED
    assert (summary.processed, summary.reposts) == (2, 1)


@pytest.mark.django_db
def test_the_window_slides_past_a_slow_call(standin):
    incident_reports(standin, 4)
    standin.latency = RequestLog(1.5, default=0.02)
    finished = []

    run_batch(
        limit=10,
        concurrency=2,
        progress=lambda result, summary: finished.append(result),
    )

    # Chunks of two would hold the third report until the slow call ended;
    # the window keeps its other slot busy, so the slow call ends last.
    slowest = max(finished, key=lambda result: result.processing_time_ms)
    assert slowest.processing_time_ms >= 1500
    assert finished[-1] is slowest
    assert len(finished) == 4
    assert standin.max_in_flight == 2


@pytest.mark.django_db
def test_a_batch_fills_its_concurrency_and_never_exceeds_it(standin):
    incident_reports(standin, 6)
    # Each call waits until three are in flight together: the window must fill
    # to three (or the barrier breaks, the call fails and the count below is
    # short), whatever the machine's load does to thread start-up.
    three_at_once = threading.Barrier(3, timeout=10)

    def latency() -> float:
        three_at_once.wait()
        return 0.05

    standin.latency = latency

    summary = run_batch(limit=10, concurrency=3)

    assert summary.processed == 6
    assert standin.max_in_flight == 3


@pytest.mark.django_db
def test_slots_held_by_another_batch_count_against_the_global_limit(standin):
    incident_reports(standin, 4)
    other = CallSlots("other-host:1")
    assert other.acquire() and other.acquire()
    standin.latency = 0.05

    summary = run_batch(limit=10, concurrency=3)

    assert summary.processed == 4
    assert standin.max_in_flight == 1


@pytest.mark.django_db
def test_an_auth_error_stops_the_batch_and_returns_the_rest_untouched(standin):
    reports = incident_reports(standin, 4)
    standin.queue_fault("auth")

    summary = run_batch(limit=10, concurrency=1)

    assert len(standin.requests) == 1
    assert summary.stopped_reason.startswith(
        "auth: The API key was refused: HTTP 401 invalid x-api-key"
    )
    assert (summary.claimed, summary.released, summary.processed) == (4, 4, 0)
    for report in reports:
        report.refresh_from_db()
        assert (report.status, report.attempts) == (Report.Status.UNPROCESSED, 0)
        assert report.claim_token is None


@pytest.mark.django_db
def test_a_rate_limit_pauses_the_batch_without_spending_the_attempt(standin):
    first, *rest = incident_reports(standin, 3)
    Report.objects.filter(pk=first.pk).update(priority=Report.Priority.URGENT)
    standin.queue_fault("rate_limited", retry_after=0.5)
    log = RequestLog()
    standin.latency = log

    summary = run_batch(limit=10, concurrency=1)

    first.refresh_from_db()
    assert (first.status, first.attempts) == (Report.Status.UNPROCESSED, 0)
    assert first.not_before > timezone.now() - datetime.timedelta(seconds=1)
    assert len(log.arrivals) == 3
    assert log.arrivals[1] - log.arrivals[0] >= 0.5
    assert (summary.released, summary.processed) == (1, 2)
    assert summary.errors == {"rate_limited": 1}
    for report in rest:
        report.refresh_from_db()
        assert report.status == Report.Status.PROCESSED


@pytest.mark.django_db
def test_the_time_budget_stops_new_calls_and_returns_the_rest(standin):
    reports = incident_reports(standin, 5)
    standin.latency = 0.25

    # Five calls in a row take 1.25 s at least; the budget allows fewer.
    summary = run_batch(limit=10, concurrency=1, time_budget=0.6)

    assert 1 <= summary.processed <= 3
    assert len(standin.requests) == summary.processed
    assert summary.released == 5 - summary.processed
    assert summary.stopped_reason == "Time budget of 0.6 s spent."
    statuses = Report.objects.filter(pk__in=[r.pk for r in reports])
    assert sorted(statuses.values_list("status", "attempts")) == sorted(
        [("processed", 1)] * summary.processed + [("unprocessed", 0)] * summary.released
    )


@pytest.mark.django_db
def test_the_requests_per_minute_limit_holds_back_further_calls(standin, settings):
    incident_reports(standin, 3)
    settings.CLAUDE_REQUESTS_PER_MINUTE = 2

    summary = run_batch(limit=10, concurrency=3, time_budget=0.5)

    # One request every 30 s: the second waits past the budget.
    assert len(standin.requests) == 1
    assert (summary.processed, summary.released) == (1, 2)


@pytest.mark.django_db
def test_a_request_turn_taken_elsewhere_holds_the_batch_back(standin, settings):
    incident_reports(standin, 2)
    settings.CLAUDE_REQUESTS_PER_MINUTE = 60
    assert RequestPace("other-host:1").acquire() == 0

    summary = run_batch(limit=10, concurrency=3, time_budget=0.5)

    assert len(standin.requests) == 0
    assert (summary.processed, summary.released) == (0, 2)


# Each batch runs on its own thread with its own database connection, as two
# processes would; the stand-in notes when each request arrives.
@pytest.mark.django_db(transaction=True)
def test_two_batches_at_once_keep_together_to_the_requests_per_minute(
    standin, settings
):
    settings.CLAUDE_REQUESTS_PER_MINUTE = 300
    interval = 0.2
    # A process's first call loads parts of the SDK (over 100 ms here) after
    # taking its turn, which would read as two requests too close together.
    incident_reports(standin, 1)
    assert run_batch(limit=1).processed == 1
    for n in range(8):
        place = f"Qarya {chr(ord('A') + n)}{n}"
        standin.record(incident_text(place), incident_tool_input(place))
        ReportFactory(text=incident_text(place), language=Report.Language.ENGLISH)
    log = RequestLog()
    standin.latency = log
    summaries = []

    def batch() -> None:
        try:
            summaries.append(run_batch(limit=4, concurrency=3))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=batch) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(summary.processed for summary in summaries) == [4, 4]
    arrivals = sorted(log.arrivals)
    assert len(arrivals) == 8
    # Any k + 1 requests span at least k intervals, less the jitter between
    # taking the turn and the request reaching the stand-in.
    for first in range(8):
        for last in range(first + 1, 8):
            span = arrivals[last] - arrivals[first]
            assert span >= (last - first) * interval - 0.1, (first, last, span)


@pytest.mark.django_db
def test_a_failed_report_is_retried_only_after_the_retry_delay(standin, settings):
    (report,) = incident_reports(standin, 1)
    standin.queue_fault("server_error")

    run_batch(limit=10)
    report.refresh_from_db()
    assert (report.status, report.attempts) == (Report.Status.RETRY_PENDING, 1)

    assert run_batch(limit=10).claimed == 0

    delay = datetime.timedelta(seconds=settings.REPORTS_RETRY_DELAY_SECONDS + 1)
    Report.objects.filter(pk=report.pk).update(last_attempt=timezone.now() - delay)
    summary = run_batch(limit=10)

    report.refresh_from_db()
    assert summary.processed == 1
    assert (report.status, report.attempts) == (Report.Status.PROCESSED, 2)
    assert report.error_category == ""


@pytest.mark.django_db
def test_a_stuck_report_is_picked_up_after_the_stuck_timeout(standin, settings):
    (report,) = incident_reports(standin, 1)
    timeout = datetime.timedelta(seconds=settings.REPORTS_STUCK_TIMEOUT_SECONDS)
    Report.objects.filter(pk=report.pk).update(
        status=Report.Status.PROCESSING,
        attempts=1,
        started_at=timezone.now() - timeout * 0.5,
    )
    assert run_batch(limit=10).claimed == 0

    Report.objects.filter(pk=report.pk).update(
        started_at=timezone.now() - timeout * 1.5
    )
    summary = run_batch(limit=10)

    report.refresh_from_db()
    assert summary.processed == 1
    assert (report.status, report.attempts) == (Report.Status.PROCESSED, 2)


@pytest.mark.django_db
def test_a_stuck_report_with_no_attempts_left_is_failed(standin, settings):
    (report,) = incident_reports(standin, 1)
    timeout = datetime.timedelta(seconds=settings.REPORTS_STUCK_TIMEOUT_SECONDS)
    Report.objects.filter(pk=report.pk).update(
        status=Report.Status.PROCESSING,
        attempts=settings.REPORTS_MAX_ATTEMPTS,
        started_at=timezone.now() - timeout * 2,
    )

    assert run_batch(limit=10).claimed == 0

    report.refresh_from_db()
    assert report.status == Report.Status.FAILED
    assert report.error_category == Report.ErrorCategory.STUCK


@pytest.mark.django_db
def test_an_exclusive_batch_does_nothing_while_another_holds_the_lock(standin):
    (report,) = incident_reports(standin, 1)
    assert acquire_lease(BATCH_LOCK, "other-host:1", ttl=60)

    summary = run_batch(limit=10, exclusive=True)

    report.refresh_from_db()
    assert summary.stopped_reason == "Another batch is running."
    assert summary.claimed == 0
    assert report.status == Report.Status.UNPROCESSED
    assert standin.requests == []


@pytest.mark.django_db
def test_an_exclusive_batch_gives_its_lock_and_slots_back(standin):
    incident_reports(standin, 2)

    run_batch(limit=10, exclusive=True)

    # The request turn is never handed back early; it simply runs out.
    held = Lease.objects.exclude(holder="").exclude(name=REQUEST_PACE)
    assert list(held) == []
    assert Lease.objects.filter(name=BATCH_LOCK).exists()


@pytest.mark.django_db
def test_a_stop_request_finishes_the_call_in_flight_and_returns_the_rest(standin):
    reports = incident_reports(standin, 3)
    stop = threading.Event()

    def latency() -> float:
        stop.set()  # the stop request arrives while the first call runs
        return 0.2

    standin.latency = latency

    summary = run_batch(limit=10, concurrency=1, should_stop=stop.is_set)

    assert summary.stopped_reason == "Stop requested."
    assert (summary.processed, summary.released) == (1, 2)
    assert len(standin.requests) == 1
    statuses = Report.objects.filter(pk__in=[r.pk for r in reports])
    assert sorted(statuses.values_list("status", flat=True)) == [
        "processed",
        "unprocessed",
        "unprocessed",
    ]


@pytest.mark.django_db
def test_reposts_in_one_batch_wait_for_their_original_and_are_linked(standin):
    (source,) = incident_reports(standin, 1)
    copies = [
        ReportFactory(text=source.text, source_url=f"https://example.org/{n}")
        for n in range(3)
    ]
    standin.latency = 0.1

    summary = run_batch(limit=10, concurrency=3)

    assert len(standin.requests) == 1
    assert (summary.processed, summary.reposts) == (4, 3)
    assert sorted(Violation.objects.get().report_ids) == sorted(
        [source.pk, *(copy.pk for copy in copies)]
    )
