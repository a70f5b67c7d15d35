"""When a slowdown counts as a regression: the rule, parsed from what a user types.

A small object, as pytest-benchmark's ``RegressionCheck`` is parsed from ``"median:10%"``:
:class:`RegressionRule` holds the threshold (extra time per operation), the significance level
(family-wise, after Holm) and the k of the noise floor, and refuses values that make no sense.
``sharebench compare`` and ``sharebench ab`` read their options through it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from sharebench.errors import RuleError
from sharebench.fmt import fraction_pct

_NUMBER = r"[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?"


def parse_threshold(text: str | float) -> float:
    """Allowed slowdown as a fraction of time per op: ``"10%"``, ``"0.1"`` -> 0.1, ``"2x"`` -> 1.0.

    A bare number is a fraction and must be at most 1 (``"10"`` is refused as ambiguous);
    a factor ``"Nx"`` means each operation may take up to N times as long.
    """
    if isinstance(text, int | float):
        text = repr(float(text))
    s = str(text).strip().lower().replace(" ", "")
    hint = "write e.g. 10% or 0.1 (a fraction of extra time per op) or 2x (a factor)"
    if not s:
        raise RuleError(f"empty threshold; {hint}")
    if m := re.fullmatch(rf"({_NUMBER})%", s):
        value = float(m.group(1)) / 100.0
    elif m := re.fullmatch(rf"({_NUMBER})x", s):
        factor = float(m.group(1))
        if factor < 1:
            raise RuleError(f"threshold {text!r}: a slowdown factor must be at least 1x")
        value = factor - 1.0
    elif re.fullmatch(_NUMBER, s):
        value = float(s)
        if value > 1:
            raise RuleError(
                f"threshold {text!r} is ambiguous: a bare number is a fraction (at most 1); "
                f"write {s}% or {s}x"
            )
    elif s.startswith("-"):
        raise RuleError(f"threshold {text!r} must not be negative")
    else:
        raise RuleError(f"threshold {text!r} not understood; {hint}")
    if not math.isfinite(value):
        raise RuleError(f"threshold {text!r} must be finite")
    return value


def parse_alpha(text: str | float) -> float:
    """Significance level: ``"0.01"`` or ``"1%"``; must lie strictly between 0 and 1."""
    s = str(text).strip().lower().replace(" ", "")
    try:
        value = float(s[:-1]) / 100.0 if s.endswith("%") else float(s)
    except ValueError:
        raise RuleError(f"alpha {text!r} not understood; write e.g. 0.01 or 1%") from None
    if not 0 < value < 1:
        raise RuleError(f"alpha {text!r} must lie strictly between 0 and 1")
    return value


@dataclass(frozen=True)
class RegressionRule:
    """When a slowdown is a regression: beyond ``threshold`` and significant at ``alpha``.

    ``threshold`` is a fraction of extra time per operation (0.1 = 10 % slower);
    ``alpha`` is the family-wise significance level after Holm's correction.
    """

    threshold: float = 0.10
    alpha: float = 0.01
    #: k of the noise floor (multiples of the run-to-run spread); 0 disables it.
    noise: float = 3.5

    def __post_init__(self) -> None:
        if not (math.isfinite(self.threshold) and self.threshold >= 0):
            raise RuleError(f"threshold {self.threshold!r} must be a finite number >= 0")
        if not 0 < self.alpha < 1:
            raise RuleError(f"alpha {self.alpha!r} must lie strictly between 0 and 1")
        if not (math.isfinite(self.noise) and self.noise >= 0):
            raise RuleError(f"noise {self.noise!r} must be a finite number >= 0")

    @classmethod
    def parse(
        cls,
        threshold: str | float = "10%",
        alpha: str | float = "0.01",
        noise: str | float = 3.5,
    ) -> RegressionRule:
        """Build a rule from command-line strings such as ``"10%"``, ``"0.01"``, ``"3.5"``."""
        try:
            k = float(noise)
        except ValueError:
            raise RuleError(f"noise {noise!r} not understood; write e.g. 3.5 (0 = off)") from None
        return cls(parse_threshold(threshold), parse_alpha(alpha), k)

    @property
    def min_ratio(self) -> float:
        """Throughput ratios below this are beyond the threshold."""
        return 1.0 / (1.0 + self.threshold)

    def beyond(self, ratio: float) -> bool:
        """True if ``ratio`` (current/baseline throughput) is slower than the threshold allows."""
        return ratio < self.min_ratio

    def describe(self) -> str:
        """``'slower by more than 10% (time per op), significant at alpha 0.01 (Holm)'``."""
        floor = (f", and beyond the noise floor ({self.noise:g} x the run-to-run spread)"
                 if self.noise > 0 else "")
        return (
            f"slower by more than {fraction_pct(self.threshold)} (time per op) and significant "
            f"at alpha {self.alpha:g} after Holm's correction{floor}"
        )
