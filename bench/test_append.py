"""Append to a shared list-like: every mechanism/sync × processes × start method."""

import pytest


@pytest.mark.sharebench("append")
def test_append(sharebench):
    sharebench.run()
