"""Staff actions on reports, shared by the admin, commands and tasks."""

from collections.abc import Iterable

from django.db import transaction
from django_q.tasks import async_task

from .models import Report

PROCESS_SINGLE_REPORT = "reports.tasks.process_single_report"


def reprocess_reports(*, report_ids: Iterable[int], now: bool = False) -> int:
    """Sends reports back to the queue with attempts reset; returns how many.

    Reports being processed right now are left alone. With ``now`` each one
    is also queued as a ``process_single_report`` task, after the commit so
    the worker sees the reset.
    """
    reset_ids = []
    with transaction.atomic():
        for report in Report.objects.filter(pk__in=list(report_ids)):
            if report.reset_for_reprocessing():
                reset_ids.append(report.pk)

    if now and reset_ids:
        transaction.on_commit(lambda: enqueue_reports(reset_ids))
    return len(reset_ids)


def enqueue_reports(report_ids: list[int]) -> None:
    for report_id in report_ids:
        async_task(PROCESS_SINGLE_REPORT, report_id, group="reprocess")


def ignore_reports(*, report_ids: Iterable[int], reason: str) -> int:
    """Marks reports ignored with ``reason``; returns how many changed.

    Reports being processed, or already processed or ignored, are left alone.
    Raises ValueError for a blank reason.
    """
    if not reason.strip():
        raise ValueError("A reason is required to ignore a report.")

    # A report in processing carries a claim token, which mark_as_ignored
    # would accept; its worker owns it, so it is left out here.
    reports = Report.objects.filter(pk__in=list(report_ids)).exclude(
        status=Report.Status.PROCESSING
    )
    changed = 0
    with transaction.atomic():
        for report in reports:
            changed += report.mark_as_ignored(reason)
    return changed
