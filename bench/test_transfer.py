"""Hand a numpy array of S bytes to another process: every mechanism × payload size (and
numpy's memcpy in one process, the limit)."""

import pytest


@pytest.mark.sharebench("transfer")
def test_transfer(sharebench):
    sharebench.run()
