import io
import os
import re
import signal

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db.models import Sum

from reports.models import Report
from reports.standin import load_sample_reports
from violations.models import Violation, ViolationSource

STANDIN_NOTICE = (
    "ANTHROPIC_API_KEY is not set: running against the local stand-in of the "
    "Claude API, which answers with recorded extractions of the sample reports "
    "(no Claude call is made). Set ANTHROPIC_API_KEY to use Claude."
)
BATCH_LINE = re.compile(
    r"^Batch (\d+): (\d+) claimed, (\d+) processed, (\d+) ignored, (\d+) failed, "
    r"(\d+) to retry; (\d+) violations created, (\d+) merged; "
    r"tokens used: ([\d,]+) in all \(input ([\d,]+), output ([\d,]+), "
    r"cache read ([\d,]+), cache write ([\d,]+)\); "
)
FIELDS = ("claimed", "processed", "ignored", "failed", "retried", "created", "merged")

pytestmark = pytest.mark.django_db


@pytest.fixture
def offline(settings, monkeypatch):
    """No Claude key, as on a new machine, and no password from the environment."""
    settings.ANTHROPIC_API_KEY = ""
    settings.ANTHROPIC_BASE_URL = ""
    monkeypatch.delenv("DEMO_ADMIN_PASSWORD", raising=False)


def run_demo(*args: str) -> list[str]:
    out = io.StringIO()
    call_command("demo", *args, stdout=out, no_color=True)
    return out.getvalue().splitlines()


def batch_totals(lines: list[str]) -> dict[str, int]:
    totals = dict.fromkeys(FIELDS, 0)
    for line in lines:
        match = BATCH_LINE.match(line)
        if match:
            for name, value in zip(FIELDS, match.groups()[1:8], strict=True):
                totals[name] += int(value)
    return totals


def merged_count() -> int:
    """Links of reports to violations they did not create: merges and reposts."""
    roles = [ViolationSource.Role.MERGED, ViolationSource.Role.REPOST]
    return ViolationSource.objects.filter(role__in=roles).count()


def status_count(*statuses: str) -> int:
    return Report.objects.filter(status__in=statuses).count()


def test_demo_offline_processes_every_sample_through_the_standin(offline):
    samples = load_sample_reports()

    lines = run_demo()

    assert STANDIN_NOTICE in lines
    assert lines[1] == (
        f"Imported {len(samples)} reports from "
        f"{Report._meta.app_config.path}/samples/reports.jsonl."
    )
    assert Report.objects.count() == len(samples)
    assert not Report.objects.ready_for_processing().exists()
    assert status_count(Report.Status.PROCESSING, Report.Status.UNPROCESSED) == 0

    # What the batches printed is what the database holds.
    totals = batch_totals(lines)
    assert totals["claimed"] == len(samples)
    assert totals["processed"] == status_count(Report.Status.PROCESSED)
    assert totals["ignored"] == status_count(Report.Status.IGNORED)
    assert totals["failed"] + totals["retried"] == status_count(
        Report.Status.FAILED, Report.Status.RETRY_PENDING
    )
    assert totals["created"] == Violation.objects.count()
    assert totals["merged"] == merged_count()
    assert totals["processed"] > 0
    assert totals["created"] > 0

    # Tokens: each batch's total is its four kinds, and together the batches
    # count what the reports store, as report_stats does.
    batch_tokens = [
        [int(value.replace(",", "")) for value in match.groups()[8:]]
        for match in map(BATCH_LINE.match, lines)
        if match
    ]
    assert all(total == sum(kinds) for total, *kinds in batch_tokens)
    stored = Report.objects.aggregate(*(Sum(field) for field in Report.TOKEN_FIELDS))
    stored_total = sum(stored.values())
    assert sum(total for total, *_ in batch_tokens) == stored_total
    assert stored["cache_read_tokens__sum"] > 0
    assert f"  tokens              {stored_total:,} in all" in " ".join(lines)

    # So are the statistics and the closing summary.
    counts = {status: status_count(status) for status in Report.Status}
    waiting = sum(counts[status] for status in Report.QUEUE_STATUSES)
    total = Report.objects.count()
    created = Violation.objects.count()
    assert f"  {'processed':<16}{counts['processed']:>8}" in lines
    assert f"  {'total':<16}{total:>8}" in lines
    assert f"  violations          {created} created, {merged_count()} merged" in lines
    assert (
        f"{total} reports: {counts['processed']} processed, {counts['ignored']} "
        f"ignored, {counts['failed']} failed, {waiting} waiting; {created} "
        f"violations created, {merged_count()} merged."
    ) in lines
    batches = sum(1 for line in lines if BATCH_LINE.match(line))
    assert (
        f"Demo done: {total} reports imported, {batches} batches run. The "
        f"database holds {total} reports ({counts['processed']} processed, "
        f"{counts['ignored']} ignored, {counts['failed']} failed, {waiting} "
        f"waiting) and {created} violations."
    ) in lines

    # And the administrator it created can log in with the password shown.
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser and admin.is_staff
    password = re.match(r"Log in as admin with the password (\S+) ", lines[-1])
    assert password and admin.check_password(password.group(1))
    assert lines[-2] == (
        "Admin: run `python manage.py runserver`, then open "
        "http://127.0.0.1:8000/admin/"
    )


