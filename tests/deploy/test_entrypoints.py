"""Every command compose.yaml runs in our image names a module or script that exists in the repo
(and so in the image: .dockerignore keeps it). Entry points written by others may still be
missing while they work; these tests fail, naming the file, until they exist."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from dramatiq.cli import make_argument_parser

from tests.deploy.deployfiles import (
    ROOT,
    DockerIgnore,
    command_list,
    env_example_values,
    interpolate,
    load_compose,
)

# The entry points docs/design.md fixes, each with the file that must exist for it. admin.py is run
# by operators inside the containers (`docker compose exec worker-high python admin.py status`).
ENTRY_POINTS = {
    "python -m bot": "bot/__main__.py",
    "python -m dashboard": "dashboard/__main__.py",
    "python scheduler.py": "scheduler.py",
    "python admin.py": "admin.py",
    "dramatiq actors": "actors/__init__.py",
}
# Top-level names of our code: an import of one of these in a healthcheck needs its file.
OUR_TOP_LEVEL = {"actors", "bot", "dashboard", "faceit", "middleware", "queues", "sandbox", "settings"}


def module_file(module: str) -> str:
    """The file that makes ``module`` importable: a package's __init__.py or a module file."""
    path = module.replace(".", "/")
    if (ROOT / path).is_dir():
        return f"{path}/__init__.py"
    return f"{path}.py"


def imported_modules(code: str) -> set[str]:
    """Our modules a ``python -c`` program imports."""
    found = set()
    for node in ast.walk(ast.parse(code)):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [node.module]
        found |= {name for name in names if name.split(".")[0] in OUR_TOP_LEVEL}
    return found


def entry_files(command: list[str]) -> list[str]:
    """The repository files a command needs to start (relative paths)."""
    if not command:
        return []
    program = Path(command[0]).name
    if program.startswith("python"):
        args = command[1:]
        if args[:1] == ["-m"]:
            module = args[1]
            if (ROOT / module.replace(".", "/")).is_dir() or "." not in module:
                return [f"{module.replace('.', '/')}/__main__.py"]
            return [module_file(module)]
        if args[:1] == ["-c"]:
            return sorted(module_file(name) for name in imported_modules(args[1]))
        return [args[0]]
    if program == "dramatiq":
        args = make_argument_parser().parse_args(command[1:])
        broker_module = args.broker.split(":", 1)[0]
        return [module_file(name) for name in (broker_module, *args.modules)]
    raise AssertionError(f"unknown program in command {command!r}: add it to this test")


def _commands() -> list[tuple[str, list[str]]]:
    """(label, command) for every service command and healthcheck run in our image, the service
    command as Compose runs it: interpolated with ``.env.example`` (``--threads
    ${QUEUE_WORKER_THREADS:-8}``)."""
    found = []
    for name, service in load_compose()["services"].items():
        if "build" not in service:
            continue  # a third-party image (Redis) brings its own commands
        found.append((f"{name}.command", interpolate(command_list(service), env_example_values())))
        test = service.get("healthcheck", {}).get("test", [])
        if test and test[0] == "CMD":
            found.append((f"{name}.healthcheck", [str(word) for word in test[1:]]))
    return found


COMMANDS = _commands()
SERVICE_COMMANDS = [(label, command) for label, command in COMMANDS if label.endswith(".command")]
HEALTHCHECKS = [(label, command) for label, command in COMMANDS if label.endswith(".healthcheck")]


def test_services_run_the_design_entry_points() -> None:
    files = {file for _, command in SERVICE_COMMANDS for file in entry_files(command)}
    assert files == set(ENTRY_POINTS.values()) - {"admin.py"}


@pytest.mark.parametrize("entry_file", sorted(set(ENTRY_POINTS.values())))
def test_entry_point_exists_in_the_repo_and_the_image(entry_file: str) -> None:
    users = [label for label, command in COMMANDS if entry_file in entry_files(command)] or ["operators"]
    assert (ROOT / entry_file).is_file(), f"{entry_file} does not exist yet (needed by {', '.join(users)})"
    assert not DockerIgnore().excluded(entry_file), f"{entry_file} is left out of the image by .dockerignore"


@pytest.mark.parametrize(("label", "command"), HEALTHCHECKS, ids=[label for label, _ in HEALTHCHECKS])
def test_healthchecks_use_existing_code(label: str, command: list[str]) -> None:
    if command[:2] == ["python", "-c"]:
        compile(command[2], label, "exec")  # a syntax error would make the check always fail
    for file in entry_files(command):
        assert (ROOT / file).is_file(), f"{label} imports {file}, which does not exist"
        assert not DockerIgnore().excluded(file), f"{label} needs {file}, left out by .dockerignore"


def test_dramatiq_cli_is_installed_by_the_requirements() -> None:
    pins = (ROOT / "requirements.txt").read_text(encoding="utf-8")
    assert "dramatiq[" in pins or "\ndramatiq==" in pins
