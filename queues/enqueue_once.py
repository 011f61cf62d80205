"""Dramatiq's Redis ``enqueue`` (``HSET`` body, ``RPUSH`` id), done once per Redis message id.

redis-py resends a command whose reply was lost; Dramatiq's own enqueue then pushes the id
twice and the job runs twice. Here a marker key set with ``NX`` turns a resent call into a
no-op, then expires on its own. It must outlive any resend: redis-py retries a command 10 times
and each retry reconnects with up to 11 attempts of its own, so across a network partition (5 s
connect timeouts, ``queues.connection``) a resend can come ~10 minutes after the first call. A
marker takes ~150 bytes of Redis for its 15 minutes, a small fraction of the job record (kept an
hour) of the same job.

A module of its own, without side effects on import: the broker (``actors.brokers``) and the
bot's one-round-trip job start (``bot.jobstart``) both run this code, and importing the
``actors`` package builds the broker (and initialises Sentry as a worker).
"""

from __future__ import annotations

#: ``enqueue_once(K, A)``: K = {queue, queue.msgs, marker}, A = {redis id, body, marker TTL ms};
#: 1 when this call pushed, 0 when an earlier one had.
ENQUEUE_ONCE_LUA = """
local function enqueue_once(K, A)
  if redis.call("SET", K[3], "1", "NX", "PX", A[3]) then
    redis.call("HSET", K[2], A[1], A[2])
    redis.call("RPUSH", K[1], A[1])
    return 1
  end
  return 0
end
"""
ENQUEUE_MARKER_TTL_MS = 15 * 60 * 1000
