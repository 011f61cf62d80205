"""What operators set for ``make run`` and Compose: QUEUE_WORKER_THREADS reaches every worker pool,
and a bad port (a RUN_*_PORT variable or a --*-port option) stops ``make run`` in one line before
anything starts. Fast: no process of the system is started."""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
from typing import Any

import pytest
from dramatiq.cli import make_argument_parser

import supervisor
from settings import load_settings
from tests.deploy.deployfiles import ROOT, command_list, interpolate

WORKER_SERVICES = ("worker-high", "worker-default-low")
RUN_PORTS = ("RUN_REDIS_PORT", "RUN_FACEIT_PORT", "RUN_TELEGRAM_PORT")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def threads_of(argv: list[str]) -> int:
    return int(argv[argv.index("--threads") + 1])


# --- QUEUE_WORKER_THREADS ------------------------------------------------------------------------


def test_make_run_pools_have_queue_worker_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pools of ``make run`` ran 8 threads whatever QUEUE_WORKER_THREADS said."""
    monkeypatch.setenv("QUEUE_WORKER_THREADS", "3")
    args = argparse.Namespace(workers=2, faceit_port=free_port(), telegram_port=free_port())
    children, _, _ = supervisor.build_children(args, load_settings())
    pools = {child.name: child.argv for child in children if "--threads" in child.argv}
    assert set(pools) == {"worker-high", "worker-default-low"}
    for argv in pools.values():
        assert argv[argv.index("--threads"):argv.index("--threads") + 2] == ["--threads", "3"]
        assert argv[argv.index("--processes") + 1] == "2"
        parsed = make_argument_parser().parse_args(argv[argv.index("actors"):])  # Dramatiq's own parser
        assert parsed.threads == 3 and parsed.processes == 2


def test_worker_argv_is_a_dramatiq_command() -> None:
    argv = supervisor.worker_argv(1, 5, ["default", "low"])
    assert argv[:3] == [sys.executable, "-m", "dramatiq"]
    parsed = make_argument_parser().parse_args(argv[3:])
    assert (parsed.broker, parsed.processes, parsed.threads, parsed.queues) == ("actors", 1, 5, ["default", "low"])


@pytest.mark.parametrize("service", WORKER_SERVICES)
def test_compose_workers_follow_queue_worker_threads(compose_raw: dict[str, Any], filled_env: dict[str, str],
                                                     service: str) -> None:
    """compose.yaml wrote ``--threads "8"``: QUEUE_WORKER_THREADS in .env changed nothing."""
    raw = command_list(compose_raw["services"][service])
    assert raw[raw.index("--threads") + 1].startswith("${QUEUE_WORKER_THREADS")
    for value in ("3", "12"):
        resolved = interpolate(compose_raw, {**filled_env, "QUEUE_WORKER_THREADS": value})
        assert threads_of(command_list(resolved["services"][service])) == int(value)
    unset = {key: value for key, value in filled_env.items() if key != "QUEUE_WORKER_THREADS"}
    assert threads_of(command_list(interpolate(compose_raw, unset)["services"][service])) == 8


# --- ports of make run ---------------------------------------------------------------------------


@pytest.fixture
def nothing_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    """``supervisor.main`` must stop before it takes its lock, starts Redis or builds a child."""
    for name in RUN_PORTS:
        monkeypatch.delenv(name, raising=False)

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("make run went on to start something with a bad port")

    for name in ("hold_run_lock", "uses_own_redis", "build_children", "Supervisor"):
        monkeypatch.setattr(supervisor, name, refuse)


def exit_code_of(argv: list[str]) -> Any:
    try:
        return supervisor.main(argv)
    except SystemExit as exc:
        return exc.code


@pytest.mark.parametrize(("variable", "value"), [
    ("RUN_REDIS_PORT", "abc"), ("RUN_FACEIT_PORT", "99999"), ("RUN_TELEGRAM_PORT", "0"),
    ("RUN_REDIS_PORT", "-1"), ("RUN_FACEIT_PORT", "80.5"),
])
def test_a_bad_run_port_variable_is_one_line_and_exit_2(nothing_starts, monkeypatch, capsys, variable, value) -> None:
    """RUN_REDIS_PORT=abc raised a ValueError traceback; RUN_FACEIT_PORT=99999 an OverflowError from
    bind() after Redis had been started."""
    monkeypatch.setenv(variable, value)
    assert exit_code_of([]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"supervisor.py: {variable} must be a port number from 1 to 65535 (got {value!r})"]


@pytest.mark.parametrize(("option", "value"), [
    ("--redis-port", "abc"), ("--faceit-port", "99999"), ("--telegram-port", "0"), ("--redis-port", "65536"),
])
def test_a_bad_port_option_is_one_line_and_exit_2(nothing_starts, capsys, option, value) -> None:
    assert exit_code_of([option, value]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert f"argument {option}: must be a port number from 1 to 65535 (got {value!r})" in line


def test_ports_in_range_are_taken_and_an_option_wins_over_its_variable(monkeypatch) -> None:
    for name in RUN_PORTS:
        monkeypatch.delenv(name, raising=False)
    assert (lambda a: (a.redis_port, a.faceit_port, a.telegram_port))(supervisor.parse_args([])) == (16379, 8081, 8082)
    monkeypatch.setenv("RUN_REDIS_PORT", " 1 ")
    monkeypatch.setenv("RUN_FACEIT_PORT", "65535")
    monkeypatch.setenv("RUN_TELEGRAM_PORT", "abc")  # never read: the option gives the port
    args = supervisor.parse_args(["--telegram-port", "9000"])
    assert (args.redis_port, args.faceit_port, args.telegram_port) == (1, 65535, 9000)


def test_make_run_with_a_bad_port_says_one_line_without_a_traceback() -> None:
    """As an operator runs it: a process of its own, nothing started, nothing left behind."""
    env = {key: value for key, value in os.environ.items() if key not in RUN_PORTS}
    done = subprocess.run([sys.executable, "supervisor.py"], cwd=ROOT, env={**env, "RUN_REDIS_PORT": "abc"},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "supervisor.py: RUN_REDIS_PORT must be a port number from 1 to 65535 (got 'abc')"]
    assert done.stdout == ""


# --- RabbitMQ's password ---------------------------------------------------------------------------


def test_rabbitmq_password_is_documented_where_the_override_needs_it() -> None:
    """docs/deploy.md's override needs RABBITMQ_PASSWORD, which neither its settings nor .env.example named."""
    from tests.deploy.deployfiles import ENV_EXAMPLE, parse_env_file

    [entry] = [e for e in parse_env_file(ENV_EXAMPLE) if e.key == "RABBITMQ_PASSWORD"]
    assert entry.value == "" and "RABBITMQ_URL" in entry.comment  # a secret: an empty placeholder
    section = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8").split("## Switching the broker to RabbitMQ")[1]
    settings_block = section.split("```bash")[1].split("```")[0]
    assert "RABBITMQ_PASSWORD=" in settings_block and "RABBITMQ_URL=" in settings_block
    assert "${RABBITMQ_PASSWORD:?" in section  # what the override reads


