"""Half-open UTC time windows ``[start, end)`` and the hourly grid partitions live on."""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

HOUR = timedelta(hours=1)


@dataclass(frozen=True, order=True)
class TimeWindow:
    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("time windows are in UTC; give timezone-aware datetimes")
        if self.end <= self.start:
            raise ValueError(f"empty window {self.start.isoformat()} .. {self.end.isoformat()}")

    @property
    def start_ms(self) -> int:
        return round(self.start.timestamp() * 1000)

    @property
    def end_ms(self) -> int:
        return round(self.end.timestamp() * 1000)

    @property
    def duration(self) -> timedelta:
        return self.end - self.start

    def hours(self) -> Iterator["TimeWindow"]:
        """The hourly partitions this window covers (it must be aligned to the hour)."""
        if floor_hour(self.start) != self.start or floor_hour(self.end) != self.end:
            raise ValueError(f"{self} is not aligned to whole hours")
        cursor = self.start
        while cursor < self.end:
            yield TimeWindow(cursor, cursor + HOUR)
            cursor += HOUR

    def split(self, width: timedelta) -> Iterator["TimeWindow"]:
        cursor = self.start
        while cursor < self.end:
            yield TimeWindow(cursor, min(cursor + width, self.end))
            cursor += width

    def __str__(self) -> str:
        return f"[{self.start:%Y-%m-%dT%H:%M:%S}Z, {self.end:%Y-%m-%dT%H:%M:%S}Z)"


def floor_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def hour_window(moment: datetime) -> TimeWindow:
    start = floor_hour(moment)
    return TimeWindow(start, start + HOUR)


class OutOfRange(ValueError):
    """A valid ISO 8601 time that is not one once in UTC (year 1 at +01:00, say)."""


def utc(text: str) -> datetime:
    """Parse ISO 8601 (``Z`` allowed); naive times are taken as UTC."""
    return as_utc(datetime.fromisoformat(text.replace("Z", "+00:00")), text)


def as_utc(moment: datetime, written: object = None) -> datetime:
    """``moment`` in UTC (naive: taken as UTC); :class:`OutOfRange` naming ``written`` (default:
    the time) when UTC has no such time."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise OutOfRange(
            f"{written or moment.isoformat()!r} falls outside the years 1-9999 in UTC; "
            "write a time within them"
        ) from None


def minute_text(moment: datetime) -> str:
    """A time in messages, to the minute, UTC; four-digit years as a user writes them (strftime
    drops the zeros of year 1)."""
    return f"{moment.year:04d}-{moment:%m-%d %H:%M}Z"
