"""The operators' command line: ``python admin.py COMMAND``.

=========================================  ====================================================
command                                    what it does
=========================================  ====================================================
``work --workers N --queues Q…``           run a worker pool (``dramatiq actors``)
``status``                                 queues, workers, health score and its reasons
``alerts --hours N [--level L] [--open]``  recent alerts (fired and resolved)
``test [--timeout S]``                     a probe job per queue: pass/fail and latency
``report --hours N [--output FILE]``       JSON: throughput, failures, latency, alerts
``requeue [--queue Q] [--job ID] [--all]``  send failed jobs again (every one with no option)
``clear [QUEUE…] [--yes]``                 drop waiting and delayed jobs (every queue with none
                                           named; asks first)
``job JOB_ID``                             the whole record, attempts and traceback
``workers [--all]``                        live worker processes
``purge-dead [--older-than 2h] [--yes]``   drop dead-lettered messages (asks first)
``run``                                    the whole local system, supervised (``make run``)
=========================================  ====================================================

Exit codes: 0 all is well, 1 a problem was found (or Redis or RabbitMQ is unreachable), 2 a usage error.
``--json`` (machine-readable output) is taken by every command but ``report``, whose output is
JSON already, and ``work`` and ``run``, which start processes; errors are one line on stderr.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import time
from collections import Counter
from collections.abc import Callable
from functools import wraps
from typing import Any

import click
import redis

from queues.priorities import known_queue
from settings import MAX_SECONDS, SettingsError, get_settings, redact_url

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE = 0, 1, 2
PROBLEM_LEVELS = ("error", "critical")


def fail(message: str, code: int = EXIT_PROBLEM) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def reader_gone() -> None:
    """Exit quietly (status 1) when whoever read our output closed the pipe: there is nobody to
    tell, and Python, flushing stdout at exit, would otherwise print its own error about it.
    Standard output goes to the null device first, as the Python documentation advises."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    sys.exit(EXIT_PROBLEM)


def handles_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn settings, Redis and broker errors into one line and exit status 1 (2 for settings).

    Every RabbitMQ call a command makes goes through the queue manager (``send``, and
    ``_ask_rabbit`` for counts and purges), which raises :class:`BrokerUnreachableError` naming
    the broker: no catch-all for RabbitMQ's errors here, which named any ``OSError`` (a closed
    pipe) "RabbitMQ … is unreachable"."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from queues.errors import BrokerUnreachableError, UnknownJobError

        try:
            return fn(*args, **kwargs)
        except SettingsError as exc:
            fail(f"settings: {exc}", EXIT_USAGE)
        except BrokerUnreachableError as exc:  # its message names the broker, password redacted
            fail(str(exc))
        except redis.RedisError as exc:
            url = redact_url(get_settings().redis_url)
            first = (str(exc).splitlines() or [""])[0][:120]
            fail(f"Redis at {url} is unreachable ({type(exc).__name__}: {first})")
        except UnknownJobError as exc:
            fail(str(exc))
        except BrokenPipeError:  # ``admin.py status --json | head``: the reader has what it wanted
            reader_gone()

    return wrapper


def shown(value: Any) -> Any:
    """``value`` with every secret masked (:mod:`queues.redaction`): whatever this tool prints
    passes here, as on the dashboard (job arguments, errors and alerts may quote a token or key)."""
    from queues.redaction import redactor_in_force

    return redactor_in_force().redact(value)


def emit_json(data: Any) -> None:
    click.echo(json.dumps(shown(data), indent=2, default=str, ensure_ascii=False))


def console():
    from rich.console import Console

    # Piped output (grep, logs) is not cut to 80 columns.
    return Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 200)


def table(title: str | None, columns: list[str], rows: list[list[Any]], right: tuple[str, ...] = ()):
    """A Rich table whose cells are shown as written: they hold job arguments, error and alert
    messages, where ``[...]`` is data, not Rich markup (``[/b]`` would otherwise raise)."""
    from rich.table import Table
    from rich.text import Text

    t = Table(title=title)
    for column in columns:
        t.add_column(column, justify="right" if column in right else "left", overflow="fold")
    for row in rows:
        t.add_row(*[Text("" if v is None else shown(str(v))) for v in row])
    return t


#: The longest window ``--hours`` takes (a year): nothing is kept longer.
MAX_HOURS = 24 * 366


