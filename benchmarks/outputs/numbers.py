"""Numbers for people: plain decimals (no ``1.5e+02``), a fixed number of significant digits, "—" for missing."""

from __future__ import annotations

import math

MISSING = "—"
PLAIN_RANGE = (1e-5, 1e7)  # magnitudes written as plain decimals; outside it, scientific notation is clearer


def plain(value, significant: int = 4) -> str:
    """``value`` rounded to ``significant`` significant digits as a plain decimal, trailing zeros dropped
    (``156``, ``0.6835``, ``145``, ``0.0038``): never an exponent for magnitudes in PLAIN_RANGE, integer digits
    never dropped; "—" for None/NaN."""
    if value is None:
        return MISSING
    value = float(value)
    if math.isnan(value):
        return MISSING
    if math.isinf(value):
        return "∞" if value > 0 else "−∞"
    if value == 0:
        return "0"
    magnitude = abs(value)
    if not PLAIN_RANGE[0] <= magnitude < PLAIN_RANGE[1]:
        return f"{value:.{max(1, significant - 1)}e}"
    decimals = max(0, significant - 1 - math.floor(math.log10(magnitude)))
    text = f"{value:.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if float(text) == 0 else text


def mean_pm(mean, std, significant: int = 4) -> str:
    """``mean ± std`` (std with 2 significant digits; just the mean when std is missing)."""
    if std is None or (isinstance(std, float) and math.isnan(std)):
        return plain(mean, significant)
    return f"{plain(mean, significant)} ± {plain(std, 2)}"


def interval(low, high, significant: int = 3) -> str:
    """``[low, high]`` or "—" when either end is missing."""
    if any(v is None or (isinstance(v, float) and math.isnan(v)) for v in (low, high)):
        return MISSING
    return f"[{plain(low, significant)}, {plain(high, significant)}]".replace("-", "−")


def signed(value, significant: int = 3) -> str:
    """``+0.045`` / ``−0.021`` (a leading sign always), "—" for missing."""
    text = plain(value, significant)
    if text == MISSING or text.startswith("-") or text == "0":
        return text.replace("-", "−")
    return "+" + text
