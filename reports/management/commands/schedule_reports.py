from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction
from django_q.models import Schedule, Task

SCHEDULE_NAME = "process-reports"
SCHEDULE_FUNC = "reports.tasks.process_batch"
SCHEDULE_CRON = "*/10 * * * *"


class Command(BaseCommand):
    help = "Installs, removes or shows the django-q2 schedule that runs a batch."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "action",
            choices=["start", "stop", "status"],
            help=f"start: install the {SCHEDULE_CRON!r} schedule (again is harmless); "
            "stop: remove it; status: show it, its next run and last result.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        getattr(self, f"handle_{options['action']}")()

    def handle_start(self) -> None:
        schedule, created = install_schedule()
        if created:
            message = f'Installed schedule "{SCHEDULE_NAME}" ({SCHEDULE_CRON}).'
        else:
            message = f'Schedule "{SCHEDULE_NAME}" is already installed.'
        self.stdout.write(self.style.SUCCESS(message))
        self.stdout.write(f"Next run: {format_time(schedule.next_run)}")

    def handle_stop(self) -> None:
        removed, _ = Schedule.objects.filter(name=SCHEDULE_NAME).delete()
        if removed:
            self.stdout.write(
                self.style.SUCCESS(f'Removed schedule "{SCHEDULE_NAME}".')
            )
        else:
            self.stdout.write(f'Schedule "{SCHEDULE_NAME}" is not installed.')

    def handle_status(self) -> None:
        schedule = Schedule.objects.filter(name=SCHEDULE_NAME).first()
        if schedule is None:
            self.stdout.write(
                f'Schedule "{SCHEDULE_NAME}" is not installed; '
                "run `schedule_reports start`."
            )
            return
        self.stdout.write(
            f'Schedule "{SCHEDULE_NAME}": {schedule.func}, cron {schedule.cron}'
        )
        self.stdout.write(f"Next run: {format_time(schedule.next_run)}")
        self.stdout.write(f"Last run: {describe_last_task(schedule)}")


def install_schedule() -> tuple[Schedule, bool]:
    """The one schedule of the batch task; returns it and whether it is new.

    Found by name, so running ``start`` again changes nothing; fields an
    older install set differently are brought back to these values.
    """
    wanted = {
        "func": SCHEDULE_FUNC,
        "schedule_type": Schedule.CRON,
        "cron": SCHEDULE_CRON,
        "repeats": -1,
    }
    with transaction.atomic():
        schedule = Schedule.objects.filter(name=SCHEDULE_NAME).first()
        if schedule is None:
            # Schedule.save works out next_run from the cron expression.
            return Schedule.objects.create(name=SCHEDULE_NAME, **wanted), True
        changed = {k: v for k, v in wanted.items() if getattr(schedule, k) != v}
        if changed:
            for field, value in changed.items():
                setattr(schedule, field, value)
            schedule.next_run = schedule.calculate_next_run()
            schedule.save()
    return schedule, False


def describe_last_task(schedule: Schedule) -> str:
    task = Task.objects.filter(id=schedule.task).first() if schedule.task else None
    if task is None:
        return "none yet"
    state = "succeeded" if task.success else "failed"
    return f"{format_time(task.stopped)} {state}: {task.result}"


def format_time(moment) -> str:
    return moment.strftime("%Y-%m-%d %H:%M %Z") if moment else "not set"
