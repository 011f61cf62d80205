"""Readers for the deployment files, shared by the tests of ``tests/deploy``.

Docker is not available where the tests run, so the parts of Docker and Compose that the tests
rely on are re-implemented here, small and strict: Compose variable interpolation, ``.env``
parsing, duration strings, ``.dockerignore`` matching and Dockerfile instructions. Each follows
the documented rules of the real tool closely enough for the files of this repository.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
ENV_EXAMPLE = ROOT / ".env.example"
SETTINGS_TOML = ROOT / "settings.toml"


# --- Compose --------------------------------------------------------------------------------


def load_compose(text: str | None = None) -> dict[str, Any]:
    """compose.yaml as plain data (YAML anchors and ``<<`` merges resolved, no interpolation)."""
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8") if text is None else text)
    assert isinstance(data, dict), "compose.yaml must be a mapping"
    return data


class InterpolationError(Exception):
    """A required variable (``${VAR:?message}``) is missing; carries Compose's message."""


_VARIABLE = re.compile(
    r"""\$(?:
        (?P<escaped>\$) |
        (?P<plain>[A-Za-z_][A-Za-z0-9_]*) |
        \{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}
    )""",
    re.VERBOSE,
)


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Apply Compose interpolation to every string of ``value`` (keys are left alone).

    Supports ``$$``, ``$VAR``, ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``,
    ``${VAR:?error}``, ``${VAR?error}``, ``${VAR:+alt}`` and ``${VAR+alt}``; an unset plain
    variable becomes the empty string, as in Compose.
    """
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match.group("escaped"):
            return "$"
        if match.group("plain"):
            return env.get(match.group("plain"), "")
        name, op, arg = match.group("name"), match.group("op"), match.group("arg") or ""
        is_set = name in env
        is_filled = bool(env.get(name))
        present = is_filled if op and op.startswith(":") else is_set
        if op in (":-", "-"):
            return env[name] if present else arg
        if op in (":?", "?"):
            if not present:
                raise InterpolationError(f"required variable {name} is missing a value: {arg}")
            return env[name]
        if op in (":+", "+"):
            return arg if present else ""
        return env.get(name, "")

    return _VARIABLE.sub(substitute, value)


def _strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [text for item in value.values() for text in _strings(item)]
    if isinstance(value, list):
        return [text for item in value for text in _strings(item)]
    return [value] if isinstance(value, str) else []


def referenced_variables(value: Any) -> set[str]:
    """Names of every variable ``value`` interpolates (``$$`` escapes are not variables)."""
    return {
        match.group("plain") or match.group("name")
        for text in _strings(value)
        for match in _VARIABLE.finditer(text)
        if not match.group("escaped")
    }


def required_variables(value: Any) -> set[str]:
    """Names interpolated with ``:?``/``?`` (Compose stops when they are empty or unset)."""
    return {
        match.group("name")
        for text in _strings(value)
        for match in _VARIABLE.finditer(text)
        if (match.group("op") or "").endswith("?")
    }


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(us|ms|h|m|s)")
_DURATION_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def duration_seconds(text: str) -> float:
    """A Compose duration (``1m30s``, ``240s``, ``500ms``) in seconds."""
    text = str(text).strip()
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(number + unit for number, unit in parts) != text:
        raise ValueError(f"not a Compose duration: {text!r}")
    return sum(float(number) * _DURATION_UNITS[unit] for number, unit in parts)


def command_list(service: dict[str, Any]) -> list[str]:
    """A service's command as an argument list (Compose splits a string command like a shell)."""
    command = service.get("command")
    if command is None:
        return []
    if isinstance(command, str):
        import shlex

        return shlex.split(command)
    return [str(part) for part in command]


# --- .env files -----------------------------------------------------------------------------


@dataclass(frozen=True)
class EnvEntry:
    """One ``KEY=value`` line of an env file, with the comment block right above it."""

    key: str
    value: str
    comment: str
    line: int
    section: str


