import datetime
import re
import time

import pytest
from django.utils import timezone

from reports.limits import CallSlots, RequestPace
from reports.models import Lease, Report
from reports.processing import (
    CallOutcome,
    Outcome,
    finish_report,
    process_report,
)
from tests.factories import (
    ReportFactory,
    incident_text,
    incident_tool_input,
    violation_item,
)
from violations.models import Violation, ViolationSource


@pytest.fixture
def standin(claude_standin, settings):
    # The SDK's own retries would repeat queued faults; the report's retry
    # logic is what these tests look at.
    settings.CLAUDE_MAX_RETRIES = 0
    return claude_standin


def incident_report(standin, place: str = "Kafranbel", killed: int = 3, **fields):
    text = incident_text(place, killed)
    standin.record(text, incident_tool_input(place, killed))
    return ReportFactory(text=text, language=Report.Language.ENGLISH, **fields)


@pytest.mark.django_db
def test_a_report_with_a_violation_is_processed_and_linked_both_ways(standin):
    report = incident_report(standin)

    result = process_report(report)

    report.refresh_from_db()
    violation = Violation.objects.get()
    assert result.outcome == Outcome.PROCESSED
    assert result.success
    assert (result.violations_created, result.violations_merged) == (1, 0)
    assert result.violation_ids == [violation.pk]
    assert report.status == Report.Status.PROCESSED
    assert report.attempts == 1
    assert report.violation_ids == [violation.pk]
    assert violation.report_ids == [report.pk]
    assert violation.casualties == 3
    assert report.violations_created == 1
    assert report.claim_token is None
    assert report.processing_time_ms == result.processing_time_ms


@pytest.mark.django_db
def test_the_report_keeps_the_calls_tokens_prompt_version_and_model(standin):
    report = incident_report(standin)

    result = process_report(report)

    report.refresh_from_db()
    assert report.input_tokens > 0
    assert report.output_tokens > 0
    assert result.cache_write_tokens == report.cache_write_tokens > 0
    assert result.tokens_used == (
        report.input_tokens
        + report.output_tokens
        + report.cache_read_tokens
        + report.cache_write_tokens
    )
    assert report.prompt_version != ""
    assert report.model_name == "claude-sonnet-4-5"


@pytest.mark.django_db
def test_a_report_without_violations_is_ignored_with_claudes_reason(standin):
    text = "The council met today to discuss the new bakery opening hours."
    standin.record(
        text, {"violations": [], "no_violation_reason": "A civic announcement."}
    )
    report = ReportFactory(text=text)

    result = process_report(report)

    report.refresh_from_db()
    assert result.outcome == Outcome.IGNORED
    assert result.ignored
    assert report.status == Report.Status.IGNORED
    assert report.ignore_reason == "A civic announcement."
    assert Violation.objects.count() == 0


@pytest.mark.django_db
def test_all_drafts_rejected_is_a_validation_failure_with_the_errors_kept(standin):
    text = incident_text()
    invented = violation_item(evidence="A massacre nobody reported")
    # The client asks once more after a rejection; both answers invent.
    standin.queue_response({"violations": [invented], "no_violation_reason": ""})
    standin.queue_response({"violations": [invented], "no_violation_reason": ""})
    report = ReportFactory(text=text)

    result = process_report(report)

    report.refresh_from_db()
    assert result.outcome == Outcome.RETRY
    assert report.status == Report.Status.RETRY_PENDING
    assert report.error_category == Report.ErrorCategory.VALIDATION
    assert report.error_message.startswith(
        "All 1 violations Claude returned were rejected: item 0: "
    )
    assert len(report.validation_errors) == 1
    assert report.validation_errors[0]["index"] == 0
    assert report.validation_errors == result.validation_errors
    assert Violation.objects.count() == 0


@pytest.mark.django_db
def test_a_partly_rejected_answer_is_processed_and_keeps_the_rejections(standin):
    text = incident_text()
    good = incident_tool_input()["violations"][0]
    invented = violation_item(
        location_name_en="Saraqib", evidence="Another strike hit Saraqib"
    )
    answer = {"violations": [good, invented], "no_violation_reason": ""}
    standin.queue_response(answer)
    standin.queue_response(answer)
    report = ReportFactory(text=text)

    result = process_report(report)

    report.refresh_from_db()
    assert result.outcome == Outcome.PROCESSED
    assert report.status == Report.Status.PROCESSED
    assert report.violations_created == 1
    assert [error["index"] for error in report.validation_errors] == [1]