class Amount(click.ParamType):
    """A finite number of ``unit`` (hours, seconds), more than 0 and at most ``maximum``.

    ``click.FloatRange`` lets ``nan`` through (every comparison with it is false) and takes
    ``inf``: a probe wait of nan failed every probe at once, one of inf never ended.
    """

    def __init__(self, unit: str, maximum: float) -> None:
        self.name = unit
        self.maximum = maximum

    def convert(self, value: Any, param: Any, ctx: Any) -> float:
        try:
            amount = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number of {self.name}", param, ctx)
        if not math.isfinite(amount) or not 0 < amount <= self.maximum:
            self.fail(f"{value!r}: give more than 0 and at most {self.maximum} {self.name}", param, ctx)
        return amount


def fmt_time(ts: float | None) -> str:
    if not ts:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(ts)))


def fmt_seconds(value: float | None) -> str:
    if value is None:
        return "-"
    value = float(value)
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 120:
        return f"{value:.1f} s"
    if value < 7200:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.1f} h"


def fmt_lifetime(seconds: int) -> str:
    """A whole number of seconds as the settings would say it: ``24 h``, ``15 min``, ``90 s``."""
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``15m``, ``2h``, ``7d`` → seconds (BadParameter otherwise)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text or "")
    if not match:
        raise click.BadParameter(f"{text!r} is not a duration (e.g. 90s, 15m, 2h, 7d)")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]


def queue_words(values: tuple[str, ...]) -> list[str]:
    """The queue names in ``--queues`` values and the words that follow them: each may hold
    several, separated by commas or spaces (``-q high,default``, ``-q "high default"``)."""
    return [name for value in values for name in value.replace(",", " ").split()]


def resolve_queue(name: str) -> str:
    """``high``/``default``/``low`` (with or without QUEUE_NAME_PREFIX) → the broker queue name."""
    found = known_queue(name, get_settings())
    if found is None:
        raise click.BadParameter(f"unknown queue {name!r} (expected high, default or low)")
    return found


#: Docstring markup (``code``, :role:`target`) that ``--help`` shows as plain text.
_DOC_MARKUP = re.compile(r":[a-z]+:`~?(?:[\w.]*\.)?(\w+)`|``([^`]+)``")


def plain_help(text: str | None) -> str | None:
    """A command's docstring as ``--help`` prints it: the markup written for the code's readers
    (``--level``, :attr:`Alert.judged_level`) shown as the words it marks."""
    return _DOC_MARKUP.sub(lambda m: m.group(1) or m.group(2), text) if text else text


