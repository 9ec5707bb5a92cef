import datetime

import pytest

from reports.models import Report
from tests.factories import ReportFactory

pytestmark = pytest.mark.django_db

NOW = datetime.datetime(2026, 3, 1, 12, 0, tzinfo=datetime.UTC)


def ready_ids(limit=None):
    return list(
        Report.objects.ready_for_processing(limit, now=NOW).values_list("pk", flat=True)
    )


def test_fresh_unprocessed_reports_are_ready():
    report = ReportFactory()

    assert ready_ids() == [report.pk]


def test_retry_pending_waits_for_the_retry_delay():
    due = ReportFactory(
        status=Report.Status.RETRY_PENDING,
        attempts=1,
        last_attempt=NOW - datetime.timedelta(minutes=30),
    )
    ReportFactory(
        status=Report.Status.RETRY_PENDING,
        attempts=1,
        last_attempt=NOW - datetime.timedelta(minutes=29),
    )

    assert ready_ids() == [due.pk]


def test_retry_delay_setting_is_the_one_applied(settings):
    settings.REPORTS_RETRY_DELAY_SECONDS = 60
    report = ReportFactory(
        status=Report.Status.RETRY_PENDING,
        attempts=1,
        last_attempt=NOW - datetime.timedelta(minutes=2),
    )

    assert ready_ids() == [report.pk]


def test_processing_reports_are_ready_only_once_stuck():
    stuck = ReportFactory(
        status=Report.Status.PROCESSING,
        attempts=1,
        started_at=NOW - datetime.timedelta(minutes=5),
    )
    ReportFactory(
        status=Report.Status.PROCESSING,
        attempts=1,
        started_at=NOW - datetime.timedelta(minutes=4),
    )

    assert ready_ids() == [stuck.pk]


def test_reports_that_used_all_attempts_are_never_ready():
    ReportFactory(status=Report.Status.RETRY_PENDING, attempts=3, last_attempt=NOW)
    ReportFactory(
        status=Report.Status.PROCESSING,
        attempts=3,
        started_at=NOW - datetime.timedelta(hours=1),
    )

    assert ready_ids() == []


@pytest.mark.parametrize("status", ["processed", "failed", "ignored"])
def test_finished_reports_are_never_ready(status):
    ReportFactory(status=status)

    assert ready_ids() == []


def test_a_deferred_report_waits_until_not_before():
    ReportFactory(not_before=NOW + datetime.timedelta(seconds=1))
    due = ReportFactory(not_before=NOW)

    assert ready_ids() == [due.pk]


def test_a_rate_limited_retry_is_ready_at_not_before_despite_a_recent_attempt():
    report = ReportFactory(
        status=Report.Status.RETRY_PENDING,
        attempts=1,
        last_attempt=NOW - datetime.timedelta(minutes=1),
        not_before=NOW,
    )

    assert ready_ids() == [report.pk]


def test_highest_priority_first_then_newest():
    old = ReportFactory(scraped_at=NOW - datetime.timedelta(hours=2))
    new = ReportFactory(scraped_at=NOW - datetime.timedelta(hours=1))
    urgent = ReportFactory(
        scraped_at=NOW - datetime.timedelta(days=3), priority=Report.Priority.URGENT
    )

    assert ready_ids() == [urgent.pk, new.pk, old.pk]
    assert ready_ids(limit=2) == [urgent.pk, new.pk]


def test_a_stuck_report_with_no_attempts_left_becomes_failed_when_claiming():
    stuck = ReportFactory(
        status=Report.Status.PROCESSING,
        attempts=3,
        started_at=NOW - datetime.timedelta(minutes=10),
    )

    assert Report.objects.claim(5, now=NOW) == []

    stuck.refresh_from_db()
    assert stuck.status == Report.Status.FAILED
    assert stuck.error_category == Report.ErrorCategory.STUCK
    assert "No result within 300 s" in stuck.error_message
