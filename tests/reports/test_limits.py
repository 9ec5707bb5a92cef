import datetime

import pytest
from django.utils import timezone

from reports.limits import (
    BATCH_LOCK,
    REQUEST_PACE,
    CallSlots,
    RequestPace,
    acquire_lease,
    release_lease,
)
from reports.models import Lease


@pytest.fixture
def three_slots(settings):
    settings.REPORTS_MAX_CONCURRENT_CALLS = 3


@pytest.mark.django_db
def test_call_slots_hand_out_no_more_than_the_global_limit(three_slots):
    first, second = CallSlots("host:1"), CallSlots("host:2")

    taken = [first.acquire(), second.acquire(), first.acquire()]

    assert sorted(taken) == ["claude-call-1", "claude-call-2", "claude-call-3"]
    assert second.acquire() is None
    assert first.in_use() == 3


@pytest.mark.django_db
def test_a_released_slot_can_be_taken_by_another_holder(three_slots):
    first, second = CallSlots("host:1"), CallSlots("host:2")
    names = [first.acquire() for _ in range(3)]

    first.release(names[1])

    assert second.acquire() == names[1]
    assert Lease.objects.get(name=names[1]).holder == "host:2"


@pytest.mark.django_db
def test_releasing_someone_elses_slot_changes_nothing(three_slots):
    first, second = CallSlots("host:1"), CallSlots("host:2")
    name = first.acquire()

    second.release(name)

    assert Lease.objects.get(name=name).holder == "host:1"


@pytest.mark.django_db
def test_an_expired_slot_of_a_dead_holder_frees_itself(three_slots):
    dead, alive = CallSlots("host:dead"), CallSlots("host:alive")
    names = [dead.acquire() for _ in range(3)]
    assert alive.acquire() is None

    expired = timezone.now() - datetime.timedelta(seconds=1)
    Lease.objects.filter(name=names[0]).update(expires_at=expired)

    assert alive.acquire() == names[0]


@pytest.mark.django_db
def test_a_lowered_limit_leaves_the_extra_slot_rows_unused(settings):
    settings.REPORTS_MAX_CONCURRENT_CALLS = 3
    CallSlots("host:1")
    settings.REPORTS_MAX_CONCURRENT_CALLS = 1
    slots = CallSlots("host:2")

    assert slots.acquire() == "claude-call-1"
    assert slots.acquire() is None


@pytest.mark.django_db
def test_the_batch_lock_has_one_holder_until_released():
    assert acquire_lease(BATCH_LOCK, "host:1", ttl=60)
    assert not acquire_lease(BATCH_LOCK, "host:2", ttl=60)

    assert release_lease(BATCH_LOCK, "host:1")
    assert acquire_lease(BATCH_LOCK, "host:2", ttl=60)


@pytest.mark.django_db
def test_an_expired_batch_lock_can_be_taken_over():
    assert acquire_lease(BATCH_LOCK, "host:1", ttl=60)
    Lease.objects.filter(name=BATCH_LOCK).update(
        expires_at=timezone.now() - datetime.timedelta(seconds=1)
    )

    assert acquire_lease(BATCH_LOCK, "host:2", ttl=60)
    assert not release_lease(BATCH_LOCK, "host:1")


@pytest.mark.django_db
def test_one_request_turn_at_a_time_for_every_holder(settings):
    settings.CLAUDE_REQUESTS_PER_MINUTE = 60
    first, second = RequestPace("host:1"), RequestPace("host:2")

    assert first.acquire() == 0
    wait = second.acquire()
    again = first.acquire()

    assert 0 < wait <= 1.0
    assert 0 < again <= wait
    assert Lease.objects.get(name=REQUEST_PACE).holder == "host:1"


@pytest.mark.django_db
def test_the_turn_passes_on_once_its_interval_is_over(settings):
    settings.CLAUDE_REQUESTS_PER_MINUTE = 60
    first, second = RequestPace("host:1"), RequestPace("host:2")
    assert first.acquire() == 0
    before = timezone.now()

    Lease.objects.filter(name=REQUEST_PACE).update(
        expires_at=timezone.now() - datetime.timedelta(milliseconds=1)
    )

    assert second.acquire() == 0
    lease = Lease.objects.get(name=REQUEST_PACE)
    assert lease.holder == "host:2"
    one_second = datetime.timedelta(seconds=1)
    assert before + one_second <= lease.expires_at <= timezone.now() + one_second


@pytest.mark.django_db
def test_waiting_for_the_turn_sleeps_until_it_is_free(settings):
    settings.CLAUDE_REQUESTS_PER_MINUTE = 60
    RequestPace("host:1").acquire()
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        Lease.objects.filter(name=REQUEST_PACE).update(holder="", expires_at=None)

    RequestPace("host:2").wait(sleep=sleep)

    assert len(slept) == 1
    assert 0 < slept[0] <= 1.0
    assert Lease.objects.get(name=REQUEST_PACE).holder == "host:2"
