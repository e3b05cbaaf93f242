"""The OnCalendar= subset (model/schedule.py), checked against the real `systemd-analyze calendar`.

Every accepted expression is accepted by systemd with the same elapses from fixed instants
(`--base-time`, TZ=UTC); the plainly invalid rejected ones are rejected by systemd too, so the
subset is never looser than systemd. The others rejected are systemd syntax outside the subset.
"""

from __future__ import annotations

import datetime
import itertools
import os
import re
import subprocess

import pytest
import realcheck

from model.schedule import ACCEPTED_FORMS, CalendarSchedule, ScheduleError, parse_calendar

UTC = datetime.timezone.utc
HOUR, DAY, WEEK = 3600, 86400, 7 * 86400

ACCEPTED = [
    # systemd's shorthands, and surrounding whitespace (the expression is kept stripped)
    "minutely", "hourly", "daily", "weekly", "monthly", "  daily  ",
    # times
    "00:00", "0:0", "03:30", "3:30", "23:59", "00:01", "23:59:59", "00:00:00", "12:00:30", "2:00:5",
    # lists (in any order)
    "0,12:00", "12,0:00", "6,18:30", "1,2,3:00", "0,6,12,18:15:00", "*:0,30", "*:15,45",
    "*:*:0,30", "3:0,20,40:0,30",
    # every value
    "*:00", "*:0", "*:30", "*:*", "*:*:00", "*:*:*", "*:07:*",
    # repetitions N/STEP, up to systemd's limit N+STEP <= the range's end
    "*:0/5", "*:0/15", "*:00/15", "*:5/10", "*:7/20", "*:58/1", "*:0/59", "*:5/54", "0/2:00",
    "1/3:30", "0/23:00", "21/2:00", "22/1:00", "5/10:00", "0/6:0/30", "*:*:0/30", "*:*:15/15",
    "*:0/15:30", "5:0/30", "0/1:0/1:0/20",
    # the date part
    "*-*-* 02:00", "*-*-* 02:00:00", "*-*-* *:0/15", "Mon *-*-* 00:00:00", "Mon..Fri *-*-* 02:30",
    # weekdays: lists, ranges, both
    "Mon 02:00", "Sun 23:00", "Sat,Sun 04:30", "Mon..Fri 02:00", "Mon..Fri *:0/15",
    "Mon..Wed,Fri 02:00", "Mon..Mon 02:00", "Mon,Mon 02:00", "Mon..Sun 00:00", "Sun,Mon 23:59",
    "Mon,Tue 23:59", "Tue..Thu 0,12:00", "Fri..Sun 22/1:00", "Wed *:*:0/30", "Thu 00:01",
    "Sat..Sun 0/4:0:0", "Sun,Sat,Mon 3:30",
]

# Plainly invalid: systemd rejects these as well.
SYSTEMD_REJECTS = [
    "", "   ", "hourlyx", "hourly x", "hour ly", "hourly,daily", "hourly;", "@daily",
    "0 3 * * *", "*/15 * * * *", "24:00", "25:00", "23:60", "00:00:60", "-1:00", "+1:00", "3",
    "03", "03:", ":30", "03:30:", "03:30:00:00", "3.30", "Mon..", "Mon.. 02:00", "..Fri 02:00",
    "Fri..Mon 02:00", "Sun..Mon 02:00", "Mon..Wed..Fri 02:00", "Mon,,Tue 02:00",
    "Mon, Tue 02:00", "Mon\t02:00", "*-*-* Mon 02:00", "*/15:00", "*:*/15", "*:*:*/5", "*:0/0",
    "0/0:00", "*:0/60", "*:30/30", "*:59/1", "*:58/2", "23/2:00", "0/24:00", "*:00/", "*:/5",
    "0,,12:00", "0,12,:00", "\u0663:00", "03:30\nMon",
]
# systemd accepts these, but they are outside the subset.
OUTSIDE_SUBSET = [
    "Hourly", "HOURLY", "yearly", "quarterly", "@1700000000", "mon 02:00", "MON 02:00",
    "Monday 02:00", "Mon", "Mon,Tue, 02:00", "Mon  02:00", "*-*-*", "*-*-01 00:00",
    "2024-01-01 00:00", "03:30 UTC", "03:30 Europe/Berlin", "002:00", "03:005", "*:0/015",
    "*:0/15,5", "1..3:00", "*:00:01.5",
]
REJECTED = SYSTEMD_REJECTS + OUTSIDE_SUBSET

# Instants to compute from: on an elapse of many schedules (strictly after excludes it), across a
# year's end, and across a leap day and a month's end, mid-second.
BASES = [
    datetime.datetime(2023, 12, 31, 22, 0, 0, tzinfo=UTC),
    datetime.datetime(2024, 2, 28, 23, 59, 30, tzinfo=UTC),
]
ITERATIONS = 20
# systemd-analyze prints each elapse as e.g. `Next elapse: Mon 2024-01-01 01:00:00 UTC`.
ELAPSE = re.compile(r"(?:Next elapse|Iter\. #\d+): \w{3} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC$", re.M)


