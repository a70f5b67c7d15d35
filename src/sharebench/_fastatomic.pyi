"""Types of the C extension ``sharebench._fastatomic`` (source: ``_fastatomic.c``)."""

from _typeshed import WriteableBuffer

def fetch_add(buffer: WriteableBuffer, offset: int, delta: int, /) -> int:
    """Atomically add ``delta`` to the int64 at byte ``offset``; return the previous value."""

def add_n(buffer: WriteableBuffer, offset: int, n: int, /) -> int:
    """``n`` atomic ``fetch_add(+1)`` in C with the GIL released; the value after the last."""
