"""Two writers checking one incident at the same moment.

Each writer runs in its own thread with its own database connection (its own
PostgreSQL session), as two batch workers on two machines would. The first
writer stores its violation and keeps its transaction open until the second
writer is seen waiting on an advisory lock; without the lock the second one
would check before the first commits, find nothing, and create a duplicate.
"""

import datetime
import threading
import time

import pytest
from django.db import connection, connections, transaction

from tests.factories import ReportFactory, violation_draft
from violations.models import Violation
from violations.services import create_violations_from_report

pytestmark = pytest.mark.django_db(transaction=True)

WAIT_SECONDS = 5


def waiting_on_advisory_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        )
        return cursor.fetchone()[0] > 0


class Writer(threading.Thread):
    """Stores one report's drafts in one transaction on its own connection."""

    def __init__(self, report, drafts, *, hold_until=None):
        super().__init__()
        self.report, self.drafts = report, drafts
        self.hold_until = hold_until
        self.wrote = threading.Event()
        self.result = None
        self.error = None

    def run(self):
        try:
            with transaction.atomic():
                self.result = create_violations_from_report(
                    report=self.report, drafts=self.drafts
                )
                self.wrote.set()
                self.hold()
        except Exception as exc:  # reported to the test thread
            self.error = exc
        finally:
            self.wrote.set()
            connections.close_all()

    def hold(self):
        """Keeps the transaction open until ``hold_until()`` or a timeout."""
        if self.hold_until is None:
            return
        deadline = time.monotonic() + WAIT_SECONDS
        while not self.hold_until() and time.monotonic() < deadline:
            time.sleep(0.01)


def race(first_drafts, second_drafts, *, second_waits=True, hold_until=None):
    """Runs two writers so that the second checks while the first is open."""
    second = Writer(ReportFactory(), second_drafts)
    if hold_until is None and second_waits:
        hold_until = waiting_on_advisory_lock
    elif hold_until is None:
        hold_until = lambda: not second.is_alive()  # noqa: E731
    first = Writer(ReportFactory(), first_drafts, hold_until=hold_until)

    first.start()
    assert first.wrote.wait(WAIT_SECONDS)
    second.start()
    first.join(WAIT_SECONDS * 2)
    second.join(WAIT_SECONDS * 2)

    assert first.error is None and second.error is None
    return first, second


@pytest.mark.postgres
def test_two_writers_on_the_same_incident_end_with_one_violation():
    first, second = race([violation_draft()], [violation_draft()])

    violation = Violation.objects.get()
    assert first.result.created_ids == [violation.pk]
    assert second.result.merged == [(violation.pk, 1.0)]
    assert violation.report_ids == [first.report.pk, second.report.pk]


@pytest.mark.postgres
def test_writers_a_day_apart_within_the_window_also_meet():
    later = violation_draft(incident_date=datetime.date(2025, 3, 15))

    first, second = race([violation_draft()], [later])

    violation = Violation.objects.get()
    assert violation.incident_date == datetime.date(2025, 3, 14)
    assert [pk for pk, _ in second.result.merged] == [violation.pk]


@pytest.mark.postgres
def test_a_writer_on_another_incident_does_not_wait():
    shelling = violation_draft(violation_type="SHELLING")

    first, second = race([violation_draft()], [shelling], second_waits=False)

    # The second writer finished while the first still held its transaction.
    assert first.hold_until()
    assert Violation.objects.count() == 2
    assert second.result.violations_created == 1


def test_a_writer_starting_while_another_is_open_merges_into_its_violation():
    # Runs on SQLite too, where a waiting writer cannot be observed: a short
    # hold makes sure the second writer's BEGIN IMMEDIATE (or, on PostgreSQL,
    # its advisory lock) comes while the first transaction is still open.
    release_at = time.monotonic() + 0.2

    first, second = race(
        [violation_draft()],
        [violation_draft()],
        hold_until=lambda: time.monotonic() > release_at,
    )

    violation = Violation.objects.get()
    assert first.result.created_ids == [violation.pk]
    assert second.result.merged == [(violation.pk, 1.0)]
