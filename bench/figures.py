"""How the benchmarks print a figure: floats to two decimals, anything else as it is."""

from __future__ import annotations

from typing import Any


def format_figure(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)
