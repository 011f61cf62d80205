"""Fixtures of the scale-out tests (RabbitMQ, Sentinel, several hosts, the supervised stack).

Most fixtures live beside the test that needs them, since each module builds its own world
(a RabbitMQ prefix, a Sentinel group, namespaces, a supervisor); helpers are in
``tests/scaleout/helpers.py``.
"""

from __future__ import annotations

import pytest
import redis

from tests.scaleout.helpers import Traces


@pytest.fixture
def traces(redis_client: redis.Redis) -> Traces:
    """What the test actors recorded in the session's Redis (emptied before the test)."""
    return Traces(redis_client)
