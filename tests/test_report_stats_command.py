import datetime
import io
import json

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from reports.models import Report
from reports.stats import parse_since, report_stats
from tests.factories import ReportFactory

NOW = datetime.datetime(2026, 11, 30, 12, 0, tzinfo=datetime.UTC)
HOUR = datetime.timedelta(hours=1)
Status = Report.Status
Category = Report.ErrorCategory

pytestmark = pytest.mark.django_db


def finished(status: str, *, hours_ago: float = 1, **values) -> Report:
    return ReportFactory(
        status=status,
        attempts=values.pop("attempts", 1),
        finished_at=NOW - hours_ago * HOUR,
        **values,
    )


@pytest.fixture
def reports():
    """A small installation: 20 processed, 2 ignored, failures, and a queue."""
    for n in range(1, 21):
        finished(
            Status.PROCESSED,
            processing_time_ms=n * 1000,
            violations_created=2,
            violations_merged=1 if n % 5 == 0 else 0,
            input_tokens=1000,
            output_tokens=200,
            cache_read_tokens=500,
            hours_ago=30 if n <= 10 else 2,
        )
    finished(Status.IGNORED, processing_time_ms=900, input_tokens=800)
    finished(Status.IGNORED, hours_ago=50, ignore_reason="no violation")
    finished(Status.FAILED, attempts=3, error_category=Category.API_ERROR)
    finished(Status.RETRY_PENDING, attempts=2, error_category=Category.OVERLOADED)
    finished(Status.RETRY_PENDING, error_category=Category.API_ERROR, hours_ago=40)
    oldest = ReportFactory(
        created_at=NOW - 5 * HOUR - 7 * datetime.timedelta(minutes=1)
    )
    ReportFactory(created_at=NOW - HOUR)
    ReportFactory(status=Status.PROCESSING, attempts=1, created_at=NOW - 2 * HOUR)
    return oldest


class TestReportStats:
    def test_empty_database(self):
        stats = report_stats(now=NOW)

        assert stats.total == 0
        assert set(stats.by_status.values()) == {0}
        assert stats.attempts == {}
        assert stats.success_rate is None
        assert stats.mean_processing_seconds is None
        assert stats.p95_processing_seconds is None
        assert stats.oldest_waiting is None
        assert stats.tokens == {
            "input": 0,
            "output": 0,
            "cache_read": 0,
            "cache_write": 0,
            "total": 0,
        }

    def test_all_figures(self, reports):
        stats = report_stats(now=NOW)

        assert stats.by_status == {
            "unprocessed": 2,
            "processing": 1,
            "processed": 20,
            "failed": 1,
            "ignored": 2,
            "retry_pending": 2,
        }
        assert stats.total == 28
        assert stats.waiting == 5
        assert stats.attempts == {0: 2, 1: 24, 2: 1, 3: 1}
        assert (stats.succeeded, stats.failed) == (22, 3)
        assert stats.success_rate == pytest.approx(22 / 25)
        # Processed reports only: 1..20 s.
        assert stats.timed_reports == 20
        assert stats.mean_processing_seconds == pytest.approx(10.5)
        assert stats.p95_processing_seconds == 19.0
        assert (stats.violations_created, stats.violations_merged) == (40, 4)
        assert stats.errors_by_category == {"api_error": 2, "overloaded": 1}
        assert stats.tokens == {
            "input": 20_800,
            "output": 4_000,
            "cache_read": 10_000,
            "cache_write": 0,
            "total": 34_800,
        }

    def test_oldest_waiting_report(self, reports):
        stats = report_stats(now=NOW)

        assert stats.oldest_waiting.report_id == reports.pk
        assert stats.oldest_waiting.status == "unprocessed"
        assert stats.oldest_waiting.waiting_seconds == 5 * 3600 + 7 * 60

    def test_since_limits_outcomes_to_the_period_but_keeps_the_queue(self, reports):
        stats = report_stats(since=NOW - 24 * HOUR, now=NOW)

        assert stats.by_status == {
            "unprocessed": 2,
            "processing": 1,
            "processed": 10,
            "failed": 1,
            "ignored": 1,
            "retry_pending": 2,
        }
        assert (stats.succeeded, stats.failed) == (11, 2)
        assert stats.mean_processing_seconds == pytest.approx(15.5)
        assert stats.p95_processing_seconds == 20.0
        assert (stats.violations_created, stats.violations_merged) == (20, 2)
        assert stats.errors_by_category == {"api_error": 1, "overloaded": 1}
        assert stats.tokens["input"] == 10_800
        assert stats.oldest_waiting.report_id == reports.pk

    def test_six_queries_whatever_the_number_of_reports(
        self, reports, django_assert_num_queries
    ):
        # Outcomes, times, violations and tokens come from one aggregate, the
        # one the dashboard uses; PostgreSQL's percentile spares the p95 row read.
        expected = 5 if connection.vendor == "postgresql" else 6
        with django_assert_num_queries(expected):
            report_stats(since=NOW - 24 * HOUR, now=NOW)

    def test_as_dict_is_json_ready(self, reports):
        data = report_stats(now=NOW).as_dict()

        assert json.loads(json.dumps(data)) == data
        assert data["attempts"] == {"0": 2, "1": 24, "2": 1, "3": 1}
        assert data["generated_at"] == "2026-11-30T12:00:00+00:00"
        assert data["oldest_waiting"]["created_at"] == "2026-11-30T06:53:00+00:00"
        assert data["total"] == 28


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", NOW - datetime.timedelta(minutes=30)),
        ("24h", NOW - 24 * HOUR),
        ("7d", NOW - datetime.timedelta(days=7)),
        (" 2W ", NOW - datetime.timedelta(weeks=2)),
        ("2026-11-01", datetime.datetime(2026, 11, 1, tzinfo=datetime.UTC)),
        (
            "2026-11-01T10:00+02:00",
            datetime.datetime(2026, 11, 1, 8, tzinfo=datetime.UTC),
        ),
    ],
)
def test_parse_since(text, expected):
    assert parse_since(text, now=NOW) == expected


