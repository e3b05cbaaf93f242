"""systemd `OnCalendar=` schedules: the documented subset the backup and defrag timers accept.

Pure: no Pulumi imports and no subprocess, because the program also runs where there is no
systemd (macOS), and a bad schedule must be reported before anything is created. The subset is
small on purpose: whatever it accepts, systemd 252 accepts too and means the same
(tests/test_schedule.py checks both against the real `systemd-analyze calendar`). It names no
time zone: the timers append ` UTC` (cloudinit/unit.py), and the elapses here are in UTC.
"""

from __future__ import annotations

import datetime
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

UTC = datetime.timezone.utc  # not datetime.UTC: the program supports Python 3.10

ACCEPTED_FORMS = (
    "hourly, daily, weekly, monthly or minutely; or a time H:M or H:M:S in UTC such as 03:30, "
    "0,12:00 or *:0/15 (N/STEP: N, N+STEP, ...; systemd has no */STEP), optionally after "
    "*-*-* and after weekdays such as Mon..Fri 02:00 or Sat,Sun 04:30"
)
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
DAY = 86400
_ALL_WEEKDAYS = frozenset(range(7))
_ALL_MONTH_DAYS = frozenset(range(1, 32))
# systemd's own definitions (systemd.time(7)); `monthly` alone restricts the day of the month.
_SHORTHANDS = {"minutely": "*:*:00", "hourly": "*:00:00", "daily": "00:00:00",
               "weekly": "Mon 00:00:00", "monthly": "00:00:00"}
# [0-9], not \d: \d also matches other scripts' digits, which systemd rejects.
_NUMBERS = re.compile(r"[0-9]{1,2}(,[0-9]{1,2})*")
_STEP = re.compile(r"([0-9]{1,2})/([0-9]{1,2})")
_DAYS = "|".join(WEEKDAYS)
_WEEKDAY_ITEM = re.compile(rf"({_DAYS})(?:\.\.({_DAYS}))?")


class ScheduleError(ValueError):
    """What is wrong with a schedule, followed by the accepted forms."""

    def __init__(self, problem: str) -> None:
        super().__init__(f"{problem}. Accepted: {ACCEPTED_FORMS}.")


@dataclass(frozen=True)
class CalendarSchedule:
    expression: str
    weekdays: frozenset[int]  # 0=Mon..6=Sun
    hours: tuple[int, ...]
    minutes: tuple[int, ...]
    seconds: tuple[int, ...]
    days_of_month: frozenset[int] = field(default=_ALL_MONTH_DAYS)

    def __post_init__(self) -> None:
        # An empty set would never elapse, and next_elapses would search for ever.
        if not (self.weekdays and self.hours and self.minutes and self.seconds and self.days_of_month):
            raise ValueError(f"{self.expression!r}: a schedule needs at least one value in each field")

    def _seconds_of_day(self) -> list[int]:
        return [h * 3600 + m * 60 + s for h in self.hours for m in self.minutes for s in self.seconds]

    def _elapses(self, after: datetime.datetime) -> Iterator[datetime.datetime]:
        after = after.replace(tzinfo=UTC) if after.tzinfo is None else after.astimezone(UTC)
        times = self._seconds_of_day()
        day = after.date()
        while True:
            if day.weekday() in self.weekdays and day.day in self.days_of_month:
                midnight = datetime.datetime.combine(day, datetime.time(), UTC)
                for second in times:
                    at = midnight + datetime.timedelta(seconds=second)
                    if at > after:
                        yield at
            day += datetime.timedelta(days=1)

    def next_elapses(self, after: datetime.datetime, count: int) -> list[datetime.datetime]:
        """The next `count` elapses strictly after `after` (naive: taken as UTC), in UTC."""
        return list(itertools.islice(self._elapses(after), max(count, 0)))

    def shortest_interval_seconds(self) -> int:
        """The shortest time between two consecutive elapses, across midnight and the week."""
        if self.days_of_month != _ALL_MONTH_DAYS:
            # Walk 2001-2028: every weekday and month length (a common February) comes round.
            start = datetime.datetime(2001, 1, 1, tzinfo=UTC)
            end = datetime.datetime(2029, 1, 1, tzinfo=UTC)
            walk = itertools.takewhile(lambda at: at < end, self._elapses(start))
            return min(int((b - a).total_seconds()) for a, b in itertools.pairwise(walk))
        times = self._seconds_of_day()
        gaps = [b - a for a, b in itertools.pairwise(times)]
        days = sorted(self.weekdays)
        # From the day's last elapse to the first on the next day the schedule runs.
        gaps += [(e - d) * DAY - times[-1] + times[0] for d, e in itertools.pairwise([*days, days[0] + 7])]
        return min(gaps)


