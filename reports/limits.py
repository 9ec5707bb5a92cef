"""Limits shared by every batch: Claude-call slots, the batch lock, request rate.

The global limits live in the database (the ``Lease`` table), not in Redis.
The database is the one thing every process and machine of an installation
already shares, on SQLite as on PostgreSQL, so the limit holds with or without
a Redis broker and needs no second source of truth. Its cost is two small
UPDATEs per Claude call, negligible beside a call of several seconds.

Each lease is taken with one conditional UPDATE ("free or expired") and carries
an expiry, so the slot of a process killed mid-call frees itself after the
expiry instead of lowering the limit for good.
"""

import collections
import datetime
import os
import socket
import time
import uuid

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from .models import Lease

CALL_SLOT_PREFIX = "claude-call-"
BATCH_LOCK = "report-batch"
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

    def release(self, name: str) -> None:
        release_lease(name, self.holder)

    def in_use(self) -> int:
        """Slots held right now by anyone (for status output and tests)."""
        held = Lease.objects.filter(name__in=self.names).exclude(
            free_condition(timezone.now())
        )
        return held.count()


class RequestRateLimiter:
    """At most ``per_minute`` requests in any sliding 60-second window.

    Kept in the process: it paces one batch. Two batches running at once may
    together send up to twice the rate; the API's own 429 answer (which pauses
    the batch) covers that rarer case.
    """

    WINDOW_SECONDS = 60.0

    def __init__(self, per_minute: int, clock=time.monotonic) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self.sent: collections.deque[float] = collections.deque()

    def delay(self) -> float:
        """Seconds to wait before the next request may be sent (0 if now)."""
        now = self.clock()
        while self.sent and now - self.sent[0] >= self.WINDOW_SECONDS:
            self.sent.popleft()
        if len(self.sent) < self.per_minute:
            return 0.0
        return self.sent[0] + self.WINDOW_SECONDS - now

    def record(self) -> None:
        self.sent.append(self.clock())
