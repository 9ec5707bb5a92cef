"""Reprocessing from the admin runs the real pipeline against the local stand-in."""

import datetime
import json
from pathlib import Path

import pytest
from django.urls import reverse

from reports.models import Report
from reports.processing import process_report
from reports.tasks import process_single_report
from tests.admin.test_report_admin import queued_tasks
from violations.models import Violation, ViolationSource

SAMPLES = Path(__file__).resolve().parents[2] / "reports" / "samples" / "reports.jsonl"


def sample_report() -> Report:
    record = json.loads(SAMPLES.read_text(encoding="utf-8").splitlines()[0])
    record["published_at"] = datetime.datetime.fromisoformat(record["published_at"])
    record["forwarded_from"] = record["forwarded_from"] or ""
    return Report.objects.create(**record)


@pytest.mark.django_db
def test_reprocess_now_keeps_the_violations_it_produced_before(
    staff_client, claude_standin, django_capture_on_commit_callbacks
):
    report = sample_report()
    first = process_report(report)
    report.refresh_from_db()
    produced = report.violation_ids
    assert report.status == Report.Status.PROCESSED, first
    assert produced

    with django_capture_on_commit_callbacks(execute=True):
        staff_client.post(
            reverse("admin:reports_report_changelist"),
            {
                "action": "reprocess",
                "_selected_action": [report.pk],
                "post": "yes",
                "now": "on",
            },
        )
    report.refresh_from_db()
    assert (report.status, report.attempts) == (Report.Status.UNPROCESSED, 0)
    [task] = queued_tasks()
    # What the django-q2 worker runs for the queued task.
    process_single_report(*task["args"])

    report.refresh_from_db()
    assert report.status == Report.Status.PROCESSED
    assert report.attempts == 1
    assert report.violation_ids == produced
    assert Violation.objects.count() == len(produced)
    assert ViolationSource.objects.filter(report=report).count() == len(produced)
    assert len(claude_standin.requests) == 2