def _field(text: str, unit: str, high: int) -> tuple[int, ...]:
    """One of H, M, S: `*`, a number or comma list of numbers, or N/STEP."""
    if text == "*":
        return tuple(range(high + 1))
    if text.startswith("*/"):
        raise ScheduleError(f"{unit} {text!r}: systemd rejects */STEP, write 0/STEP")
    if step := _STEP.fullmatch(text):
        start, repeat = int(step[1]), int(step[2])
        # systemd's own rule (calendarspec.c chain_valid): N+STEP must still be in the range.
        if repeat == 0 or start + repeat > high:
            raise ScheduleError(f"{unit} {text!r}: N/STEP needs STEP >= 1 and N+STEP <= {high}")
        return tuple(range(start, high + 1, repeat))
    if not _NUMBERS.fullmatch(text):
        raise ScheduleError(f"{unit} {text!r} is not *, a number, a comma list of numbers or N/STEP")
    values = sorted({int(number) for number in text.split(",")})
    if values[-1] > high:
        raise ScheduleError(f"{unit} {values[-1]} is out of range 0-{high}")
    return tuple(values)


def _span(first: str, last: str) -> str:
    return first if first == last else f"{first}..{last}"


def _weekdays(text: str) -> frozenset[int]:
    if "-" in text:
        raise ScheduleError(f"date {text!r}: the only date accepted is *-*-* (every day)")
    days: set[int] = set()
    for item in text.split(","):
        match = _WEEKDAY_ITEM.fullmatch(item)
        if not match:
            raise ScheduleError(f"weekdays {text!r}: write {' '.join(WEEKDAYS)} as shown, "
                                "comma-separated, or ranges such as Mon..Fri")
        first = WEEKDAYS.index(match[1])
        last = WEEKDAYS.index(match[2]) if match[2] else first
        if last < first:
            raise ScheduleError(f"weekdays {item!r} run backwards (systemd rejects them); write "
                                f"{_span(match[1], 'Sun')},{_span('Mon', match[2])}")
        days.update(range(first, last + 1))
    return frozenset(days)


def parse_calendar(text: str) -> CalendarSchedule:
    """The schedule `text` (an OnCalendar= value) describes, or ScheduleError."""
    expression = text.strip()
    spelled = _SHORTHANDS.get(expression, expression)
    if not spelled:
        raise ScheduleError("the schedule is empty")
    if "  " in spelled:
        raise ScheduleError("separate weekdays, date and time with single spaces")
    parts = spelled.split(" ")
    time = parts.pop()
    if parts and parts[-1] == "*-*-*":
        parts.pop()
    if len(parts) > 1:
        raise ScheduleError(f"unexpected {' '.join(parts)!r}: the form is [WEEKDAYS] [*-*-*] TIME")
    fields = time.split(":")
    if len(fields) not in (2, 3):
        raise ScheduleError(f"{time!r} is not a time H:M or H:M:S (time zones are not accepted)")
    hours, minutes = _field(fields[0], "hour", 23), _field(fields[1], "minute", 59)
    seconds = _field(fields[2], "second", 59) if len(fields) == 3 else (0,)  # systemd's default
    return CalendarSchedule(
        expression=expression, weekdays=_weekdays(parts[0]) if parts else _ALL_WEEKDAYS,
        hours=hours, minutes=minutes, seconds=seconds,
        days_of_month=frozenset({1}) if expression == "monthly" else _ALL_MONTH_DAYS)
