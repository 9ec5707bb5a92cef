import io
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from reports.models import Report
from tests.conftest import STANDIN_API_KEY
from tests.factories import ReportFactory, incident_text, incident_tool_input
from violations.models import ViolationSource

ROOT = Path(__file__).resolve().parent.parent
SUMMARY = re.compile(
    r"Batch done in \d+\.\d s: (\d+) claimed, (\d+) processed, (\d+) ignored, "
    r"(\d+) failed, (\d+) to retry, (\d+) released\."
)


@pytest.fixture
def standin(claude_standin, settings):
    settings.CLAUDE_MAX_RETRIES = 0
    return claude_standin


def incident_report(standin, place: str = "Kafranbel", **fields) -> Report:
    text = incident_text(place)
    standin.record(text, incident_tool_input(place))
    return ReportFactory(text=text, language=Report.Language.ENGLISH, **fields)


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("process_reports", *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_a_batch_prints_its_summary(standin):
    incident_report(standin, "Kafranbel")
    incident_report(standin, "Saraqib")

    lines = run().splitlines()

    assert (
        lines[0]
        == "Violations: 2 created, 0 merged; tokens used: "
        + (lines[0].rsplit(": ", 1)[1])
    )
    assert SUMMARY.fullmatch(lines[1]).groups() == ("2", "2", "0", "0", "0", "0")
    assert len(lines) == 2
    assert Report.objects.filter(status=Report.Status.PROCESSED).count() == 2


@pytest.mark.django_db
def test_per_report_lines_appear_only_at_verbosity_two(standin):
    report = incident_report(standin)

    lines = run("--verbosity", "2").splitlines()

    assert re.fullmatch(
        rf"Report {report.pk} processed: 1 violations created, 0 merged "
        r"in \d+\.\d s\.",
        lines[0],
    )
    assert SUMMARY.fullmatch(lines[-1])


@pytest.mark.django_db
def test_limit_caps_the_reports_claimed(standin):
    incident_report(standin, "Kafranbel")
    incident_report(standin, "Saraqib")

    output = run("--limit", "1", "--concurrency", "1")

    assert SUMMARY.search(output).groups()[:2] == ("1", "1")
    assert Report.objects.filter(status=Report.Status.UNPROCESSED).count() == 1


@pytest.mark.django_db
def test_json_prints_the_summary_as_one_object(standin):
    incident_report(standin)

    summary = json.loads(run("--json"))

    assert summary["claimed"] == 1
    assert summary["processed"] == 1
    assert summary["violations_created"] == 1
    assert summary["tokens_used"] > 0
    assert summary["stopped_reason"] == ""


@pytest.mark.django_db
def test_an_empty_queue_is_a_batch_of_nothing():
    output = run()

    assert SUMMARY.search(output).groups() == ("0",) * 6


@pytest.mark.django_db
def test_an_auth_error_says_why_the_batch_stopped(standin):
    report = incident_report(standin)
    standin.queue_fault("auth")
    out = io.StringIO()

    with pytest.raises(CommandError) as error:
        call_command("process_reports", stdout=out)

    lines = out.getvalue().splitlines()
    assert lines[0] == f"Stopped early: {error.value}"
    assert str(error.value).startswith(
        "auth: The API key was refused: HTTP 401 invalid x-api-key"
    )
    assert SUMMARY.fullmatch(lines[-1]).groups() == ("1", "0", "0", "0", "0", "1")
    report.refresh_from_db()
    assert (report.status, report.attempts) == (Report.Status.UNPROCESSED, 0)


@pytest.mark.django_db
def test_an_auth_error_on_one_report_is_an_error_too(standin):
    report = incident_report(standin, status=Report.Status.FAILED, attempts=3)
    standin.queue_fault("auth")

    with pytest.raises(CommandError, match=r"^auth: The API key was refused"):
        run("--report", str(report.pk))

    report.refresh_from_db()
    assert (report.status, report.attempts) == (Report.Status.UNPROCESSED, 0)


@pytest.mark.django_db
def test_dry_run_lists_what_would_be_claimed_and_claims_nothing():
    first = ReportFactory(channel="idlib_now", priority=Report.Priority.HIGH)
    second = ReportFactory(channel="aleppo_24")
    ReportFactory(status=Report.Status.PROCESSED)

    output = run("--dry-run")

    assert output == (
        "Would claim 2 reports:\n"
        f"  report {first.pk}: unprocessed, 0 attempts, idlib_now\n"
        f"  report {second.pk}: unprocessed, 0 attempts, aleppo_24\n"
    )
    assert Report.objects.filter(status=Report.Status.PROCESSING).count() == 0


@pytest.mark.django_db
def test_dry_run_json_lists_the_ids():
    report = ReportFactory()

    assert json.loads(run("--dry-run", "--json")) == {"would_claim": [report.pk]}


@pytest.mark.django_db
def test_report_reprocesses_one_report_whatever_its_status(standin):
    report = incident_report(
        standin,
        status=Report.Status.FAILED,
        attempts=3,
        error_category=Report.ErrorCategory.API_ERROR,
    )

    output = run("--report", str(report.pk))

    report.refresh_from_db()
    assert re.fullmatch(
        rf"Report {report.pk} processed: 1 violations created, 0 merged "
        r"in \d+\.\d s\.\n",
        output,
    )
    assert (report.status, report.attempts) == (Report.Status.PROCESSED, 1)
    assert report.error_category == ""


@pytest.mark.django_db
def test_report_json_prints_the_result(standin):
    report = incident_report(standin)

    result = json.loads(run("--report", str(report.pk), "--json"))

    assert result["report_id"] == report.pk
    assert result["outcome"] == "processed"
    assert result["success"] is True


@pytest.mark.django_db
def test_report_dry_run_changes_nothing():
    report = ReportFactory(status=Report.Status.FAILED, attempts=3)

    output = run("--report", str(report.pk), "--dry-run")

    report.refresh_from_db()
    assert output == f"Would reprocess report {report.pk} (now failed, 3 attempts).\n"
    assert report.status == Report.Status.FAILED


@pytest.mark.django_db
def test_an_unknown_report_is_an_error():
    with pytest.raises(CommandError, match=r"^Report 999999 does not exist\.$"):
        run("--report", "999999")


@pytest.mark.django_db
def test_a_report_being_processed_is_left_to_its_worker():
    report = ReportFactory()
    assert report.mark_as_processing()

    with pytest.raises(CommandError) as error:
        run("--report", str(report.pk))

    assert str(error.value) == (
        f"Report {report.pk} is being processed right now; "
        "try again when it has finished."
    )


def test_report_and_loop_together_are_an_error():
    with pytest.raises(CommandError, match="--report and --loop cannot be used"):
        run("--report", "1", "--loop")


@pytest.mark.parametrize("option", ["--limit", "--concurrency", "--interval"])
def test_a_limit_below_one_is_an_error(option):
    with pytest.raises(CommandError, match=f"argument {option}: invalid"):
        run(option, "0")


@pytest.mark.django_db
def test_loop_stops_cleanly_on_sigterm_after_the_batch(standin):
    report = incident_report(standin)
    other = incident_report(standin, "Saraqib")

    def latency() -> float:
        # Sent while the first call is in flight, so the handler is in place.
        os.kill(os.getpid(), signal.SIGTERM)
        return 0.3

    standin.latency = latency

    output = run("--loop", "--interval", "600", "--concurrency", "1")

    report.refresh_from_db()
    other.refresh_from_db()
    assert {report.status, other.status} == {"processed", "unprocessed"}
    assert output.endswith("Stopped.\n")
    assert len(SUMMARY.findall(output)) == 1
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def database_url_for_commands() -> str:
    database = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{database['NAME']}"
    return (
        f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}"
        f"/{database['NAME']}"
    )


