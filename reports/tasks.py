"""django-q2 tasks: thin entry points; plain values in, plain dicts out.

Only ids and numbers cross the queue, and the result stored by django-q2 is
the summary dict, so the admin's task pages show what a run did.
"""

from typing import Any

from .batch import run_batch
from .models import Report
from .processing import process_report


def process_batch(limit: int | None = None, concurrency: int | None = None) -> dict:
    """The scheduled job: one exclusive batch (skipped if one is running)."""
    summary = run_batch(limit=limit, concurrency=concurrency, exclusive=True)
    return summary.as_dict()


def process_single_report(report_id: int) -> dict[str, Any]:
    """Processes one report if it is ready (e.g. just sent back by staff)."""
    report = Report.objects.filter(pk=report_id).first()
    if report is None:
        return {
            "report_id": report_id,
            "outcome": "skipped",
            "error": f"Report {report_id} does not exist.",
        }
    return process_report(report).as_dict()
