"""Mechanisms that misbehave on purpose, importable by spawned workers (tests/ is on sys.path)."""

from __future__ import annotations

import os
import time
from typing import Any

from sharebench.mechanisms import get
from sharebench.mechanisms.sharedctypes import RawValueStore


class SlowAttachStore(RawValueStore):
    """A RawValue whose attach takes half a second: start-up must not show in round times."""

    @staticmethod
    def attach(handles: tuple[Any, ...]) -> Any:
        time.sleep(0.5)
        return handles


def raising_loop(local: Any, k: int, base: int) -> None:
    raise ZeroDivisionError("boom in the loop")


def dying_loop(local: Any, k: int, base: int) -> None:
    os._exit(3)


def hanging_loop(local: Any, k: int, base: int) -> None:
    time.sleep(60)


RAWLOCK = get("rawvalue", "lock", "increment")
SLOW_ATTACH = RAWLOCK.replace(store=SlowAttachStore)
RAISING = RAWLOCK.replace(loop=raising_loop)
DYING = RAWLOCK.replace(loop=dying_loop)
HANGING = RAWLOCK.replace(loop=hanging_loop)
# The racy loop, labelled as if it were locked: verification must catch it.
MISLABELLED = get("rawvalue", "none", "increment").replace(sync="lock")
