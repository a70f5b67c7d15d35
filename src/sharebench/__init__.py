"""sharebench: how should processes share state, what does each way cost, and is it correct?

``import sharebench`` stays light: numpy, pandas and matplotlib are imported where used.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