def test_the_broker_switch_counts_the_delayed_retries_workers_hold() -> None:
    """``llen dramatiq:high.DQ`` reads 0 while workers hold delayed retries in memory."""
    text = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    assert "hlen dramatiq:" in text and ".DQ.msgs" in text and "admin.py status" in text
    assert "and dramatiq:high.DQ for waiting" not in text


def test_the_readmes_retry_example_follows_the_retry_schedule() -> None:
    """"Trying again in 30 s (attempt 2 of 4)": attempt 2 comes after the first delay, 10 s."""
    import re

    from tests.deploy.deployfiles import settings_defaults

    readme = " ".join((ROOT / "README.md").read_text(encoding="utf-8").split())
    found = re.findall(r"Trying again in (\d+) s \(attempt (\d+) of (\d+)\)", readme)
    assert found, "the README no longer shows a retry message"
    delays, retries = settings_defaults()["QUEUE_RETRY_DELAYS"], settings_defaults()["QUEUE_MAX_RETRIES"]
    for seconds, attempt, attempts in found:
        assert int(attempts) == retries + 1
        assert int(seconds) == delays[min(int(attempt) - 1, len(delays)) - 1]


# --- .env ----------------------------------------------------------------------------------------


def test_make_run_says_a_dotenv_beside_it_is_not_read(tmp_path) -> None:
    """The first version's guide had operators put REDIS_URL and tokens in ``.env``; ``make run``
    ignores it (only Compose reads one) and quietly ran the sandboxes. It now says how to use it."""
    assert supervisor.unread_dotenv_note(tmp_path) is None
    (tmp_path / ".env").write_text("TELEGRAM_BOT_TOKEN=123456:ABCdefGHIjkl_mnoPQR-stu\n")
    note = supervisor.unread_dotenv_note(tmp_path)
    assert note is not None and "set -a; . ./.env; set +a" in note
    assert "ABCdef" not in note  # what the file holds is not said
    # What the note tells operators to run does what it says: the shell exports the file's values.
    shown = subprocess.run(["sh", "-c", "set -a; . ./.env; set +a; sh -c 'echo \"$TELEGRAM_BOT_TOKEN\"'"],
                           cwd=tmp_path, capture_output=True, text=True, env={"PATH": os.environ["PATH"]})
    assert shown.stdout.strip() == "123456:ABCdefGHIjkl_mnoPQR-stu"