def command_env(standin) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "reportsite.settings",
        "SECRET_KEY": "tests-only-secret-key",
        "DATABASE_URL": database_url_for_commands(),
        "ANTHROPIC_API_KEY": STANDIN_API_KEY,
        "ANTHROPIC_BASE_URL": standin.base_url,
        "CLAUDE_MAX_RETRIES": "0",
        "REPORTS_MAX_CONCURRENT_CALLS": "3",
        # As in the test settings: the pace is not what this test measures.
        "CLAUDE_REQUESTS_PER_MINUTE": "600000",
        "LOG_LEVEL": "WARNING",
    }


# On SQLite as on PostgreSQL: one machine with SQLite may run two batches too.
@pytest.mark.django_db(transaction=True)
def test_two_batch_processes_share_the_global_limit_and_never_share_a_report(
    standin,
):
    places = [f"Qarya {chr(ord('A') + n)}{n}" for n in range(24)]
    reports = [incident_report(standin, place) for place in places]
    standin.latency = 0.4
    command = [sys.executable, "manage.py", "process_reports", "--json"]
    options = ["--limit", "12", "--concurrency", "3"]

    processes = [
        subprocess.Popen(
            [*command, *options],
            cwd=ROOT,
            env=command_env(standin),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=120) for process in processes]

    assert [process.returncode for process in processes] == [0, 0], outputs
    summaries = [json.loads(stdout) for stdout, _ in outputs]
    assert [summary["processed"] for summary in summaries] == [12, 12]
    # Each process alone would keep three calls in flight: six together. More
    # than one shows the runs overlapped; how many more depends on the load.
    assert 1 < standin.max_in_flight <= 3
    assert len(standin.requests) == 24
    for report in reports:
        report.refresh_from_db()
        assert (report.status, report.attempts) == (Report.Status.PROCESSED, 1)
    assert ViolationSource.objects.count() == 24


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.django_db
def test_a_terminal_gets_a_progress_bar(standin):
    incident_report(standin, "Kafranbel")
    incident_report(standin, "Saraqib")
    out = Terminal()

    call_command("process_reports", "--concurrency", "1", stdout=out)

    frames = out.getvalue().split("\r")[1:]
    assert (
        frames[0]
        == "[" + "#" * 15 + "." * 15 + "] 1/2 processed 1, ignored 0, failed 0"
    )
    assert frames[1].startswith(
        "[" + "#" * 30 + "] 2/2 processed 2, ignored 0, failed 0\n"
    )
    assert SUMMARY.search(frames[1])