@pytest.fixture(scope="module")
def analyze() -> str:
    path = realcheck.require_tool("systemd-analyze", "systemd")
    help_text = subprocess.run([path, "--help"], capture_output=True, text=True, timeout=30).stdout
    if "--base-time" not in help_text:
        pytest.skip(f"{path} has no --base-time: install a newer Debian package `systemd`")
    return path


def run_calendar(analyze: str, expression: str, base: datetime.datetime,
                 iterations: int) -> subprocess.CompletedProcess[str]:
    # `--` so that an expression starting with '-' is not read as an option.
    return subprocess.run(
        [analyze, "calendar", f"--iterations={iterations}",
         f"--base-time={base:%Y-%m-%d %H:%M:%S} UTC", "--", expression],
        capture_output=True, text=True, timeout=60, env={**os.environ, "TZ": "UTC", "LC_ALL": "C"},
    )


def systemd_elapses(analyze: str, expression: str, base: datetime.datetime,
                    iterations: int) -> list[datetime.datetime]:
    result = run_calendar(analyze, expression, base, iterations)
    assert result.returncode == 0, f"systemd rejects {expression!r}: {result.stderr}"
    return [datetime.datetime.fromisoformat(found).replace(tzinfo=UTC)
            for found in ELAPSE.findall(result.stdout)]


# --- the corpus ------------------------------------------------------------------------------

def test_the_corpus_is_large_and_consistent() -> None:
    assert len(ACCEPTED) >= 60 and len(REJECTED) >= 40
    assert len(set(ACCEPTED)) == len(ACCEPTED) and len(set(REJECTED)) == len(REJECTED)
    assert not set(ACCEPTED) & set(REJECTED)


@pytest.mark.parametrize("expression", ACCEPTED)
def test_every_accepted_expression_parses_and_keeps_the_stripped_expression(expression: str) -> None:
    assert parse_calendar(expression).expression == expression.strip()


@pytest.mark.parametrize("expression", REJECTED)
def test_every_rejected_expression_raises_a_schedule_error_naming_the_accepted_forms(
        expression: str) -> None:
    with pytest.raises(ScheduleError) as raised:
        parse_calendar(expression)
    assert ACCEPTED_FORMS in str(raised.value)
    assert isinstance(raised.value, ValueError)


@pytest.mark.real
@pytest.mark.parametrize("expression", ACCEPTED)
def test_every_accepted_expression_is_accepted_by_systemd_with_the_same_elapses(
        analyze: str, expression: str) -> None:
    schedule = parse_calendar(expression)
    for base in BASES:
        theirs = systemd_elapses(analyze, schedule.expression, base, ITERATIONS)
        assert len(theirs) == ITERATIONS
        assert schedule.next_elapses(base, ITERATIONS) == theirs, f"from {base}"


@pytest.mark.real
@pytest.mark.parametrize("expression", SYSTEMD_REJECTS)
def test_systemd_rejects_the_plainly_invalid_expressions_too(analyze: str, expression: str) -> None:
    result = run_calendar(analyze, expression, BASES[0], 1)
    assert result.returncode != 0, f"systemd accepts {expression!r}:\n{result.stdout}"
    assert "Failed to parse calendar specification" in result.stderr


# --- what is wrong, said -----------------------------------------------------------------------

@pytest.mark.parametrize(("expression", "says"), [
    ("", "empty"),
    ("24:00", "hour 24 is out of range 0-23"),
    ("*:60", "minute 60 is out of range 0-59"),
    ("00:00:60", "second 60 is out of range 0-59"),
    ("*/15:00", "write 0/STEP"),
    ("*:30/30", "N+STEP <= 59"),
    ("*-*-01 00:00", "the only date accepted is *-*-*"),
    ("mon 02:00", "Mon Tue Wed Thu Fri Sat Sun"),
    ("Fri..Mon 02:00", "write Fri..Sun,Mon"),
    ("Sat..Tue 02:00", "write Sat..Sun,Mon..Tue"),
    ("03:30 UTC", "time zones are not accepted"),
    ("Mon  02:00", "single spaces"),
    ("Mon Tue 02:00", "[WEEKDAYS] [*-*-*] TIME"),
])
def test_the_error_says_what_is_wrong(expression: str, says: str) -> None:
    with pytest.raises(ScheduleError, match=re.escape(says)):
        parse_calendar(expression)


# --- meaning ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("shorthand", "spelled"), [
    ("minutely", "*-*-* *:*:00"),
    ("hourly", "*-*-* *:00:00"),
    ("daily", "*-*-* 00:00:00"),
    ("weekly", "Mon *-*-* 00:00:00"),
])
def test_a_shorthand_means_what_systemd_defines(shorthand: str, spelled: str) -> None:
    ours, theirs = parse_calendar(shorthand), parse_calendar(spelled)
    assert (ours.weekdays, ours.hours, ours.minutes, ours.seconds) == (
        theirs.weekdays, theirs.hours, theirs.minutes, theirs.seconds)


