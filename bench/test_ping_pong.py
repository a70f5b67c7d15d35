"""One round trip of an S-byte message to another process and back: latency percentiles."""

import pytest


@pytest.mark.sharebench("ping-pong")
def test_ping_pong(sharebench):
    sharebench.run()
