"""Time without an RTC: stamping before sync, re-timing after GPS/NTP, other boots left alone."""

from __future__ import annotations

import datetime

import pytest

from agent.core.timebase import Timebase, TimeStamp, parse_gps_time, plausible_wall, system_clock_trusted

TRUE_START = datetime.datetime(2026, 3, 2, 7, 45, tzinfo=datetime.UTC).timestamp()  # true time at mono 0


def test_clock_starting_at_1970_is_retimed_from_the_monotonic_clock_after_gps_time() -> None:
    timebase = Timebase("boot-a")
    # The Pi booted with a 1970 clock; mono 12.5 s after boot is "1970-01-01T00:00:12.5".
    early = [timebase.stamp(mono, system_wall=mono) for mono in (12.5, 300.0, 900.0)]
    assert all(s.source == "unsynced" and s.wall < 1000 for s in early)
    assert timebase.sync(1000.0, TRUE_START + 1000.0, "gps")
    retimed = [timebase.retime(s) for s in early]
    assert [s.wall for s in retimed] == [TRUE_START + 12.5, TRUE_START + 300.0, TRUE_START + 900.0]
    assert {s.source for s in retimed} == {"gps"}
    assert [s.mono for s in retimed] == [12.5, 300.0, 900.0]


def test_stale_clock_one_hour_behind_is_corrected_by_ntp() -> None:
    timebase = Timebase("boot-a")
    stale = timebase.stamp(60.0, system_wall=TRUE_START + 60.0 - 3600.0)  # fake-hwclock, an hour late
    assert stale.source == "unsynced"
    assert not system_clock_trusted(stale.wall, kernel_synced=False)  # plausible year, not trusted
    timebase.sync(200.0, TRUE_START + 200.0, "ntp")
    assert timebase.retime(stale) == TimeStamp("boot-a", 60.0, TRUE_START + 60.0, "ntp")


def test_after_sync_new_stamps_use_the_offset_not_the_system_clock() -> None:
    timebase = Timebase("boot-a")
    timebase.sync(100.0, TRUE_START + 100.0, "gps")
    stamp = timebase.stamp(160.0, system_wall=5.0)
    assert stamp == TimeStamp("boot-a", 160.0, TRUE_START + 160.0, "gps")
    assert timebase.wall_at(160.0) == TRUE_START + 160.0


def test_records_of_another_boot_are_not_retimed() -> None:
    old = TimeStamp("boot-before", 50.0, 50.0, "unsynced")
    timebase = Timebase("boot-a")
    timebase.sync(10.0, TRUE_START + 10.0, "gps")
    assert timebase.retime(old) is old


def test_retime_before_any_sync_changes_nothing() -> None:
    timebase = Timebase("boot-a")
    stamp = timebase.stamp(5.0, system_wall=5.0)
    assert timebase.retime(stamp) is stamp
    assert not timebase.synced and timebase.wall_at(5.0) is None


def test_implausible_sync_is_refused_and_keeps_the_previous_offset() -> None:
    timebase = Timebase("boot-a")
    assert timebase.sync(10.0, TRUE_START + 10.0, "ntp")
    # A GPS week-rollover bug reports a date 1024 weeks in the past.
    assert not timebase.sync(20.0, TRUE_START + 20.0 - 1024 * 7 * 86400, "gps")
    assert (timebase.source, timebase.wall_at(20.0)) == ("ntp", TRUE_START + 20.0)


@pytest.mark.parametrize(
    ("wall", "synced", "trusted"),
    [
        (0.0, True, False),
        (1_600_000_000.0, True, False),
        (TRUE_START, True, True),
        (TRUE_START, False, False),
    ],
)
def test_system_clock_is_trusted_only_when_synced_and_after_2024(
    wall: float, synced: bool, trusted: bool
) -> None:
    assert system_clock_trusted(wall, kernel_synced=synced) is trusted


def test_plausible_wall_rejects_nan_and_far_future() -> None:
    assert not plausible_wall(float("nan"))
    assert not plausible_wall(5_000_000_000.0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-02T07:45:00.000Z", TRUE_START),
        ("2026-03-02T07:45:00", TRUE_START),
        ("1980-01-06T00:00:00Z", None),
        ("garbage", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_gps_time(text: str | None, expected: float | None) -> None:
    assert parse_gps_time(text) == expected


def test_stamp_serialises_to_a_plain_dict() -> None:
    assert TimeStamp("b", 1.0, 2.0, "gps").to_dict() == {
        "boot_id": "b",
        "mono": 1.0,
        "wall": 2.0,
        "source": "gps",
    }