@pytest.mark.django_db
def test_an_exact_repost_is_linked_to_the_source_without_calling_claude(standin):
    source = incident_report(standin)
    process_report(source)
    calls = len(standin.requests)
    repost = ReportFactory(text=source.text + "  ", language=source.language)

    result = process_report(repost)

    repost.refresh_from_db()
    violation = Violation.objects.get()
    assert len(standin.requests) == calls
    assert result.outcome == Outcome.PROCESSED
    assert result.repost_of == source.pk
    assert repost.status == Report.Status.PROCESSED
    assert repost.duplicate_of_id == source.pk
    assert repost.violation_ids == [violation.pk]
    assert sorted(violation.report_ids) == [source.pk, repost.pk]
    assert ViolationSource.objects.get(report=repost).role == "repost"
    assert (repost.violations_created, repost.violations_merged) == (0, 1)


@pytest.mark.django_db
def test_a_rate_limited_report_goes_back_without_spending_the_attempt(standin):
    report = incident_report(standin, attempts=1, status=Report.Status.RETRY_PENDING)
    Report.objects.filter(pk=report.pk).update(
        last_attempt=timezone.now() - datetime.timedelta(hours=1)
    )
    standin.queue_fault("rate_limited", retry_after=20)
    before = timezone.now()

    result = process_report(report)

    report.refresh_from_db()
    assert result.outcome == Outcome.RELEASED
    assert result.retry_after == 20
    assert report.status == Report.Status.RETRY_PENDING
    assert report.attempts == 1
    assert report.claim_token is None
    expected = before + datetime.timedelta(seconds=20)
    assert expected <= report.not_before <= expected + datetime.timedelta(seconds=5)
    assert Report.objects.ready_for_processing().count() == 0


@pytest.mark.django_db
def test_an_overloaded_api_defers_the_report_too(standin):
    report = incident_report(standin)
    standin.queue_fault("overloaded")

    result = process_report(report)

    report.refresh_from_db()
    assert result.outcome == Outcome.RELEASED
    assert result.error_category == "overloaded"
    assert report.status == Report.Status.UNPROCESSED
    assert report.attempts == 0
    assert report.not_before > timezone.now()


@pytest.mark.django_db
def test_an_api_error_spends_the_attempt_and_waits_for_a_retry(standin):
    report = incident_report(standin)
    standin.queue_fault("server_error")

    result = process_report(report)

    report.refresh_from_db()
    assert result.outcome == Outcome.RETRY
    assert report.status == Report.Status.RETRY_PENDING
    assert report.attempts == 1
    assert report.error_category == Report.ErrorCategory.API_ERROR
    assert report.error_message.startswith("The API failed: HTTP 500")


@pytest.mark.django_db
def test_a_request_the_api_refuses_fails_at_once_without_more_attempts(standin):
    report = incident_report(standin)
    standin.queue_fault("bad_request")

    result = process_report(report)

    report.refresh_from_db()
    assert result.outcome == Outcome.FAILED
    assert (report.status, report.attempts) == (Report.Status.FAILED, 1)
    assert report.error_category == Report.ErrorCategory.BAD_REQUEST
    assert Report.objects.ready_for_processing().count() == 0


@pytest.mark.django_db
def test_an_answer_cut_off_at_max_tokens_fails_at_once_and_keeps_its_tokens(
    standin, settings
):
    settings.CLAUDE_MAX_TOKENS = 512
    report = incident_report(standin)
    standin.queue_fault("max_tokens")

    result = process_report(report)

    report.refresh_from_db()
    assert (report.status, report.attempts) == (Report.Status.FAILED, 1)
    assert report.error_category == Report.ErrorCategory.INVALID_OUTPUT
    assert "cut off at 512 output tokens" in report.error_message
    # The cut-off answer is billed: its tokens count in the report's cost.
    assert report.output_tokens == 512
    assert report.input_tokens > 0
    assert result.output_tokens == 512


@pytest.mark.django_db
def test_the_last_allowed_attempt_failing_leaves_the_report_failed(standin, settings):
    report = incident_report(standin, attempts=2, status=Report.Status.RETRY_PENDING)
    Report.objects.filter(pk=report.pk).update(
        last_attempt=timezone.now() - datetime.timedelta(hours=1)
    )
    standin.queue_fault("bad_request")

    result = process_report(report)

    report.refresh_from_db()
    assert result.outcome == Outcome.FAILED
    assert report.status == Report.Status.FAILED
    assert report.attempts == settings.REPORTS_MAX_ATTEMPTS
    assert report.error_category == Report.ErrorCategory.BAD_REQUEST


@pytest.mark.django_db
def test_an_auth_error_releases_the_report_and_asks_to_stop_the_batch(standin):
    report = incident_report(standin)
    standin.queue_fault("auth")

    result = process_report(report)

    report.refresh_from_db()
    assert result.outcome == Outcome.RELEASED
    assert result.stops_batch
    assert result.error_category == "auth"
    assert report.status == Report.Status.UNPROCESSED
    assert report.attempts == 0
    assert report.not_before is None


