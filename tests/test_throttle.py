"""The API throttles' counters (wopr.throttle): exact, shared, and constant work per request
whatever the rate."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from wopr import throttle
from wopr.models import ThrottleWindow
from wopr.throttle import throttle_hit

MID_MINUTE = 1_800_000_030.0

DATABASE_CACHE = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "api": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "wopr_cache"},
}
MEMORY_CACHE = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "api": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "t-throttle"},
}


@pytest.fixture
def at(monkeypatch):
    """Set the throttle's clock."""

    def _at(moment: float) -> None:
        monkeypatch.setattr(throttle, "clock", lambda: moment)

    _at(MID_MINUTE)
    return _at


@pytest.mark.django_db
@pytest.mark.parametrize("caches_setting", [DATABASE_CACHE, MEMORY_CACHE], ids=["db", "cache"])
def test_each_request_gets_its_number_in_the_window_and_a_new_window_starts_at_one(
    settings, at, caches_setting
):
    settings.CACHES = caches_setting

    hits = [throttle_hit(key="client-a", period=60).hits for _ in range(3)]
    other = throttle_hit(key="client-b", period=60)
    at(MID_MINUTE + 45)  # 15 s into the next minute
    next_window = throttle_hit(key="client-a", period=60)

    assert hits == [1, 2, 3]
    assert other.hits == 1
    assert next_window.hits == 1
    assert next_window.resets_in == pytest.approx(45)


@pytest.mark.django_db
def test_a_request_costs_the_same_few_queries_whatever_the_rate(
    settings, at, django_assert_max_num_queries
):
    """The old pool of N slots read N keys per request: 100,000 for a rate of 100,000/min."""
    settings.CACHES = DATABASE_CACHE
    throttle_hit(key="busy", period=60)  # the window's row exists

    with django_assert_max_num_queries(4):  # savepoint, update, read back, release
        assert throttle_hit(key="busy", period=60).hits == 2


@pytest.mark.django_db
def test_old_windows_are_forgotten(settings, at):
    settings.CACHES = DATABASE_CACHE
    throttle_hit(key="gone", period=60)
    at(MID_MINUTE + 2 * 3600)

    throttle_hit(key="fresh", period=60)

    assert list(ThrottleWindow.objects.values_list("key", flat=True)) == ["fresh"]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_concurrent_requests_each_get_a_different_number(settings, at):
    """Twenty requests at once, each on its own connection: every number from 1 to 20 once,
    so no two processes ever both read "10 of 10"."""
    settings.CACHES = DATABASE_CACHE
    start = threading.Barrier(20)
    numbers: list[int] = []

    def hit() -> None:
        try:
            start.wait()
            numbers.append(throttle_hit(key="race", period=60).hits)
        finally:
            connection.close()

    threads = [threading.Thread(target=hit) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(numbers) == list(range(1, 21))
