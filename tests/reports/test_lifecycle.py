import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from reports.models import Report
from tests.factories import ReportFactory, ViolationFactory

pytestmark = pytest.mark.django_db

NOW = datetime.datetime(2026, 3, 1, 12, 0, tzinfo=datetime.UTC)


def claimed_report(**fields) -> Report:
    report = ReportFactory(**fields)
    assert report.mark_as_processing(now=NOW)
    return report


def test_mark_as_processing_counts_the_attempt_and_stamps_the_times():
    report = ReportFactory()

    assert report.mark_as_processing(now=NOW) is True

    report.refresh_from_db()
    assert report.status == Report.Status.PROCESSING
    assert report.attempts == 1
    assert report.last_attempt == NOW
    assert report.started_at == NOW
    assert report.claim_token is not None


def test_mark_as_processing_twice_changes_nothing_the_second_time():
    report = claimed_report()
    token = report.claim_token

    assert report.mark_as_processing(now=NOW) is False

    report.refresh_from_db()
    assert report.attempts == 1
    assert report.claim_token == token


def test_mark_as_processed_records_time_and_counts_linked_violations():
    report = claimed_report()
    created, merged = ViolationFactory(), ViolationFactory()
    created.link_to_report(report)
    merged.link_to_report(report, role="merged")

    assert report.mark_as_processed([created.pk, merged.pk], 1234, violations_merged=1)

    report.refresh_from_db()
    assert report.status == Report.Status.PROCESSED
    assert report.processing_time_ms == 1234
    assert report.violations_created == 1
    assert report.violations_merged == 1
    assert report.violation_ids == sorted([created.pk, merged.pk])
    assert report.claim_token is None


def test_mark_as_processed_refuses_violations_that_are_not_linked():
    report = claimed_report()
    stranger = ViolationFactory()

    with pytest.raises(ValueError, match=rf"\[{stranger.pk}\] are not linked"):
        report.mark_as_processed([stranger.pk], 10)

    report.refresh_from_db()
    assert report.status == Report.Status.PROCESSING


def test_mark_as_processed_is_one_query_when_the_links_are_in_place():
    report = claimed_report()
    first, second = ViolationFactory(), ViolationFactory()
    first.link_to_report(report)
    second.link_to_report(report, role="merged")

    with CaptureQueriesContext(connection) as queries:
        done = report.mark_as_processed([first.pk, second.pk, first.pk], 20)

    assert done is True
    assert len(queries) == 1
    assert (report.status, report.violations_created) == ("processed", 2)
    report.refresh_from_db()
    assert (report.status, report.violations_created) == ("processed", 2)


def test_mark_as_processed_refuses_a_list_with_one_link_missing():
    report = claimed_report()
    linked, stranger = ViolationFactory(), ViolationFactory()
    linked.link_to_report(report)
    stranger.link_to_report(ReportFactory())

    with pytest.raises(ValueError, match=rf"\[{stranger.pk}\] are not linked"):
        report.mark_as_processed([linked.pk, stranger.pk], 10)

    report.refresh_from_db()
    assert report.status == Report.Status.PROCESSING


def test_finishing_a_report_that_is_not_processing_changes_nothing():
    report = ReportFactory()

    assert report.mark_as_processed([], 10) is False
    assert report.mark_as_failed("api_error", "boom") is False

    report.refresh_from_db()
    assert report.status == Report.Status.UNPROCESSED
    assert report.error_category == ""


def test_a_late_writer_whose_claim_was_taken_over_cannot_finish():
    report = claimed_report()
    late_worker_copy = Report.objects.get(pk=report.pk)
    stuck_cutoff = NOW + datetime.timedelta(minutes=6)
    assert report.mark_as_processing(now=stuck_cutoff)

    assert late_worker_copy.mark_as_processed([], 50) is False
    assert late_worker_copy.mark_as_failed("api_error", "late") is False

    report.refresh_from_db()
    assert report.status == Report.Status.PROCESSING
    assert report.attempts == 2


def test_mark_as_failed_goes_to_retry_pending_while_attempts_remain():
    report = claimed_report()

    assert report.mark_as_failed("api_error", "HTTP 500 from the API", now=NOW)

    report.refresh_from_db()
    assert report.status == Report.Status.RETRY_PENDING
    assert report.error_details == {
        "category": "api_error",
        "message": "HTTP 500 from the API",
        "at": NOW.isoformat(),
    }


