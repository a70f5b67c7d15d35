"""``python -m sharebench`` is the ``sharebench`` command."""

from __future__ import annotations

import sys

from sharebench.cli import main

if __name__ == "__main__":
    sys.exit(main())
