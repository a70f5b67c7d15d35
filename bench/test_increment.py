"""Increment a shared counter: every mechanism/sync × processes × start method."""

import pytest


@pytest.mark.sharebench("increment")
def test_increment(sharebench):
    sharebench.run()
