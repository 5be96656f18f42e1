"""A Dosage's ``timing``: how often, at what times, for how long.

Read into the step's schedule (``every``, ``times_per_day``, ``once``, ``at``) and bounds
(``duration``).  ``when`` event codes give the ``at`` times of the library's convention in
``data/ucum.toml`` (``[event_times]``, level U: FHIR defines no clock times), moved by
``offset``; a code whose time cannot be known (``C``, ``AC``, ``PC``, ``PHS``) is refused.
``timeOfDay`` and ``when`` together are refused (FHIR's rule tim-10).  Ranges read at their
most frequent end, so that a check never understates: ``frequency``/``frequencyMax`` gives
``frequencyMax`` doses, ``period``/``periodMax`` the shorter ``period``.  Every unit of time of
FHIR (``s``, ``min``, ``h``, ``d``, ``wk``, ``mo``, ``a``; UCUM lengths from ``data/ucum.toml``)
is read.  What cannot be read is a :class:`StepError` naming the element.
"""

from __future__ import annotations

import datetime as _dt
import math
import re
from collections.abc import Mapping
from functools import cache
from typing import Any, Final

import attrs

from .. import _catalog, _units
from .._memo import Memo
from ..errors import StepError
from ._base import _finite_number, _list, _shown

__all__ = ["Schedule", "read_timing"]

_UCUM_FILE: Final = "ucum.toml"
_TIME: Final = re.compile(r"(\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?")
_HOURS_PER_DAY: Final = 24.0  # a unit identity


@cache
def _period_days() -> Mapping[str, float]:
    return {str(k): float(v) for k, v in _catalog.data_file(_UCUM_FILE)["periods"].items()}


@cache
def _timing_codes() -> Mapping[str, Mapping[str, Any]]:
    return dict(_catalog.data_file(_UCUM_FILE).get("timing_codes", {}))


@cache
def _event_times() -> Mapping[str, Mapping[str, Any]]:
    """``when`` code -> ``{at, before}`` or ``{refused}`` (``data/ucum.toml`` [event_times]:
    the library's convention, level U; FHIR defines no clock times)."""
    table = dict(_catalog.data_file(_UCUM_FILE).get("event_times", {}))
    table.pop("meta", None)
    return table


def _event_at(code: str, offset: int, field: str) -> str:
    """The time of day of one ``when`` code, moved by ``offset`` minutes (before the event for
    the AC* codes, after it otherwise, as FHIR reads ``offset``)."""
    row = _event_times().get(code)
    if row is None:
        raise StepError(
            field,
            f"{code!r} is not a FHIR R4 EventTiming code ({', '.join(_event_times())})",
        )
    if "refused" in row:
        raise StepError(field, str(row["refused"]))
    hours, minutes = (int(x) for x in str(row["at"]).split(":"))
    total = hours * 60 + minutes + (-offset if row.get("before") else offset)
    if not 0 <= total < 24 * 60:
        raise StepError(
            field, f"{code} with an offset of {offset} min falls outside the day: send timeOfDay"
        )
    return f"{total // 60:02d}:{total % 60:02d}"


def _when_times(when: list[Any], repeat: Mapping[str, Any], path: str) -> list[str]:
    """The times of day of ``when`` (and ``offset``), sorted; a named problem for a code without
    a time, or two codes at one time."""
    offset = repeat.get("offset", 0)
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise StepError(f"{path}.offset", f"must be whole minutes >= 0, not {_shown(offset)}")
    times = [_event_at(w, offset, f"{path}.when[{i}]") for i, w in enumerate(when)]
    if len(set(times)) != len(times):
        raise StepError(f"{path}.when", f"{', '.join(when)} give the same time twice")
    return sorted(times)


@attrs.define(frozen=True)
class Schedule:
    """The schedule a Timing gives: step keyword arguments, and the bounds in whole days."""

    kwargs: Mapping[str, Any]
    duration_days: int | None = None


def _days(value: object, unit: object, field: str) -> float:
    if not isinstance(unit, str) or unit not in _period_days():
        raise StepError(
            field, f"{_shown(unit)} is not a FHIR unit of time ({', '.join(_period_days())})"
        )
    x = _finite_number(value, field)
    if not x > 0:
        raise StepError(field, f"must be a positive number, not {_shown(value)}")
    days = x * _period_days()[unit]
    if not (math.isfinite(days) and days * 86400.0 >= 1e-6):
        raise StepError(field, f"{_shown(value)} {unit} is larger or smaller than a usable time")
    return days


