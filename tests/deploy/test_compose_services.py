"""Our own rules for compose.yaml, beyond what the Compose schema can say."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from dramatiq.cli import make_argument_parser

from tests.deploy.deployfiles import (
    ROOT,
    InterpolationError,
    command_list,
    duration_seconds,
    env_example_values,
    interpolate,
    referenced_variables,
    required_variables,
    settings_defaults,
)

# Services that may run as several replicas (`--scale`): no fixed name, no host port.
SCALABLE = {"worker-high", "worker-default-low", "scheduler"}
RESTART_POLICIES = {"always", "unless-stopped", "on-failure"}


def test_expected_services(compose) -> None:
    assert set(compose["services"]) == {
        "redis",
        "bot",
        "worker-high",
        "worker-default-low",
        "scheduler",
        "dashboard",
    }


def test_every_service_restarts_and_has_a_healthcheck(compose) -> None:
    for name, service in compose["services"].items():
        assert service.get("restart") in RESTART_POLICIES, name
        healthcheck = service.get("healthcheck")
        assert healthcheck, f"{name} has no healthcheck"
        assert not healthcheck.get("disable"), name
        test = healthcheck["test"]
        assert isinstance(test, list) and test[0] in ("CMD", "CMD-SHELL"), name
        for key in ("interval", "timeout"):
            duration_seconds(healthcheck[key])
        assert duration_seconds(healthcheck["timeout"]) < duration_seconds(healthcheck["interval"]), name


def test_app_services_wait_for_a_healthy_redis(compose, app_services) -> None:
    assert app_services, "no service builds our image"
    for name, service in compose["services"].items():
        depends = service.get("depends_on", {})
        if name == "redis":
            assert not depends
            continue
        assert isinstance(depends, dict), f"{name}: depends_on must use the long form with conditions"
        assert depends.get("redis", {}).get("condition") == "service_healthy", name
        for other, rule in depends.items():
            assert rule.get("condition") == "service_healthy", f"{name} -> {other}"


def test_redis_is_durable_password_protected_and_never_evicts(compose, filled_env) -> None:
    redis = compose["services"]["redis"]
    command = " ".join(command_list(redis))
    assert command.startswith("redis-server ")
    for option in (
        "--appendonly yes",
        "--appendfsync everysec",
        "--maxmemory-policy noeviction",
        f"--requirepass {filled_env['REDIS_PASSWORD']}",
    ):
        assert option in command
    assert any(volume.endswith(":/data") for volume in redis["volumes"])
    named_volume = next(v for v in redis["volumes"] if v.endswith(":/data")).split(":")[0]
    assert named_volume in compose["volumes"], "redis data must live in a named volume"
    assert "ports" not in redis, "Redis must not be published on the host"


def test_app_services_share_redis_url_and_password(app_services, filled_env) -> None:
    for name, service in app_services.items():
        environment = service["environment"]
        assert environment["REDIS_URL"] == "redis://redis:6379/0", name
        assert environment["REDIS_PASSWORD"] == filled_env["REDIS_PASSWORD"], name
        assert service["env_file"] in (".env", [".env"]), name


def test_required_secrets_stop_compose_when_missing(compose_raw) -> None:
    """With .env.example copied as-is (secrets empty) Compose must refuse to start."""
    assert required_variables(compose_raw) == {
        "REDIS_PASSWORD",
        "TELEGRAM_BOT_TOKEN",
        "FACEIT_API_KEY",
        "DASHBOARD_USER",
        "DASHBOARD_PASSWORD",
    }
    with pytest.raises(InterpolationError, match=r"REDIS_PASSWORD|TELEGRAM_BOT_TOKEN|FACEIT_API_KEY"):
        interpolate(compose_raw, env_example_values())


def test_dashboard_publishes_9181_and_requires_credentials(compose_raw, compose, filled_env) -> None:
    dashboard = compose["services"]["dashboard"]
    assert command_list(dashboard) == ["python", "-m", "dashboard"]
    assert dashboard["ports"] == ["127.0.0.1:9181:9181"]
    environment = dashboard["environment"]
    assert environment["QUEUE_DASHBOARD_HOST"] == "0.0.0.0"
    assert environment["QUEUE_DASHBOARD_PORT"] == "9181"
    assert environment["DASHBOARD_USER"] == filled_env["DASHBOARD_USER"]
    assert environment["DASHBOARD_PASSWORD"] == filled_env["DASHBOARD_PASSWORD"]
    raw_environment = compose_raw["services"]["dashboard"]["environment"]
    assert raw_environment["DASHBOARD_PASSWORD"].startswith("${DASHBOARD_PASSWORD:?")
    assert raw_environment["DASHBOARD_USER"].startswith("${DASHBOARD_USER:?")
    without_password = {**filled_env, "DASHBOARD_PASSWORD": ""}
    with pytest.raises(InterpolationError, match="DASHBOARD_PASSWORD"):
        interpolate(compose_raw, without_password)
    # An operator can publish it on the network on purpose.
    exposed = interpolate(compose_raw, {**filled_env, "DASHBOARD_PUBLISH_IP": "0.0.0.0"})
    assert exposed["services"]["dashboard"]["ports"] == ["0.0.0.0:9181:9181"]


def test_only_the_dashboard_publishes_a_port_and_nothing_has_a_fixed_name(compose) -> None:
    for name, service in compose["services"].items():
        assert "container_name" not in service, name
        if name != "dashboard":
            assert "ports" not in service, name


def test_scheduler_runs_two_replicas(compose) -> None:
    scheduler = compose["services"]["scheduler"]
    assert command_list(scheduler) == ["python", "scheduler.py"]
    assert scheduler["deploy"]["replicas"] == 2


def test_bot_runs_once_in_polling_mode(compose) -> None:
    bot = compose["services"]["bot"]
    assert command_list(bot) == ["python", "-m", "bot"]
    assert "deploy" not in bot and "scale" not in bot, "two polling bots conflict on getUpdates"


def _worker_args(service: dict[str, Any]):
    command = command_list(service)
    assert command[0] == "dramatiq"
    return make_argument_parser().parse_args(command[1:])


@pytest.mark.parametrize(
    ("service", "queues"),
    [("worker-high", ["high"]), ("worker-default-low", ["default", "low"])],
)
def test_worker_pools_listen_on_their_queues_only(compose, service, queues) -> None:
    """Parsed by Dramatiq's own CLI parser, so an unknown flag or a misplaced queue fails here."""
    args = _worker_args(compose["services"][service])
    assert args.broker == "actors"
    assert args.modules == []
    assert args.queues == queues
    assert args.processes >= 1 and args.threads >= 1


