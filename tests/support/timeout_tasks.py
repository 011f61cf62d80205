"""On a pytest-timeout, also print where each asyncio task of the running test waited.

pytest-timeout's report shows each thread's stack. An async test that hangs shows only its
event loop asleep in ``select``, which says nothing of the ``await`` that never returned. This
adds every task of the running loop, with its stack, to that report, so a hang that happened
once in CI can be read from the CI log instead of being guessed at. A task's own stack is only
its outermost coroutine's frame (asyncio keeps no more), so each task also gets the chain of
awaits from that coroutine down to what the innermost one waits on. This works with
pytest-timeout's ``signal`` method (its default here): its handler runs on the test's own thread,
inside the running loop; with the ``thread`` method there is no loop to read, and the report is
pytest-timeout's alone.
"""

from __future__ import annotations

import asyncio
import io
from typing import Any

try:
    import pytest_timeout
except ImportError:  # no timeouts, nothing to add to (requirements-dev.txt pins it)
    pytest_timeout = None


def dump_stacks_and_tasks(terminal: Any) -> None:
    """pytest-timeout's thread stacks, then each task of the event loop the test runs in."""
    _original_dump_stacks(terminal)  # set by pytest_configure below, before any timeout can fire
    try:
        loop = asyncio.get_running_loop()  # the signal handler runs inside the test's loop
    except RuntimeError:
        return
    for task in sorted(asyncio.all_tasks(loop), key=lambda task: task.get_name()):
        stack = io.StringIO()
        task.print_stack(limit=30, file=stack)
        terminal.sep("~", title=f"asyncio {task.get_name()} ({task.get_coro()!r:.80})")
        terminal.write(stack.getvalue())
        chain = await_chain(task.get_coro())
        if chain:
            terminal.write("Awaiting (outermost first):\n" + "\n".join(chain) + "\n")


def await_chain(coro: Any, limit: int = 60) -> list[str]:
    """Where ``coro`` waits: one line per coroutine (or generator) it awaits through, outermost
    first, then what the innermost one waits on (a future, say)."""
    lines: list[str] = []
    while coro is not None and len(lines) < limit:
        frame = next((getattr(coro, name) for name in ("cr_frame", "gi_frame", "ag_frame")
                      if getattr(coro, name, None) is not None), None)
        if frame is None:  # not a coroutine: what the chain ends in
            lines.append(f"  waits on {type(coro).__name__} (a future's wait: the task's wait_for above)"
                         if type(coro).__name__ == "FutureIter" else f"  waits on {coro!r:.200}")
            break
        code = frame.f_code
        lines.append(f'  File "{code.co_filename}", line {frame.f_lineno}, in {code.co_name}')
        coro = next((getattr(coro, name) for name in ("cr_await", "gi_yieldfrom", "ag_await")
                     if getattr(coro, name, None) is not None), None)
    return lines


_original_dump_stacks: Any = None


def pytest_configure(config: object) -> None:
    """A pytest plugin (``pytest_plugins`` in ``tests/conftest.py``): make pytest-timeout report
    asyncio tasks too (its handler looks the function up by name when it fires)."""
    global _original_dump_stacks
    if pytest_timeout is None or pytest_timeout.dump_stacks is dump_stacks_and_tasks:
        return
    _original_dump_stacks = pytest_timeout.dump_stacks
    pytest_timeout.dump_stacks = dump_stacks_and_tasks
