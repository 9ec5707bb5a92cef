import io

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from django_q.models import Schedule, Task


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("schedule_reports", *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_start_installs_one_cron_schedule_however_often_it_runs():
    first = run("start")
    second = run("start")
    run("start")

    schedule = Schedule.objects.get()
    assert schedule.name == "process-reports"
    assert schedule.func == "reports.tasks.process_batch"
    assert schedule.schedule_type == Schedule.CRON
    assert schedule.cron == "*/10 * * * *"
    assert schedule.repeats == -1
    assert first.startswith('Installed schedule "process-reports" (*/10 * * * *).\n')
    assert second.startswith('Schedule "process-reports" is already installed.\n')


@pytest.mark.django_db
def test_start_sets_the_next_run_on_a_ten_minute_boundary():
    run("start")

    next_run = Schedule.objects.get().next_run
    assert next_run > timezone.now()
    assert next_run.minute % 10 == 0
    assert next_run.second == 0


@pytest.mark.django_db
def test_start_restores_a_schedule_edited_to_other_values():
    run("start")
    Schedule.objects.update(cron="0 * * * *", func="reports.tasks.other")

    run("start")

    schedule = Schedule.objects.get()
    assert (schedule.cron, schedule.func) == (
        "*/10 * * * *",
        "reports.tasks.process_batch",
    )


@pytest.mark.django_db
def test_stop_removes_the_schedule_and_says_so_when_there_is_none():
    run("start")

    assert run("stop") == 'Removed schedule "process-reports".\n'
    assert Schedule.objects.count() == 0
    assert run("stop") == 'Schedule "process-reports" is not installed.\n'


@pytest.mark.django_db
def test_stop_leaves_other_schedules_alone():
    Schedule.objects.create(name="cleanup", func="x.y", schedule_type=Schedule.DAILY)
    run("start")

    run("stop")

    assert list(Schedule.objects.values_list("name", flat=True)) == ["cleanup"]


@pytest.mark.django_db
def test_status_without_a_schedule_says_how_to_install_it():
    assert run("status") == (
        'Schedule "process-reports" is not installed; run `schedule_reports start`.\n'
    )


@pytest.mark.django_db
def test_status_shows_the_next_run_and_the_last_result():
    run("start")
    now = timezone.now()
    Task.objects.create(
        id="abc123",
        name="alpha-bravo",
        func="reports.tasks.process_batch",
        started=now,
        stopped=now,
        success=True,
        result={"claimed": 4, "processed": 3},
    )
    Schedule.objects.update(task="abc123")
    schedule = Schedule.objects.get()

    lines = run("status").splitlines()

    assert lines[0] == (
        'Schedule "process-reports": reports.tasks.process_batch, cron */10 * * * *'
    )
    assert lines[1] == f"Next run: {schedule.next_run.strftime('%Y-%m-%d %H:%M %Z')}"
    assert lines[2] == (
        f"Last run: {now.strftime('%Y-%m-%d %H:%M %Z')} succeeded: "
        "{'claimed': 4, 'processed': 3}"
    )


@pytest.mark.django_db
def test_status_before_any_run_says_none_yet():
    run("start")

    assert run("status").splitlines()[2] == "Last run: none yet"


def test_an_unknown_action_is_an_error():
    with pytest.raises(CommandError, match="invalid choice: 'restart'"):
        call_command("schedule_reports", "restart")
