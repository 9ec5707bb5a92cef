import io
import json
import pydoc

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django_q.models import OrmQ, Schedule
from django_q.signing import SignedPackage

from reports.limits import BATCH_LOCK, acquire_lease, call_worst_case_seconds
from reports.models import Report
from reports.services import ignore_reports, reprocess_reports
from reports.tasks import process_batch, process_single_report
from tests.factories import ReportFactory, incident_text, incident_tool_input


@pytest.fixture
def standin(claude_standin, settings):
    settings.CLAUDE_MAX_RETRIES = 0
    return claude_standin


def incident_report(standin, **fields) -> Report:
    text = incident_text()
    standin.record(text, incident_tool_input())
    return ReportFactory(text=text, language=Report.Language.ENGLISH, **fields)


@pytest.mark.django_db
def test_process_batch_returns_the_summary_as_plain_values(standin):
    report = incident_report(standin)

    result = process_batch(limit=5, concurrency=1)

    report.refresh_from_db()
    assert report.status == Report.Status.PROCESSED
    assert result["claimed"] == result["processed"] == 1
    assert json.loads(json.dumps(result)) == result


@pytest.mark.django_db
def test_process_batch_skips_while_another_batch_runs(standin):
    report = incident_report(standin)
    assert acquire_lease(BATCH_LOCK, "other-host:1", ttl=60)

    result = process_batch()

    report.refresh_from_db()
    assert result["stopped_reason"] == "Another batch is running."
    assert report.status == Report.Status.UNPROCESSED


@pytest.mark.django_db
def test_process_single_report_processes_a_ready_report(standin):
    report = incident_report(standin)

    result = process_single_report(report.pk)

    report.refresh_from_db()
    assert result["outcome"] == "processed"
    assert result["violation_ids"] == report.violation_ids
    assert json.loads(json.dumps(result)) == result


@pytest.mark.django_db
def test_process_single_report_of_a_missing_report_says_so():
    assert process_single_report(424242) == {
        "report_id": 424242,
        "outcome": "skipped",
        "error": "Report 424242 does not exist.",
    }


@pytest.mark.django_db
def test_reprocess_reports_resets_finished_reports_but_not_running_ones():
    failed = ReportFactory(status=Report.Status.FAILED, attempts=3)
    ignored = ReportFactory(status=Report.Status.IGNORED, ignore_reason="Weather.")
    running = ReportFactory()
    assert running.mark_as_processing()

    changed = reprocess_reports(report_ids=[failed.pk, ignored.pk, running.pk])

    assert changed == 2
    for report in (failed, ignored, running):
        report.refresh_from_db()
    assert (failed.status, failed.attempts) == (Report.Status.UNPROCESSED, 0)
    assert (ignored.status, ignored.ignore_reason) == (Report.Status.UNPROCESSED, "")
    assert running.status == Report.Status.PROCESSING
    assert OrmQ.objects.count() == 0


@pytest.mark.django_db
def test_reprocess_now_queues_one_task_per_report_after_commit(
    django_capture_on_commit_callbacks,
):
    first = ReportFactory(status=Report.Status.FAILED, attempts=3)
    second = ReportFactory(status=Report.Status.PROCESSED)

    with django_capture_on_commit_callbacks(execute=True):
        changed = reprocess_reports(report_ids=[first.pk, second.pk], now=True)

    tasks = [SignedPackage.loads(item.payload) for item in OrmQ.objects.all()]
    assert changed == 2
    assert sorted((task["func"], task["args"]) for task in tasks) == [
        ("reports.tasks.process_single_report", (first.pk,)),
        ("reports.tasks.process_single_report", (second.pk,)),
    ]


@pytest.mark.django_db
def test_ignore_reports_marks_waiting_reports_with_the_reason():
    waiting = ReportFactory()
    failed = ReportFactory(status=Report.Status.FAILED, attempts=3)
    processed = ReportFactory(status=Report.Status.PROCESSED)
    running = ReportFactory()
    assert running.mark_as_processing()

    changed = ignore_reports(
        report_ids=[waiting.pk, failed.pk, processed.pk, running.pk],
        reason="  Advertisement.  ",
    )

    assert changed == 2
    statuses = dict(Report.objects.values_list("pk", "status"))
    assert statuses == {
        waiting.pk: "ignored",
        failed.pk: "ignored",
        processed.pk: "processed",
        running.pk: "processing",
    }
    waiting.refresh_from_db()
    assert waiting.ignore_reason == "Advertisement."


@pytest.mark.django_db
def test_ignore_reports_needs_a_reason():
    report = ReportFactory()

    with pytest.raises(ValueError, match="A reason is required to ignore a report."):
        ignore_reports(report_ids=[report.pk], reason="  ")

    report.refresh_from_db()
    assert report.status == Report.Status.UNPROCESSED


def test_cluster_settings_fit_the_batch():
    cluster = django_settings.Q_CLUSTER
    budget = django_settings.REPORTS_BATCH_TIME_BUDGET_SECONDS

    # A batch may start a call at the end of its budget and wait for it.
    assert cluster["timeout"] > budget + call_worst_case_seconds()
    # The broker must not hand a running batch to a second worker.
    assert cluster["retry"] > cluster["timeout"]
    assert cluster["max_attempts"] == 1
    assert cluster["catch_up"] is False
    # The batch budget ends before the next 10-minute run.
    assert budget < 600
    assert "django-q" in django_settings.LOGGING["loggers"]


@pytest.mark.django_db
def test_the_installed_schedule_runs_the_batch_task():
    call_command("schedule_reports", "start", stdout=io.StringIO())

    schedule = Schedule.objects.get(name="process-reports")
    assert pydoc.locate(schedule.func) is process_batch
    assert schedule.args is None and schedule.kwargs is None
