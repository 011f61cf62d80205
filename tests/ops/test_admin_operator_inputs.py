"""What operators type into ``admin.py``: queue names under a ``QUEUE_NAME_PREFIX`` that is the
start of a queue's own name, ``run --help``, and the module's account of ``--json``.

Fast: no worker runs here (the commands only read or drop what is in the test Redis)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import admin
from admin import cli
from tests.ops.conftest import reset_singletons, wait_until
from tests.support.workers import ROOT


@pytest.fixture(autouse=True)
def actors_declared() -> None:
    """The actors, declared before a test sets its prefix: declared under it, they would keep its
    queue names (``lhigh``) for the rest of the session's tests."""
    import actors
    import actors.probe  # noqa: F401
    import tests.support.job_actors  # noqa: F401


def run(*args: str):
    reset_singletons()  # the manager and clients are built again with this test's settings
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.mark.parametrize(("prefix", "given", "expected"), [
    ("l", "low", "llow"), ("l", "llow", "llow"), ("l", "high", "lhigh"), ("l", "lhigh", "lhigh"),
    ("l", "default", "ldefault"),
    ("h", "high", "hhigh"), ("h", "hhigh", "hhigh"), ("h", "low", "hlow"),
    ("x-", "high", "x-high"), ("x-", "x-high", "x-high"), ("", "low", "low"),
])
def test_a_queue_is_named_bare_or_with_its_prefix(env_override, prefix, given, expected) -> None:
    """With the prefix ``l``, ``low`` lost its ``l`` before it was looked up: "unknown queue 'low'"."""
    env_override(QUEUE_NAME_PREFIX=prefix)
    assert admin.resolve_queue(given) == expected


@pytest.mark.parametrize(("prefix", "given"), [("l", "ow"), ("l", "lll"), ("h", "igh"), ("x-", "x-"),
                                                ("", "medium")])
def test_an_unknown_queue_is_still_refused(env_override, prefix, given) -> None:
    env_override(QUEUE_NAME_PREFIX=prefix)
    with pytest.raises(click.BadParameter, match="unknown queue"):
        admin.resolve_queue(given)


def test_clear_takes_a_bare_queue_name_whose_start_is_the_prefix(fresh, env_override) -> None:
    env_override(QUEUE_NAME_PREFIX="l")
    result = run("clear", "low", "--yes", "--json")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert json.loads(result.stdout)["cleared"] == {"llow": 0}
    result = run("clear", "llow", "high", "--yes", "--json")
    assert json.loads(result.stdout)["cleared"] == {"llow": 0, "lhigh": 0}


def test_requeue_and_purge_dead_take_the_bare_queue_name(fresh, env_override) -> None:
    env_override(QUEUE_NAME_PREFIX="l")
    result = run("requeue", "--queue", "low", "--json")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert json.loads(result.stdout)["count"] == 0
    result = run("purge-dead", "--queue", "low", "--dry-run", "--json")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert json.loads(result.stdout)["purged"] == {"llow": 0}


def worker_command_line(*args: str, **env: str) -> list[str]:
    """``admin.py work ARGS`` run for real: the command line of the ``dramatiq`` pool it replaces
    itself with, read from ``/proc``, then the pool is killed. Its Redis is a port nobody listens
    on, so the pool never reaches a real one (nothing of it is left for other tests to see)."""
    child = subprocess.Popen([sys.executable, "admin.py", "work", *args], cwd=ROOT,
                             env={**os.environ, **env, "REDIS_URL": "redis://127.0.0.1:1/0"},
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    cmdline = Path(f"/proc/{child.pid}/cmdline")

    def became_dramatiq() -> bool:
        if child.poll() is not None:
            raise AssertionError(f"admin.py work ended ({child.returncode}): {child.stderr.read()!r}")
        return b"dramatiq" in cmdline.read_bytes()

    try:
        wait_until(became_dramatiq, timeout=30)
        return cmdline.read_bytes().decode().split("\0")[:-1]
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        child.stderr.close()


def test_work_consumes_the_prefixed_queue_of_a_bare_name(env_override) -> None:
    """``work -q high`` with the prefix ``h`` was refused; it must start a pool on ``hhigh``."""
    argv = worker_command_line("-q", "high", "-q", "hlow,default", QUEUE_NAME_PREFIX="h", QUEUE_WORKER_THREADS="3")
    assert argv[argv.index("--queues") + 1:] == ["hhigh", "hlow", "hdefault"]
    assert argv[argv.index("--threads") + 1] == "3"
    env_override(QUEUE_NAME_PREFIX="h")
    result = run("work", "-q", "igh")
    assert result.exit_code == 2 and "unknown queue 'igh'" in result.stderr


def test_work_takes_several_queues_after_one_option_as_the_first_version_did() -> None:
    """``work --workers 2 --queues high default`` (the first version's guide, and ``dramatiq``'s own
    form) was refused: "Got unexpected extra argument (default)"."""
    argv = worker_command_line("--workers", "2", "--queues", "high", "default", "--verbose")
    assert argv[argv.index("--queues") + 1:argv.index("--verbose")] == ["high", "default"]
    assert argv[argv.index("--processes") + 1] == "2"
    result = run("work", "--queues", "high", "medium")
    assert result.exit_code == 2 and "unknown queue 'medium'" in result.stderr


def test_run_help_lists_the_supervisors_options() -> None:
    """``admin.py run --help`` showed only -h: the options of ``make run`` were nowhere to read."""
    for flag in ("--help", "-h"):
        result = CliRunner().invoke(cli, ["run", flag])
        assert result.exit_code == 0, (result.stdout, result.stderr)
        for option in ("--workers", "--redis-port", "--redis-dir", "--faceit-port", "--telegram-port"):
            assert option in result.stdout, (option, result.stdout)
        assert "RUN_REDIS_PORT" in result.stdout


def test_run_refuses_a_bad_port_in_one_line() -> None:
    result = CliRunner().invoke(cli, ["run", "--redis-port", "abc"])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "cli run: argument --redis-port: must be a port number from 1 to 65535 (got 'abc') (see: cli run --help)"]


def test_the_docstring_says_which_commands_take_json() -> None:
    """It said every reading command takes --json; ``report`` has none (its output is JSON)."""
    with_json = {name for name, command in cli.commands.items()
                 if any("--json" in param.opts for param in command.params)}
    assert "report" not in with_json
    assert with_json == {"status", "alerts", "test", "requeue", "clear", "job", "workers", "purge-dead"}
    doc = " ".join(admin.__doc__.split())
    assert "Every command that reads takes ``--json``" not in doc
    assert "every command but ``report``" in doc


def test_test_probes_the_prefixed_queue_of_a_bare_name(fresh, env_override) -> None:
    """``test -q low`` with the prefix ``l``: a probe goes to ``llow`` (no worker here: it times out)."""
    env_override(QUEUE_NAME_PREFIX="l")
    result = run("test", "-q", "low", "--timeout", "0.2", "--json")
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert [r["queue"] for r in json.loads(result.stdout)["results"]] == ["llow"]
