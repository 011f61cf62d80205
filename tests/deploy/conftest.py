"""Fixtures for the deployment tests: compose.yaml as written and as Compose would resolve it.

``compose`` is interpolated with ``.env.example`` plus test values for the secrets it leaves
empty, which is exactly what an operator's ``.env`` looks like after ``cp .env.example .env``
and filling in the blanks.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.deploy.deployfiles import env_example_values, interpolate, load_compose

# What an operator fills in; distinctive values so a test can spot them anywhere.
FILLED_SECRETS = {
    "REDIS_PASSWORD": "redis-pass-for-tests",
    "TELEGRAM_BOT_TOKEN": "123456:telegram-token-for-tests",
    "FACEIT_API_KEY": "faceit-key-for-tests",
    "DASHBOARD_USER": "operator",
    "DASHBOARD_PASSWORD": "dashboard-pass-for-tests",
}


@pytest.fixture(scope="session")
def compose_raw() -> dict[str, Any]:
    """compose.yaml before interpolation."""
    return load_compose()


@pytest.fixture(scope="session")
def filled_env() -> dict[str, str]:
    """``.env.example`` with its required secrets filled in."""
    return {**env_example_values(), **FILLED_SECRETS}


@pytest.fixture(scope="session")
def compose(compose_raw: dict[str, Any], filled_env: dict[str, str]) -> dict[str, Any]:
    """compose.yaml as Compose resolves it with a filled-in ``.env``."""
    return interpolate(compose_raw, filled_env)


@pytest.fixture(scope="session")
def app_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services that run our image (everything but third-party images such as Redis)."""
    return {name: svc for name, svc in compose["services"].items() if "build" in svc}