def test_mark_as_failed_on_the_last_attempt_is_final(settings):
    settings.REPORTS_MAX_ATTEMPTS = 1
    report = claimed_report()

    assert report.mark_as_failed("validation", "no valid violation")

    report.refresh_from_db()
    assert report.status == Report.Status.FAILED
    assert report.error_category == "validation"


def test_mark_as_failed_rejects_an_unknown_category():
    report = claimed_report()

    with pytest.raises(ValueError, match="'nonsense' is not a valid"):
        report.mark_as_failed("nonsense", "x")


def test_mark_as_ignored_stores_the_reason():
    report = claimed_report()

    assert report.mark_as_ignored("Claude found no violation: a statement.")

    report.refresh_from_db()
    assert report.status == Report.Status.IGNORED
    assert report.ignore_reason == "Claude found no violation: a statement."


def test_staff_can_ignore_an_unprocessed_report_but_not_a_processed_one():
    waiting = ReportFactory()
    done = ReportFactory(status=Report.Status.PROCESSED)

    assert waiting.mark_as_ignored("advert") is True
    assert done.mark_as_ignored("advert") is False

    done.refresh_from_db()
    assert done.status == Report.Status.PROCESSED


def test_mark_as_ignored_needs_a_reason():
    report = ReportFactory()

    with pytest.raises(ValueError, match="A reason is required"):
        report.mark_as_ignored("  ")


def test_release_gives_back_the_attempt_and_the_previous_state():
    earlier = NOW - datetime.timedelta(hours=1)
    report = ReportFactory(
        status=Report.Status.RETRY_PENDING, attempts=1, last_attempt=earlier
    )
    assert report.mark_as_processing(now=NOW)
    later = NOW + datetime.timedelta(seconds=30)

    assert report.release(not_before=later)

    report.refresh_from_db()
    assert report.status == Report.Status.RETRY_PENDING
    assert report.attempts == 1
    assert report.last_attempt == earlier
    assert report.not_before == later
    assert report.claim_token is None


def test_release_of_a_first_attempt_returns_to_unprocessed():
    report = claimed_report()

    assert report.release()

    report.refresh_from_db()
    assert report.status == Report.Status.UNPROCESSED
    assert report.attempts == 0


def test_release_with_an_error_stores_it_without_spending_the_attempt():
    report = claimed_report()

    assert report.release(
        error_category="spend_limit",
        error_message="Your credit balance is too low.",
        now=NOW,
    )

    report.refresh_from_db()
    assert (report.status, report.attempts) == (Report.Status.UNPROCESSED, 0)
    assert report.error_details == {
        "category": "spend_limit",
        "message": "Your credit balance is too low.",
        "at": NOW.isoformat(),
    }


def test_release_without_an_error_keeps_the_previous_one():
    report = ReportFactory(
        status=Report.Status.RETRY_PENDING,
        attempts=1,
        last_attempt=NOW - datetime.timedelta(hours=1),
        error_category="api_error",
        error_message="HTTP 500 from the API",
        error_at=NOW,
    )
    assert report.mark_as_processing(now=NOW)

    assert report.release()

    report.refresh_from_db()
    assert report.status == Report.Status.RETRY_PENDING
    assert (report.error_category, report.error_message) == (
        "api_error",
        "HTTP 500 from the API",
    )


def test_reset_for_reprocessing_clears_attempts():
    report = ReportFactory(status=Report.Status.FAILED, attempts=3)

    assert report.reset_for_reprocessing()

    report.refresh_from_db()
    assert report.status == Report.Status.UNPROCESSED
    assert report.attempts == 0


def test_processing_metadata_uses_the_original_names():
    report = claimed_report()
    report.mark_as_failed("rate_limited", "429", now=NOW)

    metadata = report.processing_metadata

    assert metadata["attempts"] == 1
    assert metadata["last_attempt"] == NOW
    assert metadata["error_details"]["category"] == "rate_limited"
    assert set(metadata) == {
        "attempts",
        "last_attempt",
        "processing_time_ms",
        "violations_created",
        "error_details",
        "started_at",
    }


def test_reposts_share_a_text_fingerprint():
    original = ReportFactory(text="قُتِلَ ٣ مدنيين في قصفٍ على إدلب.")
    repost = ReportFactory(text="قتل 3 مدنيين في قصف على ادلب")

    assert original.text_hash == repost.text_hash


def test_published_more_than_an_hour_ahead_is_rejected():
    report = ReportFactory.build(
        published_at=timezone.now() + datetime.timedelta(hours=2)
    )

    with pytest.raises(Exception, match="more than an hour ahead"):
        report.full_clean()