def test_monthly_elapses_at_midnight_on_the_first_of_each_month() -> None:
    after = datetime.datetime(2024, 1, 31, 12, tzinfo=UTC)
    assert parse_calendar("monthly").next_elapses(after, 3) == [
        datetime.datetime(2024, month, 1, tzinfo=UTC) for month in (2, 3, 4)]


def test_seconds_default_to_zero_and_weekdays_to_every_day() -> None:
    schedule = parse_calendar("3:30")
    assert schedule == CalendarSchedule("3:30", frozenset(range(7)), (3,), (30,), (0,))


def test_a_repetition_runs_from_its_start_by_its_step_to_the_end_of_the_range() -> None:
    assert parse_calendar("5/10:00").hours == (5, 15)
    assert parse_calendar("*:7/20").minutes == (7, 27, 47)
    assert parse_calendar("*:*:0/30").seconds == (0, 30)


def test_weekday_lists_and_ranges_combine() -> None:
    assert parse_calendar("Mon..Wed,Fri 02:00").weekdays == {0, 1, 2, 4}
    assert parse_calendar("Sun,Sat,Mon 02:00").weekdays == {0, 5, 6}


def test_next_elapses_are_strictly_after_the_instant_and_in_utc() -> None:
    schedule = parse_calendar("*:0/15")
    on_an_elapse = datetime.datetime(2024, 1, 1, 10, 15, tzinfo=UTC)
    assert schedule.next_elapses(on_an_elapse, 2) == [
        datetime.datetime(2024, 1, 1, 10, 30, tzinfo=UTC),
        datetime.datetime(2024, 1, 1, 10, 45, tzinfo=UTC)]
    # A naive instant is UTC; an aware one in another zone is converted.
    assert schedule.next_elapses(on_an_elapse.replace(tzinfo=None), 1)[0].hour == 10
    plus_two = datetime.timezone(datetime.timedelta(hours=2))
    assert schedule.next_elapses(on_an_elapse.astimezone(plus_two), 1) == [
        datetime.datetime(2024, 1, 1, 10, 30, tzinfo=UTC)]
    assert schedule.next_elapses(on_an_elapse, 0) == []


def test_a_schedule_with_an_empty_field_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one value"):
        CalendarSchedule("x", frozenset(), (0,), (0,), (0,))


# --- the shortest interval ----------------------------------------------------------------------

SHORTEST = [
    ("minutely", 60),
    ("hourly", HOUR),
    ("daily", DAY),
    ("weekly", WEEK),
    ("monthly", 28 * DAY),  # February of a common year
    ("*:0/5", 300),
    ("*:0/15", 900),
    ("Mon..Fri 02:00", DAY),  # Fri -> Mon is longer; Mon -> Tue is the shortest
    ("Sun 23:00", WEEK),
    ("*:*:0/30", 30),
    ("0,12:00", 12 * HOUR),
    ("23:59", DAY),
    ("00:01", DAY),
    ("0,23:0,59", 60),  # 23:59 -> 00:00 across midnight
    ("1,23:00", 2 * HOUR),  # 23:00 -> 01:00 across midnight
    ("Mon,Tue 23:59", DAY),
    ("Sun,Mon 23:59", DAY),  # across the week's end
    ("Sat,Sun 0,23:0,59", 60),  # and Sat 23:59 -> Sun 00:00
    ("Sun,Mon 0,23:0,59", 60),  # and Sun 23:59 -> Mon 00:00, across the week's end
    ("Sun 23:59", WEEK),
    ("Mon,Thu 12:00", 3 * DAY),
    ("Fri..Sun 22/1:00", HOUR),
    ("Mon 0/6:00", 6 * HOUR),
    ("Mon 22:00", WEEK),
    ("*:*:*", 1),
]


@pytest.mark.parametrize(("expression", "seconds"), SHORTEST)
def test_the_shortest_interval_between_elapses(expression: str, seconds: int) -> None:
    assert parse_calendar(expression).shortest_interval_seconds() == seconds


def iterations_for_a_full_cycle(schedule: CalendarSchedule) -> int:
    """Enough elapses that their gaps cover a whole cycle: a day, a week when weekdays are
    restricted, or 13 months (from January 2023: a common February) for monthly."""
    if schedule.expression == "monthly":
        return 13
    per_day = len(schedule.hours) * len(schedule.minutes) * len(schedule.seconds)
    return per_day * (len(schedule.weekdays) if len(schedule.weekdays) < 7 else 1) + 1


@pytest.mark.real
@pytest.mark.parametrize(("expression", "seconds"), [(e, s) for e, s in SHORTEST if e != "*:*:*"])
def test_the_shortest_interval_is_the_smallest_gap_between_systemd_elapses(
        analyze: str, expression: str, seconds: int) -> None:
    schedule = parse_calendar(expression)
    iterations = iterations_for_a_full_cycle(schedule)
    assert iterations <= 3000, "keep systemd-analyze quick: sample a sparser schedule"
    theirs = systemd_elapses(analyze, expression, datetime.datetime(2023, 1, 1, tzinfo=UTC), iterations)
    assert len(theirs) == iterations
    assert min(int((b - a).total_seconds()) for a, b in itertools.pairwise(theirs)) == seconds
