"""Registry of mechanisms: ``mechanism/sync/operation`` -> :class:`Mechanism`.

A new mechanism is one small module with a ``MECHANISMS`` tuple, plus one line in
``FAMILY_MODULES``. A module outside the suite with the same ``MECHANISMS`` tuple can be
benchmarked without changing the suite (``--sharebench-mechanisms my.module``; see
:func:`module_mechanisms`).
"""

from __future__ import annotations

import importlib
from functools import cache

from sharebench.errors import SharebenchError
from sharebench.mechanisms.base import OPERATIONS, SYNCS, Mechanism

FAMILY_MODULES: tuple[str, ...] = (
    "sharebench.mechanisms.reference",
    "sharebench.mechanisms.sharedctypes",
    "sharebench.mechanisms.manager",
    "sharebench.mechanisms.shm",
    "sharebench.mechanisms.lockfree",
    "sharebench.mechanisms.message",
    "sharebench.mechanisms.threaded",
    "sharebench.mechanisms.mmapped",
    "sharebench.mechanisms.transfer",
    "sharebench.mechanisms.redis",
    "sharebench.mechanisms.manager_tcp",
    "sharebench.mechanisms.manager_keyed",
    "sharebench.mechanisms.shm_keyed",
    "sharebench.mechanisms.forkdict",
    "sharebench.mechanisms.pingpong",
    "sharebench.mechanisms.redis_keyed",
    "sharebench.mechanisms.fastfifo",
    "sharebench.mechanisms.zmq",
    "sharebench.mechanisms.posixmq",
    "sharebench.mechanisms.ultradict",
    "sharebench.mechanisms.smdict",
    "sharebench.mechanisms.diskcache",
    "sharebench.mechanisms.lmdbstore",
    "sharebench.mechanisms.rayactor",
    "sharebench.mechanisms.posixsem",
    "sharebench.mechanisms.fastatomic",
)

__all__ = ["OPERATIONS", "SYNCS", "Mechanism", "UnknownMechanism", "all_mechanisms", "get",
           "module_mechanisms"]


class UnknownMechanism(SharebenchError, KeyError):
    """No such benchmark; the message lists the valid choices."""

    def __str__(self) -> str:
        return str(self.args[0])


def module_mechanisms(module_name: str) -> tuple[Mechanism, ...]:
    """The ``MECHANISMS`` tuple of an importable module; :class:`UnknownMechanism` if the
    module cannot be imported or holds no such tuple of :class:`Mechanism`."""
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UnknownMechanism(f"cannot import mechanism module {module_name!r}: {exc}") from None
    found = getattr(module, "MECHANISMS", None)
    if not isinstance(found, tuple) or not all(isinstance(m, Mechanism) for m in found):
        raise UnknownMechanism(
            f"module {module_name!r} has no MECHANISMS tuple of sharebench Mechanism objects"
        )
    return found


@cache
def _registry() -> dict[str, Mechanism]:
    registry: dict[str, Mechanism] = {}
    for module_name in FAMILY_MODULES:
        for mech in module_mechanisms(module_name):
            if mech.key in registry:
                raise RuntimeError(f"mechanism {mech.key} registered twice ({module_name})")
            registry[mech.key] = mech
    return registry


def all_mechanisms(operation: str | None = None) -> list[Mechanism]:
    """Every registered benchmark definition, optionally of one operation, in registry order."""
    return [m for m in _registry().values() if operation is None or m.operation == operation]


def get(name: str, sync: str, operation: str) -> Mechanism:
    """Look one up; an unknown combination raises with the valid choices listed."""
    registry = _registry()
    mech = registry.get(f"{name}/{sync}/{operation}")
    if mech is not None:
        return mech
    if operation not in OPERATIONS:
        raise UnknownMechanism(
            f"unknown operation {operation!r}; valid: {', '.join(OPERATIONS)}"
        )
    names = sorted({m.name for m in registry.values()})
    if name not in names:
        raise UnknownMechanism(f"unknown mechanism {name!r}; valid: {', '.join(names)}")
    valid = sorted(m.label for m in registry.values() if m.operation == operation)
    raise UnknownMechanism(
        f"no benchmark {name}/{sync} for {operation}; valid: {', '.join(valid)}"
    )
