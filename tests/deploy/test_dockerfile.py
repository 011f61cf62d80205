"""Dockerfile and .dockerignore: slim base, non-root, pinned installs, no secrets inside."""

from __future__ import annotations

import re

import pytest

from settings import Settings
from tests.deploy.deployfiles import ROOT, DockerIgnore, Instruction, parse_dockerfile

SECRET_NAMES = re.compile(r"TOKEN|PASSWORD|SECRET|API_KEY|DSN|PRIVATE", re.IGNORECASE)


@pytest.fixture(scope="module")
def instructions() -> list[Instruction]:
    return parse_dockerfile()


@pytest.fixture(scope="module")
def ignore() -> DockerIgnore:
    return DockerIgnore()


def _all(instructions: list[Instruction], keyword: str) -> list[Instruction]:
    return [item for item in instructions if item.keyword == keyword]


def test_single_stage_on_python_311_slim(instructions) -> None:
    froms = _all(instructions, "FROM")
    assert [item.arguments for item in froms] == ["python:3.11-slim"]
    assert instructions[0].keyword == "FROM"


def test_runs_as_a_non_root_user(instructions) -> None:
    users = _all(instructions, "USER")
    assert users, "no USER: the container would run as root"
    final = users[-1].arguments.split(":")[0]
    assert final not in ("root", "0"), final
    assert instructions.index(users[-1]) > max(
        instructions.index(item) for item in instructions if item.keyword in ("RUN", "COPY")
    ), "USER must come after the last RUN/COPY so nothing runs as root at run time"
    created = " ".join(item.arguments for item in _all(instructions, "RUN"))
    assert re.search(rf"useradd\b.*\b{re.escape(final)}\b", created), "the user must be created in the image"


def test_installs_the_pinned_requirements_without_cache(instructions) -> None:
    copies = [item.arguments for item in _all(instructions, "COPY")]
    runs = [item.arguments for item in _all(instructions, "RUN")]
    assert any(re.fullmatch(r"requirements\.txt\s+\S+", copy) for copy in copies), copies
    assert any("pip install --no-cache-dir -r requirements.txt" in run for run in runs), runs
    # Requirements are installed before the code is copied, so code edits reuse the pip layer.
    install = next(i for i, x in enumerate(instructions) if "pip install" in x.arguments)
    code_copy = next(i for i, x in enumerate(instructions) if x.keyword == "COPY" and x.arguments == ". .")
    assert install < code_copy


def test_requirements_are_pinned() -> None:
    for line in (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            assert re.fullmatch(r"[A-Za-z0-9_.\-]+(\[[A-Za-z0-9_,\-]+\])?==[A-Za-z0-9_.\-]+", line), line


def test_no_secrets_are_baked_in(instructions) -> None:
    secret_settings = {n.upper() for n, f in Settings.model_fields.items() if "Secret" in str(f.annotation)}
    for item in instructions:
        if item.keyword in ("ENV", "ARG", "LABEL"):
            assert not SECRET_NAMES.search(item.arguments), f"line {item.line}: {item.arguments}"
            assert not any(name in item.arguments for name in secret_settings), item.arguments
        if item.keyword in ("COPY", "ADD"):
            assert ".env" not in item.arguments.split(), f"line {item.line} copies an env file"


def test_build_context_leaves_out_secrets_and_local_state(ignore) -> None:
    for path in (".env", ".env.production", ".git/config", ".venv/bin/python", "var/redis/dump.rdb",
                 "bot/__pycache__/x.pyc", "test-artifacts/x.png", "bench/results/x.json",
                 "tests/conftest.py"):
        assert ignore.excluded(path), path


def test_build_context_keeps_everything_the_image_runs(ignore) -> None:
    for path in ("requirements.txt", "settings.toml", "settings.py", "admin.py", "scheduler.py",
                 "bot/__main__.py", "dashboard/__main__.py", "actors/__init__.py", "queues/manager.py",
                 "middleware/__init__.py", "faceit/client.py", "sandbox/__init__.py"):
        assert not ignore.excluded(path), path


def test_every_python_module_of_the_repo_reaches_the_image(ignore) -> None:
    """Nothing importable by the app is filtered out by an over-broad pattern."""
    packages = {"actors", "bot", "dashboard", "faceit", "middleware", "queues", "sandbox"}
    paths = [*ROOT.glob("*.py"), *(p for package in packages for p in (ROOT / package).rglob("*.py"))]
    for path in paths:
        relative = path.relative_to(ROOT).as_posix()
        assert not ignore.excluded(relative), relative


def test_default_command_does_not_start_a_role(instructions) -> None:
    """The role is chosen by compose.yaml; a bare `docker run` must not start a second bot."""
    cmd = _all(instructions, "CMD")
    assert cmd and "-m bot" not in cmd[-1].arguments
    assert not _all(instructions, "ENTRYPOINT"), "an ENTRYPOINT would prefix every compose command"
