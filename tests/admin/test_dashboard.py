import datetime

import pytest
from django.urls import reverse
from django.utils import timezone
from django_q.models import Schedule, Task

from reports.dashboard import dashboard_data
from reports.models import Report
from tests.admin.conftest import logged_in
from tests.factories import ReportFactory

DASHBOARD = reverse("admin:reports_dashboard")


def finished(minutes_ago: int, **fields) -> Report:
    at = timezone.now() - datetime.timedelta(minutes=minutes_ago)
    return ReportFactory(finished_at=at, **fields)


def processed(minutes_ago: int, time_ms: int, **fields) -> Report:
    return finished(
        minutes_ago,
        status=Report.Status.PROCESSED,
        processing_time_ms=time_ms,
        **fields,
    )


@pytest.mark.django_db
class TestDashboardPage:
    def test_index_links_the_dashboard(self, staff_client):
        content = staff_client.get(reverse("admin:index")).content.decode()

        assert f'<a href="{DASHBOARD}">Processing dashboard</a>' in content

    def test_volunteer_has_no_link_and_no_access(self, volunteer_client):
        content = volunteer_client.get(reverse("admin:index")).content.decode()

        assert DASHBOARD not in content
        assert volunteer_client.get(DASHBOARD).status_code == 403

    def test_superuser_may_view_it(self, db):
        from django.contrib.auth.models import User

        admin = User.objects.create_superuser("root", password="secret-pass")

        assert logged_in(admin).get(DASHBOARD).status_code == 200

    def test_page_draws_svg_charts_with_bars(self, staff_client):
        processed(30, 4000, violations_created=2)
        finished(90, status=Report.Status.FAILED, error_category="api_error")

        response = staff_client.get(DASHBOARD)

        content = response.content.decode()
        assert response.status_code == 200
        assert content.count('<svg class="chart"') == 4
        assert '<rect class="bar"' in content
        assert "Reports finished per hour" in content
        assert "API error: 1" in content

    def test_page_shows_schedule_next_run_and_last_result(self, staff_client):
        now = timezone.now()
        task = Task.objects.create(
            id="a" * 32,
            name="batch-one",
            func="reports.tasks.process_batch",
            started=now - datetime.timedelta(minutes=9),
            stopped=now - datetime.timedelta(minutes=8),
            success=True,
            result={"processed": 4, "failed": 0},
        )
        Schedule.objects.create(
            name="process reports",
            func="reports.tasks.process_batch",
            schedule_type=Schedule.CRON,
            cron="*/10 * * * *",
            next_run=now + datetime.timedelta(minutes=2),
            task=task.id,
        )

        content = staff_client.get(DASHBOARD).content.decode()

        assert "process reports" in content
        assert "*/10 * * * *" in content
        assert "(succeeded)" in content
        assert "{&#x27;processed&#x27;: 4, &#x27;failed&#x27;: 0}" in content


@pytest.mark.django_db
class TestDashboardFigures:
    def test_queue_counts_ready_retry_and_stuck(self, settings):
        settings.REPORTS_STUCK_TIMEOUT_SECONDS = 300
        ReportFactory.create_batch(2)
        ReportFactory(status=Report.Status.RETRY_PENDING, attempts=1)
        ReportFactory(
            status=Report.Status.PROCESSING,
            attempts=1,
            started_at=timezone.now() - datetime.timedelta(minutes=10),
        )
        ReportFactory(
            status=Report.Status.PROCESSING, attempts=1, started_at=timezone.now()
        )

        queue = dashboard_data()["queue"]

        # The stuck report is claimable again, so it is also ready now.
        assert queue == {"ready": 3, "retry_pending": 1, "stuck": 1, "processing": 2}

    def test_rates_times_and_failures_by_category(self):
        for index, time_ms in enumerate([1000, 2000, 3000, 4000, 20000]):
            processed(10 + index, time_ms)
        finished(20, status=Report.Status.IGNORED)
        finished(30, status=Report.Status.FAILED, error_category="invalid_output")
        finished(40, status=Report.Status.RETRY_PENDING, error_category="api_error")
        finished(50, status=Report.Status.RETRY_PENDING, error_category="api_error")
        processed(60 * 24 * 8, 99000)  # outside the 7-day window

        data = dashboard_data()

        assert data["outcomes"]["total"] == 9
        assert data["outcomes"]["succeeded"] == 6
        assert data["outcomes"]["success_rate"] == 66.7
        assert data["outcomes"]["failure_rate"] == 33.3
        assert data["outcomes"]["failures_by_category"] == [
            {"category": "api_error", "label": "API error", "count": 2},
            {"category": "invalid_output", "label": "Invalid output", "count": 1},
        ]
        assert data["times"] == {"mean": 6.0, "p95": 20.0, "count": 5}

    def test_tokens_and_estimated_cost(self, settings):
        settings.CLAUDE_PRICE_INPUT_PER_MTOK = 3.0
        settings.CLAUDE_PRICE_OUTPUT_PER_MTOK = 15.0
        settings.CLAUDE_PRICE_CACHE_READ_PER_MTOK = 0.3
        settings.CLAUDE_PRICE_CACHE_WRITE_PER_MTOK = 3.75
        processed(
            5,
            1000,
            input_tokens=1_000_000,
            output_tokens=100_000,
            cache_read_tokens=2_000_000,
            cache_write_tokens=0,
        )

        tokens = dashboard_data()["tokens"]

        assert tokens["total"] == 3_100_000
        assert tokens["cost"] == pytest.approx(3.0 + 1.5 + 0.6)

    def test_violations_created_and_merged(self):
        processed(5, 1000, violations_created=3, violations_merged=1)
        processed(6, 1000, violations_created=0, violations_merged=2)

        assert dashboard_data()["violations"] == {"created": 3, "merged": 3}

    def test_hourly_chart_has_a_bar_per_hour_with_the_counts(self):
        now = timezone.now().replace(minute=30, second=0, microsecond=0)
        for minutes_ago, status in [(5, "processed"), (20, "processed"), (6, "failed")]:
            ReportFactory(
                status=status, finished_at=now - datetime.timedelta(minutes=minutes_ago)
            )
        ReportFactory(status="processed", finished_at=now - datetime.timedelta(hours=2))

        chart = dashboard_data(now=now)["charts"][1]

        assert len(chart.bars) == 7 * 24 + 1
        assert chart.bars[-1].segments == [(2, "#2e7d32"), (1, "#c62828")]
        assert chart.bars[-3].segments == [(1, "#2e7d32"), (0, "#c62828")]
        assert str(chart.svg).count('<rect class="bar"') == 3