def _count(value: object, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise StepError(field, f"must be a whole number >= 1, not {_shown(value)}")
    if value > 2**53:
        raise StepError(field, f"{_shown(value)} is too large to compute with")
    return value


def _every(days: float) -> Any:
    """An interval as a Quantity in the largest whole library unit (hours for most)."""
    hours = days * _HOURS_PER_DAY
    if hours >= _HOURS_PER_DAY and abs(days - round(days)) < 1e-9:
        return _units.Q(round(days), "day")
    if abs(hours - round(hours)) < 1e-9:
        return _units.Q(round(hours), "h")
    return _units.Q(hours * 60.0, "min")


def _time_of_day(text: object, field: str) -> str:
    m = _TIME.fullmatch(text) if isinstance(text, str) else None
    if m is None:
        raise StepError(field, f"{_shown(text)} is not a FHIR time (hh:mm:ss)")
    if m.group(3) not in (None, "00"):
        raise StepError(field, f"{text!r}: times of day are read to the minute")
    return f"{m.group(1)}:{m.group(2)}"


def _bounds_days(repeat: Mapping[str, Any], field: str) -> int | None:
    bounds = repeat.get("boundsDuration")
    if bounds is not None:
        if not isinstance(bounds, Mapping):
            raise StepError(f"{field}.boundsDuration", "must be a Duration {value, unit, code}")
        code = bounds.get("code", bounds.get("unit"))
        days = _days(bounds.get("value"), code, f"{field}.boundsDuration")
        return max(1, math.ceil(days - 1e-9))
    period = repeat.get("boundsPeriod")
    if period is not None:
        if not isinstance(period, Mapping):
            raise StepError(f"{field}.boundsPeriod", "must be a Period {start, end}")
        start, end = period.get("start"), period.get("end")
        if start is None or end is None:
            return None  # open-ended: no stop day (the longer reading)
        a, b = _when(start, f"{field}.boundsPeriod.start"), _when(end, f"{field}.boundsPeriod.end")
        if isinstance(a, _dt.datetime) and isinstance(b, _dt.datetime):
            seconds = (b - a).total_seconds()
            if seconds < 0:
                raise StepError(f"{field}.boundsPeriod", f"ends ({end}) before it starts ({start})")
            return max(1, math.ceil(seconds / 86400.0 - 1e-9))
        days = (_as_date(b) - _as_date(a)).days
        if days < 0:
            raise StepError(f"{field}.boundsPeriod", f"ends ({end}) before it starts ({start})")
        return days + 1
    return None


def _as_date(value: _dt.date | _dt.datetime) -> _dt.date:
    return value.date() if isinstance(value, _dt.datetime) else value


def _when(text: object, field: str) -> _dt.date | _dt.datetime:
    if not isinstance(text, str):
        raise StepError(field, f"{_shown(text)} is not a FHIR date or dateTime")
    try:
        if "T" in text:
            value = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
            return value if value.tzinfo else value.replace(tzinfo=_dt.UTC)
        return _dt.date.fromisoformat(text)
    except ValueError:
        raise StepError(field, f"{text!r} is not a FHIR date or dateTime") from None


#: Read schedules by the canonical form of their Timing (every value tagged with its JSON type),
#: bounded in bytes; only a success is kept (a problem names the element it was met at).
_SCHEDULES: Final = Memo("fhir.timing", max_bytes=256 * 1024)
#: What one memoized Schedule costs beyond its key (a few keyword arguments, one Quantity).
_SCHEDULE_BYTES: Final = 700
_NOT_CANONICAL: Final = object()


def _canonical(value: object, depth: int = 0) -> Any:
    """A Timing's JSON as nested tuples of tagged scalars (so 1, 1.0 and true stay apart), or
    ``_NOT_CANONICAL`` for anything else or anything deeper than a Timing goes."""
    cls = value.__class__
    if cls is str:
        return value
    if cls is bool or cls is int or cls is float or value is None:
        return (cls.__name__, value)
    if depth > 4:
        return _NOT_CANONICAL
    if cls is list:
        out = tuple(_canonical(v, depth + 1) for v in value)  # type: ignore[attr-defined]
        return _NOT_CANONICAL if _NOT_CANONICAL in out else ("list", out)
    if cls is dict:
        items = []
        for k, v in value.items():  # type: ignore[attr-defined]
            c = _canonical(v, depth + 1)
            if c is _NOT_CANONICAL or k.__class__ is not str:
                return _NOT_CANONICAL
            items.append((k, c))
        return ("dict", tuple(sorted(items)))
    return _NOT_CANONICAL


def read_timing(timing: object, field: str = "timing") -> Schedule:
    """The schedule of a FHIR Timing, memoized per canonical Timing (see :func:`_read_timing`).

    Example
    -------
    >>> from mps_analgesia.fhir._timing import read_timing
    >>> a = read_timing({"repeat": {"frequency": 1, "period": 4, "periodUnit": "h"}})
    >>> a is read_timing({"repeat": {"period": 4, "periodUnit": "h", "frequency": 1}})
    True
    """
    key = _canonical(timing)
    if key is _NOT_CANONICAL:
        return _read_timing(timing, field)
    hit = _SCHEDULES.get(key)
    if hit is not None:
        return hit  # type: ignore[no-any-return]
    return _SCHEDULES.put(key, _read_timing(timing, field), _SCHEDULE_BYTES)


def _read_timing(timing: object, field: str = "timing") -> Schedule:
    """The schedule of a FHIR Timing (``repeat``, else ``code``); ``{}`` for no timing.

    Example
    -------
    >>> from mps_analgesia.fhir._timing import read_timing
    >>> read_timing({"repeat": {"frequency": 1, "frequencyMax": 2, "period": 4,
    ...                         "periodMax": 6, "periodUnit": "h"}}).kwargs
    {'every': <Quantity(2.0, 'hour')>}
    >>> read_timing({"repeat": {"timeOfDay": ["08:00:00", "20:00:00"]}}).kwargs
    {'times_per_day': 2, 'at': ('08:00', '20:00')}
    >>> read_timing({"code": {"coding": [{"code": "BID"}]}}).kwargs
    {'times_per_day': 2}
    >>> read_timing({"repeat": {"when": ["CV", "CM"]}}).kwargs
    {'times_per_day': 2, 'at': ('08:00', '18:00')}
    """
    if timing is None:
        return Schedule({})
    if not isinstance(timing, Mapping):
        raise StepError(field, "must be a Timing object")
    repeat = timing.get("repeat")
    if repeat is None:
        for coding in _list((timing.get("code") or {}).get("coding")):
            code = coding.get("code") if isinstance(coding, Mapping) else None
            if isinstance(code, str) and code in _timing_codes():
                return _read_timing({"repeat": dict(_timing_codes()[code])}, field)
        if timing.get("code") is not None:
            raise StepError(
                f"{field}.code",
                "this timing code does not say how often; send timing.repeat "
                f"(codes read: {', '.join(_timing_codes())})",
            )
        if timing.get("event") is not None:
            events = _list(timing.get("event"))
            if len(events) == 1:
                return Schedule({"once": True})
            raise StepError(f"{field}.event", "several event times: send timing.repeat")
        return Schedule({})
    if not isinstance(repeat, Mapping):
        raise StepError(f"{field}.repeat", "must be an object")
    path = f"{field}.repeat"
    kwargs: dict[str, Any] = {}
    times = [
        _time_of_day(t, f"{path}.timeOfDay[{i}]")
        for i, t in enumerate(_list(repeat.get("timeOfDay")))
    ]
    if repeat.get("timeOfDay") is not None and not isinstance(repeat.get("timeOfDay"), list):
        raise StepError(f"{path}.timeOfDay", "must be a list of times")
    when = _list(repeat.get("when"))
    if repeat.get("when") is not None and not isinstance(repeat.get("when"), list):
        raise StepError(f"{path}.when", "must be a list of event codes")
    if not all(isinstance(w, str) and w for w in when):
        raise StepError(f"{path}.when", f"{_shown(repeat.get('when'))} is not a list of codes")
    if when and times:
        raise StepError(
            f"{path}.when", "timeOfDay and when together are not valid FHIR (tim-10): send one"
        )
    if when:
        times = _when_times(when, repeat, path)  # the library's convention: data/ucum.toml
    freq = repeat.get("frequency")
    freq_max = repeat.get("frequencyMax")
    period, unit = repeat.get("period"), repeat.get("periodUnit")
    period_max = repeat.get("periodMax")
    count = repeat.get("count")
    if freq_max is not None:
        freq = _count(freq_max, f"{path}.frequencyMax")
    elif freq is not None:
        freq = _count(freq, f"{path}.frequency")
    if period_max is not None:
        _days(period_max, unit, f"{path}.periodMax")  # checked; the shorter period is read
    if period is not None or unit is not None:
        days = _days(period, unit, f"{path}.period")
        per_day = (freq or 1) / days
        if freq is not None and freq > 1 and abs(days - 1.0) < 1e-12:
            kwargs["times_per_day"] = freq
        else:
            kwargs["every"] = _every(days / (freq or 1))
        if times and not math.isclose(per_day, len(times)):
            raise StepError(
                f"{path}.timeOfDay",
                f"{len(times)} times of day for {per_day:g} doses a day: one time per dose",
            )
    elif times:
        if freq is not None and freq != len(times):
            raise StepError(f"{path}.timeOfDay", f"{len(times)} times of day for {freq} doses")
        kwargs["times_per_day"] = len(times)
    elif when:
        if freq is not None and freq != len(when):
            raise StepError(f"{path}.when", f"{len(when)} events for {freq} doses a day")
        kwargs["times_per_day"] = len(when)
    elif freq is not None:
        raise StepError(f"{path}.period", "a frequency needs a period and periodUnit")
    elif count is not None and _count(count, f"{path}.count") == 1:
        kwargs["once"] = True
    if times:
        kwargs["at"] = tuple(times)
    return Schedule(kwargs, _bounds_days(repeat, path))
