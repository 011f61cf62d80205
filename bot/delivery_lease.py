"""One delivery of a job at a time, through a lease its holder keeps alive while it sends.

Why: two deliveries of one job can run at once. A job whose worker died after it ended is run
again, finds itself final and enqueues its delivery once more, while the first delivery still
sends on another worker (or a 429 storm stretched it out). Both read the job's delivery
markers before either sent anything, and both sent every part still unmarked: duplicates.

A plain lock would not do: one held by a worker that died would hold the next delivery back
until it expired, past its retries. The lease lasts ``ttl`` seconds (the worker heartbeat
timeout: how long a silent worker counts as alive anyway) and its holder renews it every
``ttl / 3``; a holder that dies stops renewing, and its lease ends at most ``ttl`` later, about
when the dead worker's own messages come back to the queue.

A delivery that finds the lease taken waits up to ``wait`` seconds for it (at most
:data:`MAX_WAIT`: the wait must end well inside the delivery job's time limit). Given the lease,
it reads the job and its markers afresh and sends only what the other one did not. Still taken
after that, the holder is alive and still sending (a 429 storm): this delivery raises
:class:`DeliveryBusy`, a transient error, and the pipeline tries it again later. It does not
step aside: the holder may yet fail for good (its last retry), and then this one must send.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

from faceit.errors import TransientError

logger = logging.getLogger(__name__)

#: The longest a delivery waits for another one's lease before it is retried later (seconds).
MAX_WAIT = 60.0


class DeliveryBusy(TransientError):
    """Another delivery of the job kept its lease for the whole wait: try again later."""

    code = "delivery_busy"

# KEYS: lease. ARGV: token, ttl ms. Renews the lease only while it is still ours: 1, else 0.
_RENEW = """
if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("PEXPIRE", KEYS[1], ARGV[2])
end
return 0
"""
# KEYS: lease. ARGV: token. Ends the lease only when it is still ours.
_RELEASE = """
if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("DEL", KEYS[1])
end
return 0
"""


class DeliveryLeases:
    """Leases on one async Redis client; :meth:`hold` is the only entry point."""

    def __init__(self, redis: Any, *, ttl: float, wait: float | None = None, poll: float | None = None) -> None:
        if ttl <= 0:
            raise ValueError(f"a lease lasts more than 0 s, not {ttl}")
        self.redis = redis
        self.ttl = float(ttl)
        # A dead holder's lease ends within ttl; the wait ends inside the delivery's time limit.
        self.wait = min(self.ttl * 1.5, MAX_WAIT) if wait is None else float(wait)
        self.poll = min(0.2, self.ttl / 10) if poll is None else float(poll)
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)

    def hold(self, key: str, job_id: str) -> Lease:
        """``async with leases.hold(key, job_id):`` the lease is held inside; raises
        :class:`DeliveryBusy` when another live delivery kept it for the whole wait."""
        return Lease(self, key, job_id)


class Lease:
    """One attempt at a lease (see :class:`DeliveryLeases`)."""

    def __init__(self, leases: DeliveryLeases, key: str, job_id: str) -> None:
        self.leases = leases
        self.key = key
        self.job_id = job_id
        self.token = uuid.uuid4().hex
        self._renewer: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Lease:
        leases = self.leases
        ttl_ms = max(1, int(leases.ttl * 1000))
        deadline = time.monotonic() + leases.wait
        waited = False
        while not await leases.redis.set(self.key, self.token, nx=True, px=ttl_ms):
            if time.monotonic() >= deadline:
                raise DeliveryBusy(f"another delivery of job {self.job_id} is still sending after "
                                   f"{leases.wait:.0f} s", retry_after=leases.ttl)
            if not waited:
                logger.info("job %s: another delivery of this job is sending; waiting for it", self.job_id)
                waited = True
            await asyncio.sleep(leases.poll)
        self._renewer = asyncio.create_task(self._keep(ttl_ms))  # set once the lease is ours
        return self

    async def _keep(self, ttl_ms: int) -> None:
        every = self.leases.ttl / 3
        while True:
            await asyncio.sleep(every)
            try:
                async with asyncio.timeout(every):  # a hung call must not outlast the lease
                    still_ours = await self.leases._renew(keys=[self.key], args=[self.token, ttl_ms])
            except Exception as exc:  # Redis briefly away: the next renewal tries again
                logger.warning("job %s: delivery lease not renewed (%s)", self.job_id, type(exc).__name__)
                continue
            if not still_ours:
                logger.warning("job %s: delivery lease lost (this process stalled past %.0f s); another "
                               "delivery may send alongside", self.job_id, self.leases.ttl)
                return

    async def __aexit__(self, *exc_info: object) -> None:
        if self._renewer is None:  # never held
            return
        self._renewer.cancel()
        # Waits for the renewer to end; a cancel aimed at this delivery still goes through.
        await asyncio.gather(self._renewer, return_exceptions=True)
        try:
            await self.leases._release(keys=[self.key], args=[self.token])
        except Exception as exc:  # it expires by itself within ttl
            logger.warning("job %s: delivery lease not released (%s); it ends within %.0f s", self.job_id,
                           type(exc).__name__, self.leases.ttl)
