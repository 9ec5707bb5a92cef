"""Limits shared by every batch: Claude-call slots, the batch lock, request pace.

The global limits live in the database (the ``Lease`` table), not in Redis.
The database is the one thing every process and machine of an installation
already shares, on SQLite as on PostgreSQL, so the limit holds with or without
a Redis broker and needs no second source of truth. Its cost is three small
UPDATEs per Claude call (slot, release, request turn), negligible beside a
call of several seconds.

Each lease is taken with one conditional UPDATE ("free or expired") and carries
an expiry, so the slot of a process killed mid-call frees itself after the
expiry instead of lowering the limit for good.
"""

import datetime
import os
import socket
import time
import uuid
from collections.abc import Callable

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from .models import Lease

CALL_SLOT_PREFIX = "claude-call-"
BATCH_LOCK = "report-batch"
REQUEST_PACE = "claude-request-pace"
# Time a lease outlives the longest thing it guards, for clock skew between
# machines and the database writes that follow a call.
LEASE_MARGIN_SECONDS = 60


def new_holder() -> str:
    """A holder name unique to this process and call, readable in the admin."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def call_worst_case_seconds() -> float:
    """Longest one extraction can take: every SDK attempt hitting the timeout."""
    return settings.CLAUDE_TIMEOUT_SECONDS * (settings.CLAUDE_MAX_RETRIES + 1)


def acquire_lease(name: str, holder: str, ttl: float) -> bool:
    """Takes the lease ``name`` for ``holder`` if it is free or expired."""
    now = timezone.now()
    Lease.objects.bulk_create([Lease(name=name)], ignore_conflicts=True)
    taken = Lease.objects.filter(free_condition(now), name=name).update(
        holder=holder, expires_at=now + datetime.timedelta(seconds=ttl)
    )
    return bool(taken)


def release_lease(name: str, holder: str) -> bool:
    """Gives the lease back; False if it had expired and someone else took it."""
    freed = Lease.objects.filter(name=name, holder=holder).update(
        holder="", expires_at=None
    )
    return bool(freed)


def free_condition(now: datetime.datetime) -> Q:
    return Q(holder="") | Q(expires_at__lt=now)


class CallSlots:
    """The installation-wide limit of Claude calls in flight.

    ``REPORTS_MAX_CONCURRENT_CALLS`` slot rows; a call runs only while its
    batch holds one. The limit is read when the object is made, so a lowered
    setting takes effect at the next batch (rows above it are simply unused).
    """

    def __init__(self, holder: str) -> None:
        self.holder = holder
        self.size = settings.REPORTS_MAX_CONCURRENT_CALLS
        self.ttl = call_worst_case_seconds() + LEASE_MARGIN_SECONDS
        self.names = [f"{CALL_SLOT_PREFIX}{n}" for n in range(1, self.size + 1)]
        Lease.objects.bulk_create(
            [Lease(name=name) for name in self.names], ignore_conflicts=True
        )

    def acquire(self) -> str | None:
        """Takes a free slot and returns its name, or None when all are held."""
        now = timezone.now()
        free = Lease.objects.filter(free_condition(now), name__in=self.names)
        expires_at = now + datetime.timedelta(seconds=self.ttl)
        for name in free.values_list("name", flat=True):
            # Another process may take the same free row between the SELECT
            # and here; the conditional UPDATE then matches nothing.
            taken = Lease.objects.filter(free_condition(now), name=name).update(
                holder=self.holder, expires_at=expires_at
            )
            if taken:
                return name
        return None

    def wait(
        self, sleep: Callable[[float], None] = time.sleep, poll: float = 0.2
    ) -> str:
        """Blocks until a slot is free, takes it and returns its name.

        For single-report callers. It ends: a slot is freed when its call
        ends, or at the latest when its lease expires (a crashed holder).
        """
        while (name := self.acquire()) is None:
            sleep(poll)
        return name

    def release(self, name: str) -> None:
        release_lease(name, self.holder)

    def in_use(self) -> int:
        """Slots held right now by anyone (for status output and tests)."""
        held = Lease.objects.filter(name__in=self.names).exclude(
            free_condition(timezone.now())
        )
        return held.count()


class RequestPace:
    """The installation-wide requests-per-minute limit, shared by every batch.

    Requests go out one turn at a time: a request takes the turn (the
    ``REQUEST_PACE`` lease) for 60 / CLAUDE_REQUESTS_PER_MINUTE seconds and
    never gives it back early, so any two requests of the installation are at
    least that far apart and no 60-second window holds more than the setting.
    Even spacing rather than bursts, because the API itself enforces a
    per-minute limit over shorter intervals (60 a minute may be held as one a
    second), so a burst within the minute can still be refused.

    The turn is taken with the same conditional UPDATE as a call slot, atomic
    on SQLite and PostgreSQL alike, with no lock held between statements. Each
    machine compares the expiry with its own clock: machines whose clocks
    differ by d seconds can send two requests up to d seconds closer.
    """

    def __init__(self, holder: str) -> None:
        self.holder = holder
        self.interval = 60.0 / settings.CLAUDE_REQUESTS_PER_MINUTE
        Lease.objects.bulk_create([Lease(name=REQUEST_PACE)], ignore_conflicts=True)

    def acquire(self) -> float:
        """Takes the turn for one request.

        Returns 0.0 when the request may be sent now; otherwise the seconds
        until the current turn ends, and nothing is taken.
        """
        now = timezone.now()
        turn_ends = now + datetime.timedelta(seconds=self.interval)
        taken = Lease.objects.filter(free_condition(now), name=REQUEST_PACE).update(
            holder=self.holder, expires_at=turn_ends
        )
        if taken:
            return 0.0
        current = Lease.objects.filter(name=REQUEST_PACE).values_list(
            "expires_at", flat=True
        )
        expires_at = current.first()
        if expires_at is None:
            return 0.0
        # At least a millisecond: the turn is free only strictly after it ends.
        return max((expires_at - now).total_seconds(), 0.001)

    def wait(self, sleep: Callable[[float], None] = time.sleep) -> None:
        """Blocks until this caller holds the turn (for single-report callers)."""
        while (delay := self.acquire()) > 0:
            sleep(delay)
