"""compose.yaml against the Compose specification's JSON schema (as vendored by check-jsonschema).

No Docker engine runs here, so the schema is the authority on what Compose accepts. The file is
checked as written (interpolation placeholders in place) and as resolved with a filled-in .env.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.deploy.deployfiles import COMPOSE_FILE

VENV_BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def compose_validator() -> jsonschema.protocols.Validator:
    schema_file = resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = json.loads(schema_file.read_text(encoding="utf-8"))
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema)


def _errors(validator: jsonschema.protocols.Validator, document: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


def test_check_jsonschema_cli_accepts_compose_file() -> None:
    """The exact check the issue names: check-jsonschema with its vendored compose-spec."""
    cli = VENV_BIN / "check-jsonschema"
    result = subprocess.run(
        [str(cli), "--builtin-schema", "vendor.compose-spec", str(COMPOSE_FILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok" in result.stdout


def test_raw_compose_file_matches_schema(compose_validator, compose_raw) -> None:
    assert _errors(compose_validator, compose_raw) == []


def test_resolved_compose_file_matches_schema(compose_validator, compose) -> None:
    assert _errors(compose_validator, compose) == []


def test_schema_rejects_a_misspelt_service_key(compose_validator, compose_raw) -> None:
    """Control: the validator really checks service keys (a typo must not pass silently)."""
    broken = copy.deepcopy(compose_raw)
    broken["services"]["redis"]["stop_grace_perod"] = "10s"
    assert any("stop_grace_perod" in error for error in _errors(compose_validator, broken))


def test_no_obsolete_version_key(compose_raw) -> None:
    assert "version" not in compose_raw
