import datetime

import pytest
from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.signing import SignedPackage

from reports.models import Report
from tests.admin.conftest import logged_in, make_user
from tests.factories import ReportFactory, ViolationFactory, ViolationSourceFactory
from violations.models import ViolationSource

CHANGELIST = reverse("admin:reports_report_changelist")


def messages_of(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def post_action(client, action: str, reports, **fields):
    data = {"action": action, "_selected_action": [r.pk for r in reports], **fields}
    return client.post(CHANGELIST, data)


def failed_report(**kwargs) -> Report:
    return ReportFactory(
        status=Report.Status.FAILED,
        attempts=3,
        error_category=Report.ErrorCategory.API_ERROR,
        error_message="API error 500",
        **kwargs,
    )


def queued_tasks() -> list[dict]:
    """Takes every task off the django-q2 broker and returns the decoded ones."""
    broker = get_broker()
    tasks = []
    while broker.queue_size():
        for task_id, payload in broker.dequeue() or []:
            tasks.append(SignedPackage.loads(payload))
            broker.acknowledge(task_id)
    return tasks


@pytest.mark.django_db
class TestReportList:
    def test_list_shows_coloured_status_counts_and_time(self, staff_client):
        report = ReportFactory(
            status=Report.Status.PROCESSED,
            violations_created=2,
            violations_merged=1,
            processing_time_ms=6400,
        )

        response = staff_client.get(CHANGELIST)

        content = response.content.decode()
        assert response.status_code == 200
        assert f'<a href="/admin/reports/report/{report.pk}/change/">' in content
        assert 'class="report-status status-processed"' in content
        assert '<td class="field-violations_count">3</td>' in content
        assert '<td class="field-processing_time">6.4 s</td>' in content

    def test_list_is_newest_first(self, staff_client):
        older = ReportFactory(scraped_at=timezone.now() - datetime.timedelta(days=1))
        newer = ReportFactory()

        response = staff_client.get(CHANGELIST)

        shown = [report.pk for report in response.context["cl"].result_list]
        assert shown == [newer.pk, older.pk]

    def test_filters_by_status_channel_and_error_category(self, staff_client):
        failed = failed_report(channel="aleppo_now")
        ReportFactory(channel="aleppo_now")
        ReportFactory(status=Report.Status.FAILED, error_category="auth")

        query = {"status": "failed", "channel": "aleppo_now"}
        query["error_category"] = "api_error"
        response = staff_client.get(CHANGELIST, query)

        assert [r.pk for r in response.context["cl"].result_list] == [failed.pk]

    def test_search_finds_arabic_text(self, staff_client):
        wanted = ReportFactory(text="اعتقال خمسة شبان في مدينة دوما صباح اليوم")
        ReportFactory()

        response = staff_client.get(CHANGELIST, {"q": "دوما"})

        assert [r.pk for r in response.context["cl"].result_list] == [wanted.pk]

    def test_query_count_does_not_grow_with_rows(self, staff_client):
        ReportFactory.create_batch(3, violations_created=1)
        with CaptureQueriesContext(connection) as few:
            staff_client.get(CHANGELIST)

        ReportFactory.create_batch(40, violations_created=1)
        with CaptureQueriesContext(connection) as many:
            response = staff_client.get(CHANGELIST)

        assert response.status_code == 200
        assert len(response.context["cl"].result_list) == 43
        assert len(many) == len(few)

    def test_filter_counts_are_never_computed(self, staff_client):
        ReportFactory.create_batch(3)
        with CaptureQueriesContext(connection) as plain:
            staff_client.get(CHANGELIST)

        with CaptureQueriesContext(connection) as facets:
            response = staff_client.get(CHANGELIST, {"_facets": "True"})

        assert "Show counts" not in response.content.decode()
        assert len(facets) == len(plain)

    def test_unfiltered_list_runs_no_full_count(self, staff_client):
        ReportFactory.create_batch(3)

        with CaptureQueriesContext(connection) as queries:
            staff_client.get(CHANGELIST, {"status": "unprocessed"})

        # show_full_result_count = False: only the filtered count runs.
        counts = [q["sql"] for q in queries if "COUNT(" in q["sql"].upper()]
        assert len(counts) == 1
        assert "status" in counts[0]


@pytest.mark.django_db
class TestReprocess:
    def test_confirmation_page_lists_what_will_change(self, staff_client):
        failed = failed_report()
        processing = ReportFactory(status=Report.Status.PROCESSING, attempts=1)

        response = post_action(staff_client, "reprocess", [failed, processing])

        content = response.content.decode()
        assert response.status_code == 200
        assert "Reprocess reports" in content
        assert "<td>Failed</td><td>1</td>\n<td>unprocessed, attempts 0</td>" in content
        assert "<td>Processing</td><td>1</td>\n<td>left unchanged</td>" in content
        assert "Process now in the background" in content
        failed.refresh_from_db()
        assert failed.status == Report.Status.FAILED

    def test_reprocess_sends_reports_back_to_the_queue(self, staff_client):
        first, second = failed_report(), failed_report()
        processing = ReportFactory(status=Report.Status.PROCESSING, attempts=1)

        response = post_action(
            staff_client, "reprocess", [first, second, processing], post="yes"
        )

        assert response.status_code == 302
        for report in (first, second):
            report.refresh_from_db()
            assert report.status == Report.Status.UNPROCESSED
            assert report.attempts == 0
        processing.refresh_from_db()
        assert processing.status == Report.Status.PROCESSING
        assert messages_of(response) == [
            "2 reports sent back to the queue.",
            "1 report was left unchanged: they are being processed.",
        ]
        assert queued_tasks() == []

    def test_reprocess_now_queues_a_task_per_report(
        self, staff_client, django_capture_on_commit_callbacks
    ):
        first, second = failed_report(), failed_report()

        with django_capture_on_commit_callbacks(execute=True):
            response = post_action(
                staff_client, "reprocess", [first, second], post="yes", now="on"
            )

        assert messages_of(response) == [
            "2 reports sent back to the queue and queued for processing now."
        ]
        tasks = queued_tasks()
        assert {task["func"] for task in tasks} == {
            "reports.tasks.process_single_report"
        }
        assert sorted(task["args"] for task in tasks) == [(first.pk,), (second.pk,)]


@pytest.mark.django_db
class TestIgnore:
    def test_reason_is_required(self, staff_client):
        report = failed_report()

        response = post_action(staff_client, "ignore", [report], post="yes", reason=" ")

        assert response.status_code == 200
        assert "A reason is required to ignore reports." in response.content.decode()
        report.refresh_from_db()
        assert report.status == Report.Status.FAILED

    def test_ignore_stores_the_reason(self, staff_client):
        report = failed_report()
        processed = ReportFactory(status=Report.Status.PROCESSED)

        response = post_action(
            staff_client,
            "ignore",
            [report, processed],
            post="yes",
            reason="Advertisement, no incident.",
        )

        report.refresh_from_db()
        assert report.status == Report.Status.IGNORED
        assert report.ignore_reason == "Advertisement, no incident."
        processed.refresh_from_db()
        assert processed.status == Report.Status.PROCESSED
        assert messages_of(response) == [
            "1 report marked ignored.",
            "1 report was left unchanged: only unprocessed, retry-pending or "
            "failed reports can be ignored.",
        ]

    def test_confirmation_page_asks_for_a_reason(self, staff_client):
        report = failed_report()

        response = post_action(staff_client, "ignore", [report])

        content = response.content.decode()
        assert '<textarea name="reason"' in content
        assert "<td>Failed</td><td>1</td>\n<td>ignored</td>" in content


@pytest.mark.django_db
class TestPermissions:
    def test_volunteer_sees_no_actions(self, volunteer_client):
        ReportFactory()

        response = volunteer_client.get(CHANGELIST)

        assert response.status_code == 200
        assert 'value="reprocess"' not in response.content.decode()
        assert 'value="ignore"' not in response.content.decode()

    def test_volunteer_cannot_post_an_action(self, volunteer_client):
        report = failed_report()

        response = post_action(volunteer_client, "reprocess", [report], post="yes")

        report.refresh_from_db()
        assert report.status == Report.Status.FAILED
        # No action is offered to this user, so the POST is not taken as one.
        assert response.status_code == 200
        assert messages_of(response) == []

    def test_nobody_adds_reports_by_hand(self, staff_client):
        response = staff_client.get(reverse("admin:reports_report_add"))

        assert response.status_code == 403

    def test_reprocess_permission_alone_offers_only_reprocess(self, db):
        permissions = ["reports.view_report", "reports.reprocess_report"]
        client = logged_in(make_user("reprocessor", permissions))

        content = client.get(CHANGELIST).content.decode()

        assert 'value="reprocess"' in content
        assert 'value="ignore"' not in content


@pytest.mark.django_db
class TestReportDetail:
    def test_detail_shows_arabic_text_right_to_left(self, staff_client):
        report = ReportFactory()

        response = staff_client.get(
            reverse("admin:reports_report_change", args=[report.pk])
        )

        content = response.content.decode()
        assert '<div class="report-text" dir="rtl" lang="ar"' in content
        assert report.text in content

    def test_processing_fields_are_read_only(self, staff_client):
        report = ReportFactory(
            status=Report.Status.FAILED,
            attempts=2,
            error_category="invalid_output",
            error_message="Claude's answer did not match the schema.",
            prompt_version="extract-v3",
            input_tokens=1234,
        )

        content = staff_client.get(
            reverse("admin:reports_report_change", args=[report.pk])
        ).content.decode()

        for field in ("status", "attempts", "input_tokens", "prompt_version"):
            assert f'name="{field}"' not in content
        assert "extract-v3" in content
        assert "1234" in content
        assert "Claude&#x27;s answer did not match the schema." in content

    def test_detail_links_violations_and_shows_each_merge(self, staff_client):
        report = ReportFactory(status=Report.Status.PROCESSED)
        created = ViolationSourceFactory(report=report)
        merged_into = ViolationFactory()
        ViolationSourceFactory(
            violation=merged_into,
            report=report,
            role=ViolationSource.Role.MERGED,
            similarity=0.91,
            changes={"casualties": [3, 5]},
        )

        content = staff_client.get(
            reverse("admin:reports_report_change", args=[report.pk])
        ).content.decode()

        for violation_id in (created.violation_id, merged_into.pk):
            url = reverse("admin:violations_violation_change", args=[violation_id])
            assert f'href="{url}"' in content
        assert "similarity 0.91" in content
        assert '<tr><td>casualties</td><td dir="auto">3</td>' in content
