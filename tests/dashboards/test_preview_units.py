"""Values read as Grafana shows them, per unit."""

from __future__ import annotations

import pytest

from dashboards.preview_units import format_value


@pytest.mark.parametrize(
    ("value", "unit", "shown"),
    [
        (0.934, "percentunit", "93.4%"),
        (0.8, "percentunit", "80%"),
        (1.0, "percentunit", "100%"),
        (42.0, "percent", "42%"),
        (0.0123, "s", "12.3 ms"),
        (0.1, "s", "100 ms"),
        (0.00025, "s", "250 µs"),
        (2.5, "s", "2.5 s"),
        (90.0, "s", "1.5 min"),
        (0.0, "s", "0 s"),
        (250.0, "ms", "250 ms"),
        (150 * 2**20, "bytes", "150 MiB"),
        (1536.0, "bytes", "1.5 KiB"),
        (512.0, "bytes", "512 B"),
        (2_500_000.0, "decbytes", "2.5 MB"),
        (12.0, "reqps", "12 req/s"),
        (0.25, "reqps", "0.25 req/s"),
        (1500.0, "reqps", "1.5 K req/s"),
        (3.0, "ops", "3 ops/s"),
        (1234.0, "short", "1.23 K"),
        (7.0, "short", "7"),
        (2_000_000.0, "", "2 M"),
        (3.14159, "none", "3.14"),
        (5.0, "suffix: msg", "5 msg"),
        (5.0, "conn", "5 conn"),
    ],
)
def test_units(value: float, unit: str, shown: str) -> None:
    assert format_value(value, unit) == shown


def test_not_numbers_are_named() -> None:
    assert format_value(float("nan"), "s") == "NaN"
    assert format_value(float("inf"), "s") == "+Inf"
    assert format_value(float("-inf"), "bytes") == "-Inf"


def test_negative_values_keep_their_sign() -> None:
    assert format_value(-0.05, "s") == "-50 ms"
    assert format_value(-3 * 2**20, "bytes") == "-3 MiB"
