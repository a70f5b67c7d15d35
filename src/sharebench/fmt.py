"""Leaf vocabulary: how numbers are written for people, and how files are written safely.

One formatter per kind of quantity, used by every table, caption, page and report (so a rate
reads ``1.23M`` everywhere), and one atomic writer for every file the suite produces. Imports
nothing of the project.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

_SI = (("G", 1e9), ("M", 1e6), ("k", 1e3), ("", 1.0))
_NS = ((" s", 1e9), (" ms", 1e6), (" µs", 1e3), (" ns", 1.0))


def _scaled(value: float, units: tuple[tuple[str, float], ...]) -> str:
    """``value`` in the largest unit it reaches (the last unit otherwise), 3 digits."""
    if not math.isfinite(value):
        return "–"
    for unit, scale in units:
        if abs(value) >= scale:
            return f"{value / scale:.3g}{unit}"
    unit, scale = units[-1]
    return f"{value / scale:.3g}{unit}"


def si(value: float) -> str:
    """``1234567 -> '1.23M'``, three significant digits; ``'–'`` for NaN or infinity."""
    return _scaled(value, _SI)


def rate(ops_s: float) -> str:
    """``1.23M/s``: short enough to print at the end of a bar."""
    return f"{si(ops_s)}/s"


def duration_ns(ns: float) -> str:
    """A time given in nanoseconds, in the unit that reads best: ``365 ns``, ``176 µs``."""
    return _scaled(ns, _NS)


def size(n: int) -> str:
    """``1024 -> '1KiB'``; exact powers only, otherwise bytes (``'1500B'``)."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale and n % scale == 0:
            return f"{n // scale}{unit}"
    return f"{n}B"


def bandwidth(bytes_s: float) -> str:
    """``950 MB/s``, ``21.3 GB/s`` (decimal units, as network and memory figures are)."""
    mb_s = bytes_s / 1e6
    if not math.isfinite(mb_s):
        return "–"
    return f"{mb_s / 1e3:.3g} GB/s" if mb_s >= 1e3 else f"{mb_s:.3g} MB/s"


def pct(percent: float) -> str:
    """``37.5 -> '38'``, ``4.2``, ``0.013``: enough digits to tell a tiny share from none."""
    if not math.isfinite(percent):
        return "–"
    if abs(percent) >= 10:
        return f"{percent:.0f}"
    if abs(percent) >= 1:
        return f"{percent:.1f}"
    return f"{percent:.2g}"


def fraction_pct(fraction: float) -> str:
    """``0.1 -> '10%'`` (thresholds and floors, given as fractions), up to 4 digits."""
    return f"{fraction * 100:.4g}%"


def p_value(p: float) -> str:
    """``0.012``, ``3.1e-05``: two significant digits, scientific below 0.001."""
    if not math.isfinite(p):
        return ""
    return f"{p:.2g}" if p >= 1e-3 else f"{p:.1e}"


def pipe_table(header: Sequence[str], rows: Sequence[Sequence[str]],
               right: set[int] | frozenset[int] = frozenset()) -> str:
    """A GitHub Markdown pipe table, padded so it also lines up in a terminal; columns whose
    index is in ``right`` are right-aligned (numbers)."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(header)]

    def line(cells: Sequence[str]) -> str:
        padded = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join(
        ("-" * (w + 1) + ":") if i in right else ("-" * (w + 2)) for i, w in enumerate(widths)
    ) + "|"
    return "\n".join([line(header), rule, *(line(r) for r in rows)])


def markers(name: str) -> tuple[str, str]:
    """The HTML comments around a generated block of a Markdown file (the README's findings,
    its A/B comparison): the block between them is rewritten, never the rest."""
    return f"<!-- sharebench:{name}:start -->", f"<!-- sharebench:{name}:end -->"


def splice(text: str, block: str, name: str) -> str:
    """``text`` with what lies between the ``name`` markers replaced by ``block``;
    ValueError if the markers are not there."""
    start, end = markers(name)
    if start not in text or end not in text:
        raise ValueError(f"no {start} ... {end} markers")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{block}\n{end}{tail}"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike[str], data: bytes | str) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same directory, ``fsync``
    and ``os.replace``: a crash mid-write leaves the old file intact, never a torn one.

    The file gets the permissions a plain ``open()`` would give (``0666`` less the umask):
    results and charts are meant to be read by others. Parent directories are created.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return target
