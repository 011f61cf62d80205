"""A throwaway aiohttp application served on a free 127.0.0.1 port for the length of a test: a
webhook receiver, or an upstream that answers as no sandbox does."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from tests.support.redis_server import free_port


@asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[int]:
    """Serve ``app`` in this event loop; yields its port, and shuts it down on the way out."""
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield port
    finally:
        await runner.cleanup()
