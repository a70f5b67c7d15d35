"""Add 1 to one of K keys of a shared dict-like: every mechanism/sync × processes × start method."""

import pytest


@pytest.mark.sharebench("dict-increment")
def test_dict_increment(sharebench):
    sharebench.run()
