""".env.example against settings.toml: complete, documented, grouped, safe and loadable."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from settings import Settings, load_settings
from tests.deploy.deployfiles import (
    ENV_EXAMPLE,
    as_env_text,
    parse_env_file,
    settings_defaults,
    settings_sections,
)

# Keys whose example value deliberately differs from settings.toml's default, and why.
DEPLOYMENT_VALUES = {
    "REDIS_URL": "redis://redis:6379/0",  # the Compose service, not the developer's localhost
    "DASHBOARD_USER": "admin",  # compose requires a login; a name is not a secret
}
# Keys read by compose.yaml only (not settings): they live in their own last section. RABBITMQ_PASSWORD
# is read by the compose.override.yaml of docs/deploy.md ("Switching the broker to RabbitMQ").
COMPOSE_ONLY = {"APP_IMAGE", "REDIS_MAXMEMORY", "DASHBOARD_PUBLISH_IP", "RABBITMQ_PASSWORD"}
SECRET_SETTINGS = {name.upper() for name, f in Settings.model_fields.items() if f.annotation is SecretStr}


@pytest.fixture(scope="module")
def entries():
    return parse_env_file(ENV_EXAMPLE)


def test_no_key_is_listed_twice(entries) -> None:
    keys = [entry.key for entry in entries]
    assert len(keys) == len(set(keys))


def test_every_setting_is_listed(entries) -> None:
    keys = {entry.key for entry in entries}
    assert set(settings_defaults()) - keys == set()


def test_nothing_unknown_is_listed(entries) -> None:
    keys = {entry.key for entry in entries}
    assert keys - set(settings_defaults()) - COMPOSE_ONLY == set()
    compose_section = [entry for entry in entries if entry.key in COMPOSE_ONLY]
    assert {entry.section for entry in compose_section} == {
        "Compose only (read by compose.yaml, not by the bot)"
    }


def test_every_key_has_a_one_line_comment(entries) -> None:
    for entry in entries:
        assert entry.comment, f"{entry.key} (line {entry.line}) has no comment above it"
        above = ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()[entry.line - 2]
        assert above.startswith("# "), f"{entry.key}: the comment must sit on the line right above"


def test_settings_are_grouped_and_ordered_as_in_settings_toml(entries) -> None:
    listed = [(entry.section, entry.key) for entry in entries if entry.key not in COMPOSE_ONLY]
    expected = [(title, key) for title, keys in settings_sections() for key in keys]
    assert listed == expected


def test_secrets_are_empty_placeholders(entries) -> None:
    assert {"REDIS_PASSWORD", "TELEGRAM_BOT_TOKEN", "FACEIT_API_KEY", "DASHBOARD_PASSWORD"} <= SECRET_SETTINGS
    for entry in entries:
        if entry.key in SECRET_SETTINGS:
            assert entry.value == "", f"{entry.key} must be an empty placeholder in an example file"


def test_examples_equal_the_defaults_unless_deployment_needs_otherwise(entries) -> None:
    """Keeps .env.example from drifting when a default in settings.toml changes."""
    defaults = settings_defaults()
    for entry in entries:
        if entry.key in COMPOSE_ONLY:
            continue
        expected = DEPLOYMENT_VALUES.get(entry.key, as_env_text(defaults[entry.key]))
        assert entry.value == expected, entry.key


def test_example_values_load_as_valid_settings(entries, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every example value passes the settings validation (lists, booleans, literals)."""
    for entry in entries:
        monkeypatch.setenv(entry.key, entry.value)
    settings = load_settings()
    assert settings.redis_url == "redis://redis:6379/0"
    assert settings.queue_retry_delays == [10.0, 30.0, 90.0]
    assert settings.redis_sentinels == []
    assert settings.admin_user_ids == []
    assert settings.queue_enable_monitoring is True
    assert settings.dashboard_user == "admin"