def test_parse_since_refuses_other_text():
    with pytest.raises(ValueError) as error:
        parse_since("yesterday", now=NOW)

    assert str(error.value) == (
        "'yesterday' is not a period such as 30m, 24h, 7d or 2w, nor an ISO date."
    )


def run(*args: str) -> str:
    out = io.StringIO()
    with time_machine.travel(NOW, tick=False):
        call_command("report_stats", *args, stdout=out, no_color=True)
    return out.getvalue()


class TestCommand:
    def test_table(self, reports):
        output = run()

        assert output.splitlines() == [
            "Reports (all)",
            "  unprocessed            2",
            "  processing             1",
            "  processed             20",
            "  failed                 1",
            "  ignored                2",
            "  retry_pending          2",
            "  total                 28",
            "Attempts used",
            "  0                      2",
            "  1                     24",
            "  2                      1",
            "  3                      1",
            "Processing",
            "  success rate        88.0% (22 of 25 processed or ignored)",
            "  processing time     mean 10.5 s, p95 19.0 s (20 processed)",
            "  violations          40 created, 4 merged",
            "  errors by category  api_error 2, overloaded 1",
            f"  oldest waiting      report {reports.pk} (unprocessed), "
            "waiting 5 h 7 min since 2026-11-30 06:53 UTC",
            "  tokens              34,800 in all (input 20,800, output 4,000, "
            "cache read 10,000, cache write 0)",
            "28 reports: 20 processed, 2 ignored, 1 failed, 5 waiting; "
            "40 violations created, 4 merged.",
        ]

    def test_table_of_an_empty_database(self):
        lines = run().splitlines()

        assert lines[-8:] == [
            "Processing",
            "  success rate        no finished reports",
            "  processing time     no processed reports",
            "  violations          0 created, 0 merged",
            "  errors by category  none",
            "  oldest waiting      none, the queue is empty",
            "  tokens              0 in all (input 0, output 0, cache read 0, "
            "cache write 0)",
            "0 reports: 0 processed, 0 ignored, 0 failed, 0 waiting; "
            "0 violations created, 0 merged.",
        ]

    def test_since(self, reports):
        lines = run("--since", "24h").splitlines()

        assert lines[0] == (
            "Reports (finished since 2026-11-29 12:00 UTC, and all waiting)"
        )
        assert lines[-1] == (
            "17 reports: 10 processed, 1 ignored, 1 failed, 5 waiting; "
            "20 violations created, 2 merged."
        )

    def test_json(self, reports):
        data = json.loads(run("--json", "--since", "7d"))

        assert data["since"] == "2026-11-23T12:00:00+00:00"
        assert data["by_status"]["processed"] == 20
        assert data["success_rate"] == pytest.approx(0.88)
        assert data["p95_processing_seconds"] == 19.0
        assert data["oldest_waiting"]["report_id"] == reports.pk

    def test_bad_since_is_an_error(self):
        with pytest.raises(CommandError) as error:
            run("--since", "last week")

        assert str(error.value) == (
            "--since: 'last week' is not a period such as 30m, 24h, 7d or 2w, "
            "nor an ISO date."
        )


def test_figures_follow_the_database(reports):
    """Counts come from the database at call time, not from a cache."""
    Report.objects.filter(status=Status.UNPROCESSED).update(
        status=Status.IGNORED, finished_at=timezone.now(), ignore_reason="test"
    )

    stats = report_stats(now=NOW)

    assert stats.by_status["unprocessed"] == 0
    assert stats.by_status["ignored"] == 4