_ENV_LINE = re.compile(r"^(?P<key>[A-Za-z_][A-Za-z0-9_]*)=(?P<value>.*)$")
_SECTION = re.compile(r"^#\s*---\s*(?P<title>.+?)\s*-*\s*$")


def parse_env_file(path: Path = ENV_EXAMPLE) -> list[EnvEntry]:
    """The entries of a dotenv file, strictly: anything that is not blank, a comment or
    ``KEY=value`` is an error (Compose would reject or misread it)."""
    entries: list[EnvEntry] = []
    comment: list[str] = []
    section = ""
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line:
            comment = []
            continue
        if line.startswith("#"):
            heading = _SECTION.match(line)
            if heading:
                section = heading.group("title")
                comment = []
            else:
                comment.append(line.lstrip("#").strip())
            continue
        match = _ENV_LINE.match(line)
        if not match:
            raise ValueError(f"{path.name}:{number}: not KEY=value: {raw!r}")
        value = match.group("value")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        entries.append(EnvEntry(match.group("key"), value, " ".join(comment), number, section))
        comment = []
    return entries


def env_example_values() -> dict[str, str]:
    return {entry.key: entry.value for entry in parse_env_file(ENV_EXAMPLE)}


# --- settings.toml ----------------------------------------------------------------------------


def settings_defaults() -> dict[str, Any]:
    return tomllib.loads(SETTINGS_TOML.read_text(encoding="utf-8"))


def settings_sections() -> list[tuple[str, list[str]]]:
    """settings.toml's ``# --- Title ---`` sections in order, each with its keys in order."""
    sections: list[tuple[str, list[str]]] = []
    for raw in SETTINGS_TOML.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        heading = _SECTION.match(line)
        if heading:
            sections.append((heading.group("title"), []))
            continue
        match = re.match(r"^([A-Z_][A-Z0-9_]*)\s*=", line)
        if match:
            if not sections:
                sections.append(("", []))
            sections[-1][1].append(match.group(1))
    return sections


def as_env_text(value: Any) -> str:
    """How a settings.toml value is written in the environment (lists comma-separated)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(as_env_text(item) for item in value)
    return str(value)


# --- Dockerfile and .dockerignore ------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str
    line: int


def parse_dockerfile(path: Path = DOCKERFILE) -> list[Instruction]:
    """Dockerfile instructions with continuation lines joined and comments dropped."""
    instructions: list[Instruction] = []
    pending = ""
    start = 0
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.rstrip()
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if pending and line.lstrip().startswith("#"):
            continue
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        pending += line.strip()
        keyword, _, arguments = pending.partition(" ")
        instructions.append(Instruction(keyword.upper(), arguments.strip(), start))
        pending = ""
    assert not pending, "Dockerfile ends inside a continued line"
    return instructions


def _dockerignore_regex(pattern: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
            continue
        if pattern.startswith("**", i):
            out += ".*"
            i += 2
            continue
        out += {"*": "[^/]*", "?": "[^/]"}.get(char, re.escape(char))
        i += 1
    return re.compile(out + r"\Z")


class DockerIgnore:
    """``.dockerignore`` semantics: patterns relative to the context root, ``**`` spans
    directories, ``!`` re-includes, the last matching pattern wins, and an excluded directory
    excludes everything below it."""

    def __init__(self, path: Path = DOCKERIGNORE) -> None:
        self.rules: list[tuple[bool, re.Pattern[str]]] = []
        for raw in path.read_text(encoding="utf-8").splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            negate = line.startswith("!")
            pattern = line[1:].strip() if negate else line
            pattern = pattern.strip("/")
            self.rules.append((negate, _dockerignore_regex(pattern)))

    def excluded(self, relative: str) -> bool:
        parts = relative.strip("/").split("/")
        candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        verdict = False
        for negate, regex in self.rules:
            if any(regex.match(candidate) for candidate in candidates):
                verdict = not negate
        return verdict
