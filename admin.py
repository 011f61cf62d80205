"""The operators' command line: ``python admin.py COMMAND``.

Exit codes: 0 all is well, 1 a problem was found (or Redis is unreachable), 2 a usage error.
Every command that reads takes ``--json`` for machines; errors are one line on stderr.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any

import click
import redis

from settings import SettingsError, get_settings, redact_url

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE = 0, 1, 2


def fail(message: str, code: int = EXIT_PROBLEM) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def handles_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn settings and Redis errors into one line and exit status 1 (2 for settings)."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SettingsError as exc:
            fail(f"settings: {exc}", EXIT_USAGE)
        except redis.RedisError as exc:
            url = redact_url(get_settings().redis_url)
            fail(f"Redis at {url} is unreachable ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})")

    return wrapper


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str, ensure_ascii=False))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Operate the FACEIT bot's job pipeline."""


@cli.command()
@click.option("--workers", "-w", type=click.IntRange(min=1), default=None,
              help="Worker processes (default QUEUE_MAX_WORKERS).")
@click.option("--threads", "-t", type=click.IntRange(min=1), default=None,
              help="Threads per process (default QUEUE_WORKER_THREADS).")
@click.option("--queues", "-q", multiple=True, help="Queues to consume: high, default, low (default all).")
@click.option("--verbose", "-v", is_flag=True, help="Debug logging.")
@handles_errors
def work(workers: int | None, threads: int | None, queues: tuple[str, ...], verbose: bool) -> None:
    """Run a worker pool: ``dramatiq actors`` with our settings (replaces this process)."""
    from queues.priorities import QueuePriority, queue_name

    settings = get_settings()
    names = []
    for item in [q for part in queues for q in part.replace(",", " ").split()]:
        try:
            names.append(queue_name(QueuePriority(item.removeprefix(settings.queue_name_prefix)), settings))
        except ValueError:
            fail(f"unknown queue {item!r} (expected high, default or low)", EXIT_USAGE)
    cmd = [sys.executable, "-m", "dramatiq", "actors",
           "--processes", str(workers or settings.queue_max_workers),
           "--threads", str(threads or settings.queue_worker_threads)]
    if names:
        cmd += ["--queues", *names]
    if verbose:
        cmd.append("--verbose")
    click.echo(f"starting: {' '.join(cmd[1:])}", err=True)
    os.execv(sys.executable, cmd)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handles_errors
def status(as_json: bool) -> None:
    """Per-queue depth, delayed, in progress, dead, and live workers."""
    from queues.manager import get_queue_manager

    manager = get_queue_manager()
    stats = manager.queue_stats()
    workers = manager.worker_registry().workers()
    health = _health_summary()
    data = {
        "queues": {name: s.to_dict() for name, s in stats.items()},
        "workers": [w.to_dict() for w in workers],
        "broker": manager.settings.broker,
        "health": health,
    }
    problem = any(s.waiting and not s.workers for s in stats.values())
    if health is not None and health.get("health_score", 100) < 50:
        problem = True
    if as_json:
        emit_json(data)
    else:
        _print_status(data)
    sys.exit(EXIT_PROBLEM if problem else EXIT_OK)


def _health_summary() -> dict[str, Any] | None:
    """The monitor's health summary when the monitor module is there, else None."""
    try:
        from queues.monitoring import get_queue_monitor
    except ImportError:
        return None
    try:
        return get_queue_monitor().get_system_health_summary()
    except redis.RedisError:
        raise
    except Exception as exc:  # the summary is a bonus here; status must still answer
        return {"health_score": None, "error": str(exc)}


def _print_status(data: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"Queues ({data['broker']})")
    for column in ("queue", "waiting", "delayed", "in progress", "dead", "workers"):
        table.add_column(column, justify="right" if column != "queue" else "left")
    for name, q in data["queues"].items():
        na = "n/a (RabbitMQ)"
        table.add_row(name, str(q["waiting"]), na if q["delayed"] is None else str(q["delayed"]),
                      na if q["in_progress"] is None else str(q["in_progress"]),
                      na if q["dead"] is None else str(q["dead"]), str(q["workers"]))
    console.print(table)
    console.print(f"live worker processes: {len(data['workers'])}")
    health = data.get("health")
    if health:
        console.print(f"health score: {health.get('health_score')}/100")
        for reason in health.get("reasons", []):
            console.print(f"  - {reason}")


if __name__ == "__main__":
    cli()
