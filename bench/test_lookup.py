"""Read one of N entries of read-mostly data and check it (memory per worker is measured too)."""

import pytest


@pytest.mark.sharebench("lookup")
def test_lookup(sharebench):
    sharebench.run()
