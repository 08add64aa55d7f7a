"""Numbers as Grafana shows them for the units the dashboards use (`fieldConfig.defaults.unit`).

Only what a reader of the preview needs to recognise the value: a ratio as a percentage, seconds
as ms/s/min, bytes in binary multiples, rates with their suffix. A unit this module does not know
is printed after the number, as Grafana prints a custom unit, so nothing is ever hidden.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Final

_SHORT_STEPS: Final = ((1e12, " T"), (1e9, " B"), (1e6, " M"), (1e3, " K"))
_IEC_STEPS: Final = (
    (2.0**50, " PiB"),
    (2.0**40, " TiB"),
    (2.0**30, " GiB"),
    (2.0**20, " MiB"),
    (2.0**10, " KiB"),
)
_SI_BYTE_STEPS: Final = ((1e15, " PB"), (1e12, " TB"), (1e9, " GB"), (1e6, " MB"), (1e3, " kB"))
_RATE_SUFFIX: Final = {
    "reqps": " req/s",
    "rps": " req/s",
    "ops": " ops/s",
    "wps": " wr/s",
    "rdps": " rd/s",
    "cps": " c/s",
    "mps": " msg/s",
    "hertz": " Hz",
}


def _number(value: float, decimals: int | None = None) -> str:
    """Three significant digits at most, no trailing zeros: 0.123, 12.3, 123, 1234."""
    if decimals is not None:
        return f"{value:.{decimals}f}"
    magnitude = abs(value)
    if magnitude == 0:
        return "0"
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        text = f"{value:.1f}"
    elif magnitude >= 1:
        text = f"{value:.2f}"
    else:
        text = f"{value:.3g}"
    return text.rstrip("0").rstrip(".") if "." in text and "e" not in text else text


def _scaled(value: float, steps: Sequence[tuple[float, str]], base: str = "") -> str:
    for factor, suffix in steps:
        if abs(value) >= factor:
            return _number(value / factor) + suffix
    return _number(value) + base


def _seconds(value: float) -> str:
    magnitude = abs(value)
    if magnitude == 0:
        return "0 s"
    if magnitude < 1e-6:
        return _number(value * 1e9) + " ns"
    if magnitude < 1e-3:
        return _number(value * 1e6) + " µs"
    if magnitude < 1:
        return _number(value * 1e3) + " ms"
    if magnitude < 60:
        return _number(value) + " s"
    if magnitude < 3600:
        return _number(value / 60) + " min"
    if magnitude < 86400:
        return _number(value / 3600) + " hour"
    return _number(value / 86400) + " day"


_FORMATTERS: Final[dict[str, Callable[[float], str]]] = {
    "percentunit": lambda v: _number(v * 100) + "%",
    "percent": lambda v: _number(v) + "%",
    "s": _seconds,
    "ms": lambda v: _seconds(v / 1e3),
    "µs": lambda v: _seconds(v / 1e6),
    "us": lambda v: _seconds(v / 1e6),
    "ns": lambda v: _seconds(v / 1e9),
    "bytes": lambda v: _scaled(v, _IEC_STEPS, " B"),
    "decbytes": lambda v: _scaled(v, _SI_BYTE_STEPS, " B"),
    "Bps": lambda v: _scaled(v, _SI_BYTE_STEPS, " B") + "/s",
    "binBps": lambda v: _scaled(v, _IEC_STEPS, " B") + "/s",
    "short": lambda v: _scaled(v, _SHORT_STEPS),
    "none": _number,
    "": lambda v: _scaled(v, _SHORT_STEPS),
}


def format_value(value: float, unit: str | None = None) -> str:
    """`value` in `unit` the way a reader expects it: `format_value(0.934, "percentunit")` is
    `93.4%`, `format_value(0.0123, "s")` is `12.3 ms`, `format_value(157286400, "bytes")` is
    `150 MiB`."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    unit = unit or ""
    formatter = _FORMATTERS.get(unit)
    if formatter is not None:
        return formatter(value)
    if unit in _RATE_SUFFIX:
        return _scaled(value, _SHORT_STEPS) + _RATE_SUFFIX[unit]
    if unit.startswith("suffix:"):
        return _scaled(value, _SHORT_STEPS) + unit.removeprefix("suffix:")
    if unit.startswith("prefix:"):
        return unit.removeprefix("prefix:") + _scaled(value, _SHORT_STEPS)
    return f"{_scaled(value, _SHORT_STEPS)} {unit}"
