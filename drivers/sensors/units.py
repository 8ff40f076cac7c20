"""Unit conversions between what devices send and what the COC expects (metric, °C)."""

from __future__ import annotations

from typing import Callable

# Spellings technicians type, mapped to one canonical symbol.
_ALIASES = {
    "C": "°C", "degC": "°C", "celsius": "°C", "°c": "°C",
    "F": "°F", "degF": "°F", "fahrenheit": "°F", "°f": "°F",
    "kelvin": "K",
    "percent": "%", "pct": "%",
    "kmh": "km/h", "kph": "km/h", "m/s": "m/s", "mps": "m/s",
    "inch": "in", "inches": "in",
    "mbar": "hPa",
    "uS/cm": "µS/cm", "us/cm": "µS/cm", "μS/cm": "µS/cm",
}

_CONVERSIONS: dict[tuple[str, str], Callable[[float], float]] = {
    ("°F", "°C"): lambda v: (v - 32.0) * 5.0 / 9.0,
    ("°C", "°F"): lambda v: v * 9.0 / 5.0 + 32.0,
    ("K", "°C"): lambda v: v - 273.15,
    ("°C", "K"): lambda v: v + 273.15,
    ("km/h", "m/s"): lambda v: v / 3.6,
    ("m/s", "km/h"): lambda v: v * 3.6,
    ("mph", "m/s"): lambda v: v * 0.44704,
    ("mph", "km/h"): lambda v: v * 1.609344,
    ("in", "mm"): lambda v: v * 25.4,
    ("mm", "in"): lambda v: v / 25.4,
    ("inHg", "hPa"): lambda v: v * 33.8638866667,
    ("Pa", "hPa"): lambda v: v / 100.0,
    ("kPa", "hPa"): lambda v: v * 10.0,
    ("psi", "kPa"): lambda v: v * 6.89475729,
    ("mV", "V"): lambda v: v / 1000.0,
    ("V", "mV"): lambda v: v * 1000.0,
    ("mS/cm", "µS/cm"): lambda v: v * 1000.0,
    ("µS/cm", "mS/cm"): lambda v: v / 1000.0,
    ("ft", "m"): lambda v: v * 0.3048,
    ("cm", "m"): lambda v: v / 100.0,
    ("mm", "m"): lambda v: v / 1000.0,
    ("m", "cm"): lambda v: v * 100.0,
    ("m", "mm"): lambda v: v * 1000.0,
}


def canonical(unit: str | None) -> str | None:
    """The canonical spelling of a unit, so `F`, `degF` and `°F` compare equal."""
    if unit is None:
        return None
    return _ALIASES.get(unit, unit)


def converter(src: str | None, dst: str | None) -> Callable[[float], float] | None:
    """A function turning src into dst; None when no conversion is needed or none is known."""
    a, b = canonical(src), canonical(dst)
    if a is None or b is None or a == b:
        return None
    return _CONVERSIONS.get((a, b))


def can_convert(src: str | None, dst: str | None) -> bool:
    a, b = canonical(src), canonical(dst)
    return a is None or b is None or a == b or (a, b) in _CONVERSIONS


def known_pairs() -> list[str]:
    return sorted(f"{a}->{b}" for a, b in _CONVERSIONS)
