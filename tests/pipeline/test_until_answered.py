"""A job's bookkeeping writes wait out Redis refusing writes for a while, as they wait out an
outage (middleware.until_answered): given up on, the job ran untracked and its record stayed
"started" for a day, joined by everyone who asked for the same."""

from __future__ import annotations

import logging
import threading

import pytest
import redis

from middleware.until_answered import until_answered

log = logging.getLogger("tests.until_answered")


@pytest.fixture
def full_redis(redis_server):
    """The test Redis out of memory: every write refused (``noeviction``) until the test frees it."""
    client = redis.Redis(port=redis_server.port)
    policy = client.config_get("maxmemory-policy")["maxmemory-policy"]
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", 1)
    try:
        yield client
    finally:
        client.config_set("maxmemory", 0)
        client.config_set("maxmemory-policy", policy)
        client.close()


def _write_while_full(full_redis: redis.Redis, write, caplog) -> object:
    """Run ``write`` through until_answered; free the memory once it has said it waits."""
    outcome: dict[str, object] = {}
    waiting = threading.Event()

    class Told(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            waiting.set()

    told = Told(level=logging.WARNING)
    log.addHandler(told)
    try:
        worker = threading.Thread(target=lambda: outcome.update(value=until_answered(
            write, job_id="job-1", doing="write its start", done="its start written", log=log)))
        with caplog.at_level(logging.WARNING, logger=log.name):
            worker.start()
            assert waiting.wait(10), "it never said it waits"
            assert worker.is_alive()  # still waiting while Redis refuses
            full_redis.config_set("maxmemory", 0)
            worker.join(10)
    finally:
        log.removeHandler(told)
    assert not worker.is_alive()
    return outcome.get("value")


def test_a_write_refused_for_lack_of_memory_waits_until_it_is_taken(full_redis, caplog):
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        full_redis.set("fb:test:k", "v")  # what the store meets
    assert _write_while_full(full_redis, lambda: full_redis.set("fb:test:k", "v"), caplog) is True
    assert full_redis.get("fb:test:k") == b"v"
    assert "job job-1: cannot write its start yet (OutOfMemoryError)" in caplog.text
    assert "its start written after" in caplog.text


def test_a_script_refused_for_lack_of_memory_waits_too(full_redis, caplog):
    script = full_redis.register_script("return redis.call('SET', KEYS[1], ARGV[1])")  # as the job store's
    assert _write_while_full(full_redis, lambda: script(keys=["fb:test:s"], args=["v"]), caplog) == b"OK"
    assert full_redis.get("fb:test:s") == b"v"


def test_an_error_that_does_not_pass_is_raised_at_once(redis_server):
    client = redis.Redis(port=redis_server.port)
    client.set("fb:test:str", "v")
    calls = []

    def wrong() -> object:
        calls.append(1)
        return client.lpush("fb:test:str", "x")  # WRONGTYPE: trying again changes nothing

    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        until_answered(wrong, job_id="job-2", doing="write", done="written", log=log)
    assert calls == [1]
    client.delete("fb:test:str")
    client.close()


@pytest.mark.parametrize(("reply", "passing"), [
    ("MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk.", True),
    ("BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.", True),
    ("NOREPLICAS Not enough good replicas to write.", True),
    ("Error running script (call to f_0a1b): @user_script:3: OOM command not allowed when used memory > "
     "'maxmemory'.", True),
    ("WRONGTYPE Operation against a key holding the wrong kind of value", False),
    ("ERR Error running script: @user_script:9: user_script:9: attempt to compare nil with number", False),
])
def test_refusals_told_only_by_their_reply_are_known_by_it(reply, passing):
    from middleware.until_answered import passes

    assert passes(redis.ResponseError(reply)) is passing