class OneLineErrors(click.Group):
    """Click's usage errors as one line on stderr (``error: … (see: admin.py alerts --help)``),
    exit status 2, instead of its four lines of usage text; each command's help as plain text
    (:func:`plain_help`)."""

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        cmd.help = plain_help(cmd.help)
        super().add_command(cmd, name)

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            code = super().main(args, prog_name, complete_var, False, **extra)
        except click.exceptions.NoArgsIsHelpError as exc:  # no command given: the list of commands
            click.echo(exc.ctx.get_help() if exc.ctx is not None else exc.format_message())
            sys.exit(EXIT_OK)
        except click.UsageError as exc:
            where = f" (see: {exc.ctx.command_path} --help)" if exc.ctx is not None else ""
            click.echo(f"error: {exc.format_message()}{where}", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            click.echo(f"error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        except click.exceptions.Abort:
            click.echo("aborted", err=True)
            sys.exit(EXIT_PROBLEM)
        sys.exit(code if isinstance(code, int) else 0)


@click.group(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Operate the FACEIT bot's job pipeline."""


# --- work ---------------------------------------------------------------------------------------


@cli.command()
@click.option("--workers", "-w", type=click.IntRange(min=1), default=None,
              help="Worker processes (default QUEUE_MAX_WORKERS).")
@click.option("--threads", "-t", type=click.IntRange(min=1), default=None,
              help="Threads per process (default QUEUE_WORKER_THREADS).")
@click.option("--queues", "-q", multiple=True,
              help="Queues to consume: high, default, low (default all); several may follow one --queues.")
@click.option("--verbose", "-v", is_flag=True, help="Debug logging.")
@click.argument("more_queues", nargs=-1, metavar="[QUEUES]...")
@handles_errors
def work(workers: int | None, threads: int | None, queues: tuple[str, ...], verbose: bool,
         more_queues: tuple[str, ...]) -> None:
    """Run a worker pool: ``dramatiq actors`` with our settings (replaces this process).

    ``--queues high default`` (the first version's form, and ``dramatiq``'s) names both queues:
    the words after the option's first are taken as queues too."""
    settings = get_settings()
    names = []
    for item in queue_words(queues + more_queues):
        found = known_queue(item, settings)
        if found is None:
            fail(f"unknown queue {item!r} (expected high, default or low)", EXIT_USAGE)
        names.append(found)
    from supervisor import worker_argv

    cmd = worker_argv(workers or settings.queue_max_workers, threads or settings.queue_worker_threads, names)
    if verbose:
        cmd.append("--verbose")
    click.echo(f"starting: {' '.join(cmd[1:])}", err=True)
    os.execv(sys.executable, cmd)


# --- status ------------------------------------------------------------------------------------


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handles_errors
def status(as_json: bool) -> None:
    """Per-queue depth, delayed, in progress, dead, live workers, and the health score.

    Exit 1 when the health score is under 50 or an error/critical condition holds (work
    waiting with no worker, a high failure rate, stale jobs, FACEIT refusing our key …), or such
    an alert is still open (as alerts --open says).
    """
    from queues.manager import get_queue_manager
    from queues.runtime import get_alert_store

    manager = get_queue_manager()
    stats = manager.queue_stats()
    workers = manager.worker_registry().workers()
    health = _health_summary()
    data = {
        "queues": {name: s.to_dict() for name, s in stats.items()},
        "workers": [w.to_dict() for w in workers],
        "broker": manager.settings.broker,
        # Which one: a shell without REDIS_URL reads another Redis, quietly (password hidden).
        "redis": redact_url(manager.settings.redis_url),
        "health": health,
    }
    if manager.settings.broker == "rabbitmq":
        data["rabbitmq"] = redact_url(manager.settings.rabbitmq_url)
    from queues.runtime import get_redis
    from scheduler import scheduler_state

    data["scheduler"] = scheduler_state(get_redis(manager.settings), manager.settings.redis_key_prefix)
    problem = any(s.waiting and not s.workers for s in stats.values())
    if health is not None:
        score = health.get("health_score")
        if score is not None and score < 50:
            problem = True
        if any(c.get("level") in PROBLEM_LEVELS for c in health.get("components", [])):
            problem = True
    # A condition the rules can no longer judge (a failure rate with too few jobs since) leaves the
    # score, but its alert stays open: status said fine where alerts --open said a problem.
    open_now = get_alert_store().open_alerts()
    data["open_alerts"] = {"count": len(open_now), "summary": open_summary(open_now)}
    if any(a.level in PROBLEM_LEVELS for a in open_now):
        problem = True
    data["problem"] = problem
    if as_json:
        emit_json(data)
    else:
        _print_status(data)
    sys.exit(EXIT_PROBLEM if problem else EXIT_OK)


def _health_summary() -> dict[str, Any] | None:
    """The health summary when the monitor module is there, else None: judged on figures read
    now, as the counts beside it are (the monitor's last snapshot, up to two intervals old, said
    "dead-lettered messages: 3" beside a table of none, just after a purge)."""
    try:
        from queues.monitoring import get_queue_monitor
    except ImportError:
        return None
    try:
        return get_queue_monitor().get_system_health_summary(fresh=True)
    except redis.RedisError:
        raise
    except Exception as exc:  # the summary is a bonus here; status must still answer
        return {"health_score": None, "error": str(exc)}


def _print_status(data: dict[str, Any]) -> None:
    out = console()
    na = "n/a (RabbitMQ)"
    rows = []
    for name, q in data["queues"].items():
        rows.append([name, q["waiting"], na if q["delayed"] is None else q["delayed"],
                     na if q["in_progress"] is None else q["in_progress"],
                     na if q["dead"] is None else q["dead"], q["workers"]])
    out.print(table(f"Queues ({data['broker']} at {data[data['broker']]})", ["queue", "waiting", "delayed", "in progress", "dead",
                                                    "workers"], rows,
                    right=("waiting", "delayed", "in progress", "dead", "workers")))
    out.print(f"live worker processes: {len(data['workers'])}")
    health = data.get("health")
    if health:
        score = health.get("health_score")
        colour = "green" if score is not None and score >= 80 else "yellow" if score and score >= 50 else "red"
        out.print(f"health score: [{colour}]{score}/100[/{colour}]")
        for component in health.get("components", []):
            out.print(shown(f"  -{component['score_lost']:>3}  {component['name']}: {component['reason']}"),
                      markup=False)
        if health.get("error"):
            out.print(shown(f"  (health unavailable: {health['error']})"), markup=False)
    out.print(f"open conditions: {data['open_alerts']['summary']}")
    _print_scheduler(out, data["scheduler"])


def _print_scheduler(out: Any, state: dict[str, Any]) -> None:
    """The scheduler's leader and each task's last run and outcome (a task failing every run
    showed nowhere but the scheduler's log)."""
    if not state["leader"]:
        out.print("scheduler: no leader (is python scheduler.py running?)")
    else:
        out.print(shown(f"scheduler: leader {state['leader']}"), markup=False)
    rows = [[name, fmt_time(task["last_at"]), task["last_outcome"] or "-", fmt_time(task["last_ok"])]
            for name, task in state["tasks"].items()]
    if rows:
        out.print(table("Scheduled tasks", ["task", "last run", "outcome", "last good run"], rows))


# --- alerts ------------------------------------------------------------------------------------


@cli.command()
@click.option("--hours", type=Amount("hours", MAX_HOURS), default=24.0, show_default=True,
              help="How far back to look.")
@click.option("--level", type=click.Choice(["info", "warning", "error", "critical"]), default=None,
              help="Only alerts at this level or above.")
@click.option("--open", "open_only", is_flag=True, help="Only conditions that still hold.")
@click.option("--limit", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handles_errors
def alerts(hours: float, level: str | None, open_only: bool, limit: int, as_json: bool) -> None:
    """Recent alerts, newest first. Exit 1 while an error or critical condition is open.

    ``--level`` judges a resolve notice by the alert it resolves, as the dashboard does: "warning"
    also lists the notice that a warning is over."""
    from queues.alerts import at_or_above
    from queues.runtime import get_alert_store

    store = get_alert_store()
    open_now = store.open_alerts()
    if open_only:
        items = sorted((a for a in open_now if at_or_above(a.judged_level, level)),
                       key=lambda a: a.time, reverse=True)
    else:
        items = store.recent(hours, level=level, limit=limit)
    items = items[:limit]
    problem = any(a.level in PROBLEM_LEVELS for a in open_now)
    if as_json:
        emit_json({"hours": hours, "level": level, "count": len(items), "alerts": [a.to_dict() for a in items],
                   "open": [a.to_dict() for a in open_now], "problem": problem})
    else:
        rows = [[fmt_time(a.time), a.level, a.state, a.source,
                 f"{a.rule}/{a.subject}" if a.rule else (f"job {a.job_id}" if a.job_id else ""), a.message]
                for a in items]
        out = console()
        what = "open alerts" if open_only else f"alerts of the last {hours:g} h"
        if rows:
            out.print(table(f"{len(rows)} {what}", ["time", "level", "state", "source", "about", "message"],
                            rows))
        else:
            out.print(f"no {what}")
        out.print(f"open conditions: {open_summary(open_now)}")
    sys.exit(EXIT_PROBLEM if problem else EXIT_OK)


def open_summary(open_now: list[Any]) -> str:
    """``3 (2 warning, 1 error)``: the open conditions by level, whatever ``--level`` listed."""
    from queues.alerts import LEVELS

    by_level = Counter(a.level for a in open_now)
    named = [*LEVELS, *sorted(set(by_level) - set(LEVELS))]  # a level this version does not know: last
    parts = [f"{by_level[level]} {level}" for level in named if by_level[level]]
    return f"{len(open_now)} ({', '.join(parts)})" if parts else "0"


# --- test --------------------------------------------------------------------------------------


@cli.command("test")
@click.option("--timeout", type=Amount("seconds", MAX_SECONDS), default=None,
              help="Seconds to wait for every probe (default QUEUE_BURST_TIMEOUT, 60).")
@click.option("--queues", "-q", multiple=True,
              help="Only these queues (default all); several may follow one --queues.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.argument("more_queues", nargs=-1, metavar="[QUEUES]...")
@handles_errors
def test_probe(timeout: float | None, queues: tuple[str, ...], as_json: bool, more_queues: tuple[str, ...]) -> None:
    """Send a probe job to each queue, wait, print pass/fail and latency. Exit 1 if any fails."""
    from actors.probe import PROBES
    from queues.manager import get_queue_manager
    from queues.priorities import QueuePriority, priority_of_queue, queue_name

    settings = get_settings()
    if timeout is None:
        timeout = float(settings.queue_burst_timeout)
    manager = get_queue_manager()
    wanted = [resolve_queue(q) for q in queue_words(queues + more_queues)]
    sent = []
    for priority in QueuePriority:
        if wanted and queue_name(priority, settings) not in wanted:
            continue
        handle = manager.enqueue_job(PROBES[priority].actor_name, priority=priority, sent_at=time.time())
        sent.append((handle, time.monotonic()))
    deadline = time.monotonic() + timeout
    results = []
    for handle, _ in sent:
        record = manager.wait_for(handle.id, timeout=max(0.0, deadline - time.monotonic()))
        status_ = record.status if record else "missing"
        ok = status_ == "succeeded"
        latency = (record.finished_at - record.enqueued_at) if ok and record.finished_at and record.enqueued_at \
            else None
        wait = (record.first_started_at - record.enqueued_at) if record and record.first_started_at \
            and record.enqueued_at else None
        if not ok and record is not None and not record.is_final:
            manager.cancel_job(handle.id)  # a late probe must not run after we gave up on it
            status_ = f"timed out ({status_})"
        priority = priority_of_queue(handle.queue, settings)
        results.append({"queue": handle.queue, "priority": priority.value if priority else None,
                        "job_id": handle.id, "ok": ok, "status": status_, "latency": latency, "wait": wait,
                        "error": (record.error or {}).get("message") if record and record.error else None})
    failed = [r for r in results if not r["ok"]]
    if as_json:
        emit_json({"ok": not failed, "timeout": timeout, "results": results})
    else:
        rows = [[r["queue"], "PASS" if r["ok"] else "FAIL", r["status"], fmt_seconds(r["latency"]),
                 fmt_seconds(r["wait"]), r["job_id"]] for r in results]
        out = console()
        out.print(table("Probe jobs", ["queue", "result", "status", "latency", "wait", "job"], rows,
                        right=("latency", "wait")))
        out.print("all queues answered" if not failed else f"{len(failed)} queue(s) failed")
    sys.exit(EXIT_PROBLEM if failed else EXIT_OK)


# --- report ------------------------------------------------------------------------------------


@cli.command()
@click.option("--hours", type=Amount("hours", MAX_HOURS), default=24.0, show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True, allow_dash=True), default="-",
              show_default=True, help="Where to write the JSON report ('-' = stdout).")
@handles_errors
def report(hours: float, output: str) -> None:
    """A JSON report: throughput, failures by actor and error type, latency percentiles, alerts."""
    from pathlib import Path

    from queues.monitoring import get_queue_monitor

    folder = Path(output).resolve().parent
    if output != "-" and not folder.is_dir():  # said before the work, not after
        fail(f"cannot write {output}: the folder {folder} does not exist")
    data = get_queue_monitor().report(hours)
    text = json.dumps(data, indent=2, default=str, ensure_ascii=False)
    if output == "-":
        click.echo(text)
    else:
        try:
            with open(output, "w", encoding="utf-8") as fh:
                fh.write(text + "\n")
        except OSError as exc:
            fail(f"cannot write {output}: {exc.strerror or exc}")
        t = data["throughput"]["total"]
        click.echo(f"report of the last {hours:g} h written to {output}: {t['succeeded']} succeeded, "
                   f"{t['failed']} failed, {data['alerts']['count']} alerts", err=True)


# --- requeue -----------------------------------------------------------------------------------


@cli.command()
@click.option("--queue", "-q", "queue", default=None, help="Failed jobs of this queue.")
@click.option("--job", "job_id", default=None, help="This one job.")
@click.option("--all", "all_", is_flag=True, help="Every failed job.")
@click.option("--include-canceled", is_flag=True, help="Canceled jobs too.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handles_errors
def requeue(queue: str | None, job_id: str | None, all_: bool, include_canceled: bool, as_json: bool) -> None:
    """Send failed jobs again with fresh counters: --job one, --queue a queue's, or every failed
    job (--all, or no option, as the first version's ``requeue``)."""
    from queues.manager import REQUEUE_BATCH, get_queue_manager

    for option, value in (("--queue", queue), ("--job", job_id)):
        if value is not None and not value.strip():  # "$Q" unset in a script: not "every failed job"
            raise click.UsageError(f"{option} is empty")
    if sum((queue is not None, job_id is not None, all_)) > 1:
        raise click.UsageError("say which jobs: one of --job ID, --queue Q or --all")
    manager = get_queue_manager()
    if job_id:
        record = find_job(manager, job_id)
        if record.status not in ("failed", "canceled"):
            fail(f"job {record.id} is {record.status}: only failed or canceled jobs can be requeued")
        done = manager.requeue_failed(job_id=record.id)
    else:
        done = manager.requeue_failed(queue=resolve_queue(queue) if queue else None,
                                      include_canceled=include_canceled)
    if as_json:
        emit_json({"requeued": list(done), "count": len(done), "skipped": done.skipped,
                   "superseded": done.superseded, "more": done.more})
    else:
        click.echo(f"requeued {len(done)} job(s)" + (": " + ", ".join(done[:20]) if done else ""))
        if done.skipped:
            click.echo(f"left alone {done.skipped} failed job(s) refused for their request (bad input, not found); "
                       "--job ID sends one anyway")
        if done.superseded:
            click.echo(f"left alone {done.superseded} failed job(s) their users asked for again since and got; "
                       "--job ID sends one anyway")
        if done.more:
            click.echo(f"looked at the newest {REQUEUE_BATCH} failed jobs only: more may be left; run it again")
    sys.exit(EXIT_PROBLEM if job_id and not done else EXIT_OK)


# --- clear -------------------------------------------------------------------------------------


@cli.command()
@click.argument("queues", nargs=-1)
@click.option("--yes", "-y", is_flag=True, help="Do not ask (needed where nobody can answer, as in a script).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handles_errors
def clear(queues: tuple[str, ...], yes: bool, as_json: bool) -> None:
    """Drop every waiting and delayed job of QUEUES (high, default, low, or all; all when none
    is named). Asks first, unless --yes.

    The dropped jobs' records are marked canceled, so users are not left waiting for them (requeue
    --include-canceled sends them again). Dead letters stay (see purge-dead), jobs already running
    finish normally, and on Redis so do the deliveries waiting there (results, and the notices
    telling users their job was stopped).
    """
    from queues.manager import get_queue_manager
    from queues.priorities import all_queue_names

    settings = get_settings()
    names: list[str] = []
    for item in queues or ("all",):
        for name in (all_queue_names(settings) if item == "all" else [resolve_queue(item)]):
            if name not in names:
                names.append(name)
    manager = get_queue_manager()
    stats = manager.queue_stats()
    total = sum(stats[n].waiting + (stats[n].delayed or 0) for n in names)
    if not yes:
        prompt = f"Drop {total} waiting and delayed job(s) from {', '.join(names)}?"
        try:
            agreed = click.confirm(prompt, default=False, err=True)
        except click.Abort:  # no answer to read (a script, stdin closed) or Ctrl-C
            click.echo("", err=True)
            fail("nothing cleared: no answer (--yes clears without asking)")
        if not agreed:
            click.echo("nothing cleared", err=True)
            sys.exit(EXIT_PROBLEM)
    cleared, canceled = manager.clear_and_cancel(*names)
    if as_json:
        emit_json({"cleared": cleared, "records_canceled": canceled})
    else:
        for name, n in cleared.items():
            click.echo(f"{name}: dropped {n} job(s)")
        click.echo(f"{canceled} job record(s) marked canceled")


# --- job ---------------------------------------------------------------------------------------


RESULT_SHOWN = 2000  # characters of a result shown by ``admin.py job`` (--json shows it whole)


def _shortened(text: str, limit: int) -> str:
    """``text``, or its first ``limit`` characters and how much was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]} … ({len(text) - limit} more characters: --json shows it whole)"


def find_job(manager: Any, job_id: str) -> Any:
    """The record of JOB_ID, or of the one job whose id starts with it (8 characters or more, as
    the dashboard shows them); else one line and exit 1."""
    from queues.jobids import job_ref

    ref = job_ref(job_id)
    if ref is None:
        fail(f"{job_id!r} is not a job id: give the whole id or its first 8 characters or more")
    found = manager.jobs.ids_named(ref)
    if len(found) > 1:
        fail(f"{len(found)} jobs start with {ref}: give more of the id")
    record = manager.get_job(found[0]) if found else None
    if record is None:
        settings = get_settings()
        fail(f"no job {job_id} (records of finished jobs expire: results after "
             f"{fmt_lifetime(settings.queue_result_ttl)}, failures after {fmt_lifetime(settings.queue_failure_ttl)})")
    return record


@cli.command()
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handles_errors
def job(job_id: str, as_json: bool) -> None:
    """The whole record of JOB_ID (or of the one job whose id starts with it: 8 characters or
    more, as the dashboard shows them): arguments, requesters, attempts, result or error with traceback."""
    from queues.manager import get_queue_manager

    record = find_job(get_queue_manager(), job_id)
    data = record.to_dict()
    if as_json:
        emit_json(data)
        return
    out = console()
    rows = [["id", record.id], ["actor", record.actor], ["queue", record.queue], ["status", record.status],
            ["attempts", f"{record.attempts} (deliveries {record.deliveries}, max retries {record.max_retries})"],
            ["enqueued", fmt_time(record.enqueued_at)], ["first started", fmt_time(record.first_started_at)],
            ["finished", fmt_time(record.finished_at)], ["worker", record.worker or "-"],
            ["args", json.dumps(shown(record.args), ensure_ascii=False)],
            ["kwargs", json.dumps(shown(record.kwargs), ensure_ascii=False)],
            ["requesters", json.dumps(shown(record.requesters), ensure_ascii=False)]]
    if record.watchers:
        rows.append(["watchers", json.dumps(record.watchers)])
    if record.retry_at and not record.is_final:  # a finished job keeps the field; it retries no more
        rows.append(["next retry", fmt_time(record.retry_at)])
    if record.progress and record.status != "succeeded":  # a done job's last report (95% render) misleads
        label = "progress when it stopped" if record.is_final else "progress"
        rows.append([label, json.dumps(shown(record.progress), ensure_ascii=False)])
    if record.result is not None:
        rows.append(["result", _shortened(json.dumps(shown(record.result), ensure_ascii=False), RESULT_SHOWN)])
    out.print(table(f"Job {record.id}", ["field", "value"], rows))
    if record.timeline:
        trows = [[t.get("attempt"), t.get("worker", ""), fmt_time(t.get("started_at")),
                  fmt_time(t.get("finished_at")),
                  fmt_seconds((t["finished_at"] - t["started_at"]) if t.get("finished_at") and t.get("started_at")
                              else None), t.get("outcome", "running"), t.get("error", "")]
                 for t in record.timeline]
        out.print(table("Attempts", ["#", "worker", "started", "finished", "took", "outcome", "error"], trows))
    if record.error:
        err = record.error
        out.print(shown(f"error: {err.get('type')} ({err.get('code')}, retryable={err.get('retryable')}): "
                        f"{err.get('message')}"), markup=False)
        if err.get("traceback"):
            out.print(shown(err["traceback"]), markup=False)


# --- workers -----------------------------------------------------------------------------------


@cli.command()
@click.option("--all", "all_", is_flag=True, help="Include workers whose heartbeat is late.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handles_errors
def workers(all_: bool, as_json: bool) -> None:
    """Live worker processes: host, pid, queues, running jobs. Exit 1 when none is live."""
    from queues.manager import get_queue_manager

    registry = get_queue_manager().worker_registry()
    live = registry.workers()
    shown = registry.workers(live_only=False) if all_ else live
    live_ids = {w.id for w in live}
    now = time.time()
    if as_json:
        emit_json({"live": len(live), "workers": [{**w.to_dict(), "live": w.id in live_ids} for w in shown]})
    else:
        rows = [[w.id, w.host, w.pid, ",".join(w.queues), len(w.current_jobs), w.processed,
                 fmt_seconds(now - w.started_at), fmt_seconds(now - w.last_heartbeat),
                 "live" if w.id in live_ids else "late"] for w in shown]
        out = console()
        if rows:
            out.print(table(f"{len(live)} live worker process(es)",
                            ["id", "host", "pid", "queues", "running", "processed", "up", "heartbeat", "state"],
                            rows, right=("running", "processed", "up", "heartbeat")))
        else:
            out.print("no live worker processes")
    sys.exit(EXIT_OK if live else EXIT_PROBLEM)


# --- purge-dead --------------------------------------------------------------------------------


@cli.command("purge-dead")
@click.option("--older-than", "older_than", default="0s", show_default=True,
              help="Only messages dead for longer than this (90s, 15m, 2h, 7d).")
@click.option("--queue", "-q", "queue", default=None, help="Only this queue (default all).")
@click.option("--dry-run", is_flag=True, help="Count, do not delete.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handles_errors
def purge_dead(older_than: str, queue: str | None, dry_run: bool, yes: bool, as_json: bool) -> None:
    """Drop dead-lettered messages (their failed job records stay until they expire, and requeue
    sends a job again from its record). Asks first, saying how many and how old (a bare number is
    seconds: '7' is not a week). On RabbitMQ a queue's dead letters go all at once: it cannot pick
    them by age."""
    from queues.dramatiq_keys import dead_letters_key, dead_messages_key
    from queues.priorities import all_queue_names
    from queues.runtime import get_redis

    age = parse_duration(older_than)
    settings = get_settings()
    names = [resolve_queue(queue)] if queue else all_queue_names(settings)
    if settings.broker != "redis":
        _purge_rabbit_dead(names, age, dry_run, yes, as_json)
        return
    client = get_redis(settings)
    cutoff_ms = (time.time() - age) * 1000
    keys = {name: (dead_letters_key(settings.dramatiq_namespace, name),
                   dead_messages_key(settings.dramatiq_namespace, name)) for name in names}
    found = {name: client.zrangebyscore(keys[name][0], 0, cutoff_ms) for name in names}
    total = sum(len(ids) for ids in found.values())
    if total and not dry_run and not yes:
        prompt = f"Drop {total} dead message(s) older than {fmt_seconds(age)} from {', '.join(names)}?"
        if not click.confirm(prompt, default=False, err=True):
            click.echo("nothing dropped", err=True)
            sys.exit(EXIT_PROBLEM)
    purged: dict[str, int] = {}
    for name, ids in found.items():
        xq, xq_messages = keys[name]
        if ids and not dry_run:
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                pipe = client.pipeline(transaction=True)
                pipe.zrem(xq, *chunk)
                pipe.hdel(xq_messages, *chunk)
                pipe.execute()
        purged[name] = len(ids)
    _say_purged(purged, age, dry_run, as_json)


def _say_purged(purged: dict[str, int], age: float, dry_run: bool, as_json: bool) -> None:
    """What purge-dead dropped (or would drop), per queue."""
    if as_json:
        emit_json({"purged": purged, "total": sum(purged.values()), "older_than_seconds": age, "dry_run": dry_run})
    else:
        verb = "would drop" if dry_run else "dropped"
        for name, n in purged.items():
            click.echo(f"{name}: {verb} {n} dead message(s)")


def _purge_rabbit_dead(names: list[str], age: float, dry_run: bool, yes: bool, as_json: bool) -> None:
    """``purge-dead`` on RabbitMQ: each queue's dead-letter queue purged whole."""
    from queues.manager import get_queue_manager

    if age > 0:
        fail("--older-than needs the Redis broker: RabbitMQ drops a queue's dead letters all at once")
    manager = get_queue_manager()
    found = {name: manager.queue_stats_of(name, live={}).dead or 0 for name in names}
    total = sum(found.values())
    prompt = f"Drop all {total} dead message(s) of {', '.join(names)}?"
    if total and not dry_run and not yes and not click.confirm(prompt, default=False, err=True):
        click.echo("nothing dropped", err=True)
        sys.exit(EXIT_PROBLEM)
    purged = found if dry_run or not total else manager.purge_rabbit_dead(*names)
    _say_purged(purged, age, dry_run, as_json)


@cli.command(add_help_option=False,
             context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.pass_context
def run(ctx: click.Context) -> None:
    """Run the whole local system as one supervised tree (what ``make run`` does); --help lists
    its options (--workers, --redis-port, --redis-dir, --faceit-port, --telegram-port)."""
    import supervisor

    # Every argument, --help included, is the supervisor's: its own parser knows the options
    # (Click's --help here listed none of them).
    sys.exit(supervisor.main(list(ctx.args), prog=ctx.command_path))


if __name__ == "__main__":
    cli()