@pytest.mark.django_db
def test_a_spend_limit_is_stored_on_the_released_report(standin):
    report = incident_report(standin)
    standin.queue_fault("spend_limit")
    before = timezone.now()

    result = process_report(report)

    report.refresh_from_db()
    assert result.outcome == Outcome.RELEASED
    assert (report.status, report.attempts) == (Report.Status.UNPROCESSED, 0)
    assert report.error_category == Report.ErrorCategory.SPEND_LIMIT
    assert report.error_message == result.error
    assert re.fullmatch(
        r"The spend limit is reached: HTTP 429 You have reached your specified "
        r"API usage limits\. You will regain access on 2027-01-01 at 00:00 UTC\. "
        r"\(request req_\w+\)",
        report.error_message,
    )
    assert before <= report.error_at <= timezone.now()


@pytest.mark.django_db
def test_a_rate_limit_is_stored_on_the_released_report(standin):
    report = incident_report(standin)
    standin.queue_fault("rate_limited", retry_after=20)

    process_report(report)

    report.refresh_from_db()
    assert (report.status, report.attempts) == (Report.Status.UNPROCESSED, 0)
    assert report.error_category == Report.ErrorCategory.RATE_LIMITED
    assert re.fullmatch(
        r"Rate limited, retry after 20 s: HTTP 429 Number of request tokens has "
        r"exceeded your per-minute rate limit\. \(request req_\w+\)",
        report.error_message,
    )
    assert report.error_at is not None


@pytest.mark.django_db
def test_one_report_waits_for_the_installations_request_turn(standin, settings):
    settings.CLAUDE_REQUESTS_PER_MINUTE = 300
    report = incident_report(standin)
    arrivals = []
    standin.latency = lambda: arrivals.append(time.monotonic()) or 0.0
    assert RequestPace("other-host:1").acquire() == 0
    before = time.monotonic()

    result = process_report(report)

    assert result.outcome == Outcome.PROCESSED
    # The other holder's turn lasts 60 / 300 = 0.2 s.
    assert arrivals[0] - before >= 0.15


@pytest.mark.django_db
def test_one_report_waits_for_a_free_call_slot(standin, settings):
    settings.REPORTS_MAX_CONCURRENT_CALLS = 2
    report = incident_report(standin)
    arrivals = []
    standin.latency = lambda: arrivals.append(time.monotonic()) or 0.0
    other = CallSlots("other-host:1")
    assert other.acquire() and other.acquire()
    # The other holder's leases end in 0.3 s, as when its calls finish.
    Lease.objects.filter(holder="other-host:1").update(
        expires_at=timezone.now() + datetime.timedelta(seconds=0.3)
    )
    before = time.monotonic()

    result = process_report(report)

    assert result.outcome == Outcome.PROCESSED
    assert arrivals[0] - before >= 0.25
    assert CallSlots("anyone").in_use() == 0


@pytest.mark.django_db
def test_an_unexpected_error_is_an_internal_failure_not_a_stuck_report(caplog):
    report = ReportFactory()
    assert report.mark_as_processing()

    result = finish_report(
        report, CallOutcome(error=RuntimeError("boom")), started=time.monotonic()
    )

    report.refresh_from_db()
    assert result.outcome == Outcome.RETRY
    assert report.status == Report.Status.RETRY_PENDING
    assert report.error_category == Report.ErrorCategory.INTERNAL
    assert report.error_message == "RuntimeError: boom"
    assert "unexpected error in the Claude call" in caplog.text


@pytest.mark.django_db
def test_a_report_that_is_not_ready_is_skipped_without_a_call(standin):
    report = incident_report(standin, status=Report.Status.PROCESSED)

    result = process_report(report)

    report.refresh_from_db()
    assert result.outcome == Outcome.SKIPPED
    assert result.error == f"Report {report.pk} is not ready for processing."
    assert report.status == Report.Status.PROCESSED
    assert standin.requests == []


@pytest.mark.django_db
def test_a_result_is_discarded_when_the_claim_was_taken_over(standin):
    report = incident_report(standin)
    assert report.mark_as_processing()
    stale = Report.objects.get(pk=report.pk)
    # Another worker took the report over after the stuck timeout.
    assert Report.objects.get(pk=report.pk).mark_as_processing(
        now=timezone.now() + datetime.timedelta(hours=1)
    )

    result = process_report(stale, claimed=True)

    assert result.outcome == Outcome.SKIPPED
    assert Violation.objects.count() == 0
    report.refresh_from_db()
    assert report.status == Report.Status.PROCESSING
    assert report.input_tokens == 0
