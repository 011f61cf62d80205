"""Every command compose.yaml runs in our image names a module or script that exists in the repo
(and so in the image: .dockerignore keeps it). Entry points written by others may still be
missing while they work; these tests fail, naming the file, until they exist."""

from __future__ import annotations

from pathlib import Path

import pytest
from dramatiq.cli import make_argument_parser

from tests.deploy.deployfiles import ROOT, DockerIgnore, command_list, load_compose

# The entry points DESIGN.md fixes, each with the file that must exist for it.
EXPECTED_ENTRY_POINTS = {
    "python -m bot": "bot/__main__.py",
    "python -m dashboard": "dashboard/__main__.py",
    "python scheduler.py": "scheduler.py",
    "python admin.py": "admin.py",
    "dramatiq actors": "actors/__init__.py",
}


def module_file(module: str) -> str:
    """The file that makes ``module`` importable: a package's __init__.py or a module file."""
    path = module.replace(".", "/")
    if (ROOT / path).is_dir():
        return f"{path}/__init__.py"
    return f"{path}.py"


def entry_files(command: list[str]) -> list[str]:
    """The repository files a command needs to start (relative paths)."""
    if not command:
        return []
    program = Path(command[0]).name
    if program.startswith("python"):
        args = command[1:]
        if args[:1] == ["-m"]:
            module = args[1]
            package_main = f"{module.replace('.', '/')}/__main__.py"
            return [package_main if (ROOT / module.replace(".", "/")).is_dir() else module_file(module)]
        if args[:1] == ["-c"]:
            return []
        return [args[0]]
    if program == "dramatiq":
        args = make_argument_parser().parse_args(command[1:])
        broker_module = args.broker.split(":", 1)[0]
        return [module_file(name) for name in (broker_module, *args.modules)]
    raise AssertionError(f"unknown program in command {command!r}: add it to this test")


def _commands() -> list[tuple[str, list[str]]]:
    """(label, command) for every service command and healthcheck run in our image."""
    found = []
    for name, service in load_compose()["services"].items():
        if "build" not in service:
            continue  # a third-party image (Redis) brings its own commands
        found.append((f"{name}.command", command_list(service)))
        test = service.get("healthcheck", {}).get("test", [])
        if test and test[0] == "CMD":
            found.append((f"{name}.healthcheck", [str(word) for word in test[1:]]))
    return found


COMMANDS = _commands()


def test_each_design_entry_point_is_used_by_some_service() -> None:
    used = {" ".join(command[:3] if command[:2] == ["python", "-m"] else command[:2])
            for _, command in COMMANDS}
    assert set(EXPECTED_ENTRY_POINTS) <= used, set(EXPECTED_ENTRY_POINTS) - used


def test_entry_point_files_are_what_design_names() -> None:
    for label, command in COMMANDS:
        for file in entry_files(command):
            assert file in EXPECTED_ENTRY_POINTS.values(), f"{label}: {command} needs {file}"


@pytest.mark.parametrize("entry_file", sorted(set(EXPECTED_ENTRY_POINTS.values())))
def test_entry_point_exists_in_the_repo_and_the_image(entry_file: str) -> None:
    users = [label for label, command in COMMANDS if entry_file in entry_files(command)]
    assert (ROOT / entry_file).is_file(), f"{entry_file} does not exist yet (needed by {', '.join(users)})"
    assert not DockerIgnore().excluded(entry_file), f"{entry_file} is left out of the image by .dockerignore"


def test_dramatiq_cli_is_installed_by_the_requirements() -> None:
    pins = (ROOT / "requirements.txt").read_text(encoding="utf-8")
    assert "dramatiq[" in pins or "\ndramatiq==" in pins
