"""The registry of live worker processes: who listens on which queues, doing what.

Each worker process writes a heartbeat every ``QUEUE_MAINTENANCE_INTERVAL`` seconds: a hash
``<prefix>worker:<id>`` (host, pid, queues, current jobs, processed count, started and last
heartbeat times) with a TTL of ``QUEUE_WORKER_TTL``, and its score in ``<prefix>workers``.
A worker is live while its last heartbeat is younger than ``QUEUE_HEARTBEAT_TIMEOUT``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import redis


@dataclass
class WorkerInfo:
    id: str
    host: str
    pid: int
    queues: list[str]
    current_jobs: list[str]
    processed: int
    started_at: float
    last_heartbeat: float

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class WorkerRegistry:
    def __init__(self, client: redis.Redis, *, prefix: str = "fb:", ttl: int = 420,
                 heartbeat_timeout: float = 15) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl = ttl
        self.heartbeat_timeout = heartbeat_timeout

    @classmethod
    def from_settings(cls, client: redis.Redis, settings: Any) -> WorkerRegistry:
        return cls(client, prefix=settings.redis_key_prefix, ttl=settings.queue_worker_ttl,
                   heartbeat_timeout=settings.queue_heartbeat_timeout)

    @property
    def index_key(self) -> str:
        return f"{self.prefix}workers"

    def worker_key(self, worker_id: str) -> str:
        return f"{self.prefix}worker:{worker_id}"

    def heartbeat(self, info: WorkerInfo) -> None:
        pipe = self.client.pipeline(transaction=False)
        pipe.hset(self.worker_key(info.id), mapping={
            "host": info.host, "pid": info.pid, "queues": json.dumps(info.queues),
            "current_jobs": json.dumps(info.current_jobs), "processed": info.processed,
            "started_at": info.started_at, "last_heartbeat": info.last_heartbeat,
        })
        pipe.expire(self.worker_key(info.id), self.ttl)
        pipe.zadd(self.index_key, {info.id: info.last_heartbeat})
        pipe.zremrangebyscore(self.index_key, 0, time.time() - self.ttl)
        pipe.expire(self.index_key, self.ttl)
        pipe.execute()

    def remove(self, worker_id: str) -> None:
        self.client.zrem(self.index_key, worker_id)
        self.client.delete(self.worker_key(worker_id))

    def workers(self, *, live_only: bool = True) -> list[WorkerInfo]:
        floor = time.time() - self.heartbeat_timeout if live_only else 0
        ids = self.client.zrangebyscore(self.index_key, floor, "+inf")
        pipe = self.client.pipeline(transaction=False)
        for worker_id in ids:
            pipe.hgetall(self.worker_key(worker_id))
        result = []
        for worker_id, data in zip(ids, pipe.execute(), strict=True):
            if not data:
                continue
            result.append(WorkerInfo(
                id=worker_id, host=data.get("host", ""), pid=int(data.get("pid", 0)),
                queues=json.loads(data.get("queues", "[]")),
                current_jobs=json.loads(data.get("current_jobs", "[]")),
                processed=int(data.get("processed", 0)), started_at=float(data.get("started_at", 0)),
                last_heartbeat=float(data.get("last_heartbeat", 0)),
            ))
        return result

    def live_workers_by_queue(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for worker in self.workers():
            for queue in worker.queues:
                counts[queue] = counts.get(queue, 0) + 1
        return counts