@pytest.mark.parametrize(
    ("service", "limit_settings"),
    [
        ("worker-high", ["QUEUE_HIGH_PRIORITY_TIMEOUT"]),
        ("worker-default-low", ["QUEUE_DEFAULT_TIMEOUT", "QUEUE_LOW_PRIORITY_TIMEOUT"]),
    ],
)
def test_worker_shutdown_outlasts_the_longest_job(compose, service, limit_settings) -> None:
    """SIGTERM, then running jobs finish (shutdown timeout), then Docker's grace period ends."""
    worker = compose["services"][service]
    longest_job = max(float(settings_defaults()[name]) for name in limit_settings)
    shutdown_timeout = _worker_args(worker).worker_shutdown_timeout / 1000
    grace = duration_seconds(worker["stop_grace_period"])
    assert worker["stop_signal"] == "SIGTERM"
    assert worker["init"] is True, "without an init, SIGTERM may never reach Dramatiq's main process"
    assert longest_job < shutdown_timeout < grace, (longest_job, shutdown_timeout, grace)
    # Headroom after the workers' join for consumers to stop and prefetched messages to requeue.
    assert grace - shutdown_timeout >= 20


def test_scalable_services_share_nothing_per_container(compose) -> None:
    """`--scale worker-high=3` works: no fixed name, hostname or host port on scalable services."""
    for name in SCALABLE:
        service = compose["services"][name]
        for key in ("container_name", "hostname", "ports"):
            assert key not in service, f"{name}.{key} would collide between replicas"


def test_every_interpolated_variable_is_documented(compose_raw) -> None:
    documented = set(env_example_values())
    assert referenced_variables(compose_raw) - documented == set()


def test_logs_are_bounded(compose) -> None:
    for name, service in compose["services"].items():
        options = service.get("logging", {}).get("options", {})
        assert options.get("max-size"), f"{name}: unbounded json-file logs fill the disk"


# Queues whose jobs a deploy must never cut short: users wait for them. Bulk work on `low` may
# run longer than its pool's shutdown timeout (bulk_analysis: 30 min); a stop interrupts it and
# the next worker re-delivers it.
UNINTERRUPTED_QUEUES = {"high", "default"}

_LIST_ACTORS = """
import json, actors
print(json.dumps({name: [actor.queue_name, actor.options.get("time_limit")]
                  for name, actor in actors.broker.actors.items()}))
"""


def test_user_facing_jobs_finish_within_their_pools_shutdown_timeout(compose) -> None:
    """Every actor on high/default (its own time_limit, else its queue's) ends before SIGKILL."""
    if not (ROOT / "actors" / "__init__.py").is_file():
        pytest.skip("actors/__init__.py does not exist yet (test_entrypoints.py reports it)")
    result = subprocess.run([sys.executable, "-c", _LIST_ACTORS], cwd=ROOT, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, f"`import actors` failed:\n{result.stderr[-3000:]}"
    actors = json.loads(result.stdout.strip().splitlines()[-1])
    assert actors, "actors registered no actor"

    defaults = settings_defaults()
    queue_limits = {
        "high": defaults["QUEUE_HIGH_PRIORITY_TIMEOUT"],
        "default": defaults["QUEUE_DEFAULT_TIMEOUT"],
        "low": defaults["QUEUE_LOW_PRIORITY_TIMEOUT"],
    }
    pools = {}
    for name in ("worker-high", "worker-default-low"):
        args = _worker_args(compose["services"][name])
        for queue in args.queues:
            pools[queue] = (name, args.worker_shutdown_timeout / 1000)
    too_long = []
    for actor, (queue, own_limit) in sorted(actors.items()):
        assert queue in pools, f"no worker pool listens on {queue!r} (actor {actor})"
        limit = float(own_limit or queue_limits[queue])
        pool, shutdown_timeout = pools[queue]
        if queue in UNINTERRUPTED_QUEUES and limit >= shutdown_timeout:
            too_long.append(f"{actor} on {queue}: {limit:g}s >= {pool}'s {shutdown_timeout:g}s")
    assert too_long == []
