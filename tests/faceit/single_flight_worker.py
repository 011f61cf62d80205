"""Child process of the cross-process single-flight test.

``python -m tests.faceit.single_flight_worker API_URL KEY REDIS_URL PLAYER_ID N``: builds a
client, prints ``ready``, waits for a line on stdin, then fetches the player N times at once
and prints ``<N> ok``.
"""

from __future__ import annotations

import asyncio
import sys

from redis.asyncio import Redis

from faceit.client import FaceitClient
from faceit.keys import FaceitKeys


async def main(api_url: str, key: str, redis_url: str, player_id: str, count: int) -> None:
    redis = Redis.from_url(redis_url, decode_responses=True)
    client = FaceitClient(api_url=api_url, api_key=key, redis=redis, keys=FaceitKeys("fb:"), rate=1000, burst=1000)
    await redis.ping()
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    results = await asyncio.gather(*(client.get_player(player_id) for _ in range(count)))
    ok = sum(1 for r in results if r.player_id == player_id)
    print(f"{ok} ok", flush=True)
    await client.close()
    await redis.aclose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])))