def test_demo_takes_the_admin_password_from_the_environment(offline, monkeypatch):
    monkeypatch.setenv("DEMO_ADMIN_PASSWORD", "demo-pass-8472")

    lines = run_demo()

    admin = get_user_model().objects.get(username="admin")
    assert admin.check_password("demo-pass-8472")
    assert (
        "Created the superuser admin with the password from DEMO_ADMIN_PASSWORD."
        in lines
    )
    assert not any("demo-pass-8472" in line for line in lines)


def test_running_the_demo_twice_imports_and_processes_nothing_new(offline):
    run_demo()
    violations = Violation.objects.count()
    samples = len(load_sample_reports())

    lines = run_demo()

    assert lines[1] == (
        f"Imported 0 reports from {Report._meta.app_config.path}/samples/"
        f"reports.jsonl, {samples} skipped ({samples} source URL already imported)."
    )
    assert not any(BATCH_LINE.match(line) for line in lines)
    assert "No report is ready to process." in lines
    assert "A superuser exists already; log in with it." in lines
    assert Report.objects.count() == samples
    assert Violation.objects.count() == violations
    assert get_user_model().objects.count() == 1


def test_demo_with_a_key_uses_claude(claude_standin, settings, monkeypatch):
    monkeypatch.delenv("DEMO_ADMIN_PASSWORD", raising=False)

    lines = run_demo()

    assert STANDIN_NOTICE not in lines
    assert lines[2] == (
        "Using Claude (claude-sonnet-4-5): ANTHROPIC_API_KEY is set, so the "
        "reports are sent to the Anthropic API."
    )
    # The configured address and key (here the test's stand-in) were used.
    assert claude_standin.requests
    keys = {request.api_key for request in claude_standin.requests}
    assert keys == {settings.ANTHROPIC_API_KEY}
    assert status_count(Report.Status.UNPROCESSED) == 0


def test_demo_with_a_bad_file_stops_before_processing(offline, tmp_path):
    path = tmp_path / "reports.jsonl"
    path.write_text('{"text": "قصف جوي على بلدة كفرنبل"}\n')

    with pytest.raises(CommandError) as error:
        run_demo("--file", str(path))

    assert str(error.value) == f"{path}, line 1: source_url is missing."
    assert Report.objects.count() == 0


def test_demo_stops_when_a_batch_stops(claude_standin, monkeypatch):
    monkeypatch.delenv("DEMO_ADMIN_PASSWORD", raising=False)
    claude_standin.queue_fault("auth", times=100)

    lines = run_demo()

    batches = [line for line in lines if BATCH_LINE.match(line)]
    assert len(batches) == 1
    assert " Stopped: auth: " in batches[0]
    assert status_count(Report.Status.PROCESSED) == 0
    assert status_count(Report.Status.UNPROCESSED) >= 14


def test_ctrl_c_stops_the_demo_after_the_calls_in_flight(claude_standin, monkeypatch):
    monkeypatch.delenv("DEMO_ADMIN_PASSWORD", raising=False)
    interrupted = []

    def interrupt_on_first_call() -> float:
        if not interrupted:
            interrupted.append(True)
            os.kill(os.getpid(), signal.SIGINT)
        return 0.0

    claude_standin.latency = interrupt_on_first_call

    lines = run_demo()

    batches = [line for line in lines if BATCH_LINE.match(line)]
    assert len(batches) == 1
    assert batches[0].endswith(" Stopped: Stop requested.")
    assert status_count(Report.Status.PROCESSING) == 0
    assert status_count(Report.Status.UNPROCESSED) > 0
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
