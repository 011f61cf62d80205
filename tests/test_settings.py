"""Settings: defaults from settings.toml, env overrides, one-line errors, hidden secrets."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from settings import SettingsError, load_settings, redact_url

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_come_from_settings_toml(monkeypatch):
    for name in ("QUEUE_RETRY_DELAYS", "QUEUE_MONITORING_INTERVAL"):
        monkeypatch.delenv(name, raising=False)
    s = load_settings()
    assert s.queue_max_workers == 4
    assert s.queue_retry_delays == [10, 30, 90]
    assert (s.queue_high_priority_timeout, s.queue_default_timeout, s.queue_low_priority_timeout) == (180, 300, 600)
    assert (s.queue_result_ttl, s.queue_failure_ttl) == (3600, 86400)
    assert s.queue_dashboard_port == 9181 and s.broker == "redis"


def test_environment_overrides_each_value(monkeypatch):
    monkeypatch.setenv("QUEUE_MAX_WORKERS", "7")
    monkeypatch.setenv("QUEUE_RETRY_DELAYS", "0.1, 0.3,0.9")
    monkeypatch.setenv("ADMIN_USER_IDS", "11,22")
    monkeypatch.setenv("BROKER", "rabbitmq")
    s = load_settings()
    assert s.queue_max_workers == 7
    assert s.queue_retry_delays == [0.1, 0.3, 0.9]
    assert s.admin_user_ids == [11, 22]
    assert s.broker == "rabbitmq"


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("QUEUE_MAX_WORKERS", "abc", "QUEUE_MAX_WORKERS must be a whole number (got 'abc')"),
        ("QUEUE_RETRY_DELAYS", "x", "QUEUE_RETRY_DELAYS must be a comma-separated list of numbers (got 'x')"),
        ("BROKER", "kafka", "BROKER must be one of 'redis' or 'rabbitmq' (got 'kafka')"),
        ("QUEUE_MAX_RETRIES", "-1", "QUEUE_MAX_RETRIES must be at least 0 (got '-1')"),
        ("QUEUE_ENABLE_MONITORING", "perhaps", "QUEUE_ENABLE_MONITORING must be true or false (got 'perhaps')"),
        ("REDIS_URL", "notaurl", "REDIS_URL must be a redis://, rediss:// or unix:// URL (got 'notaurl')"),
        ("REDIS_URL", "http://u:hunter2@h:6379/0", "REDIS_URL must be a redis://, rediss:// or unix:// URL "
                                                   "(got 'http://u:***@h:6379/0')"),
        ("RABBITMQ_URL", "localhost:5672", "RABBITMQ_URL must be an amqp:// or amqps:// URL (got 'localhost:5672')"),
    ],
)
def test_bad_value_is_one_clear_line(monkeypatch, name, value, expected):
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert str(info.value) == expected


@pytest.mark.parametrize("command", [
    [sys.executable, "admin.py", "status"],
    [sys.executable, "-m", "dramatiq", "actors", "--processes", "1", "--threads", "1"],
])
def test_entry_points_stop_with_one_line_and_no_traceback(command):
    env = {**os.environ, "QUEUE_MAX_WORKERS": "abc"}
    out = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "QUEUE_MAX_WORKERS must be a whole number (got 'abc')" in out.stderr
    assert "Traceback" not in out.stderr + out.stdout


def test_secrets_never_appear_in_repr(monkeypatch):
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123456:SECRET-TOKEN-VALUE")
    monkeypatch.setenv("FACEIT_API_KEY", "faceit-secret-key-0001")
    monkeypatch.setenv("REDIS_URL", "redis://:redis-pass-xyz@127.0.0.1:1/0")
    s = load_settings()
    text = repr(s) + str(s)
    for secret in ("SECRET-TOKEN-VALUE", "faceit-secret-key-0001", "redis-pass-xyz"):
        assert secret not in text
    assert "redis-pass-xyz" in s.secret_values() and "faceit-secret-key-0001" in s.secret_values()


@pytest.mark.parametrize("url", [
    "redis://:pw-in-userinfo@127.0.0.1:6379/0",
    "redis://127.0.0.1:6379/0?password=pw-in-query&socket_timeout=5",
    "redis://user:pw-in-userinfo@127.0.0.1:6379/0?password=pw-in-query",
])
def test_a_password_in_the_url_is_hidden_wherever_it_is_written(monkeypatch, url):
    import redis.connection

    monkeypatch.setenv("REDIS_URL", url)
    s = load_settings()
    written = [v for k, v in redis.connection.parse_url(url).items() if "password" in k]
    assert written  # redis-py really reads a password from this form
    shown = redact_url(url) + repr(s)
    assert not any(password in shown for password in written), shown
    assert set(written) <= set(s.secret_values())
    assert "127.0.0.1:6379/0" in redact_url(url)  # the rest stays readable
    if "socket_timeout" in url:
        assert "socket_timeout=5" in redact_url(url)


def test_an_out_of_range_value_names_the_limit(monkeypatch):
    monkeypatch.setenv("QUEUE_DASHBOARD_PORT", "99999")
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert "QUEUE_DASHBOARD_PORT must be at most 65535" in str(info.value)


def test_unknown_key_in_settings_file_is_refused(tmp_path, monkeypatch):
    bad = tmp_path / "settings.toml"
    bad.write_text((ROOT / "settings.toml").read_text() + '\nQUEUE_MAX_WORKRES = 3\n')
    monkeypatch.setenv("SETTINGS_FILE", str(bad))
    with pytest.raises(SettingsError, match=r"QUEUE_MAX_WORKRES in settings\.toml is not a known setting"):
        load_settings()


def test_the_sandbox_token_means_sandbox_mode(monkeypatch):
    from settings import SANDBOX_BOT_TOKEN

    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", SANDBOX_BOT_TOKEN)  # what make run hands its processes
    assert load_settings().sandbox_telegram
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123456:REAL")
    assert not load_settings().sandbox_telegram


def test_readme_documents_every_setting():
    import tomllib

    names = tomllib.loads((ROOT / "settings.toml").read_text()).keys()
    readme = (ROOT / "README.md").read_text()
    missing = [name for name in names if f"`{name}`" not in readme]
    assert not missing, f"README.md does not document {missing}"


def test_every_setting_has_a_comment_and_the_readme_row_says_it():
    """The README's table is settings.toml's defaults and comments: a value glued to its comment
    (no space before '#') once put the comment into the default column and left the meaning empty."""
    import re

    readme = (ROOT / "README.md").read_text()
    for line in (ROOT / "settings.toml").read_text().splitlines():
        found = re.match(r"^([A-Z][A-Z0-9_]*) = (.*?)\s+# (.+)$", line)
        if re.match(r"^[A-Z][A-Z0-9_]* = ", line):
            assert found, f"settings.toml: no '  # meaning' after the value: {line!r}"
            name, value, meaning = found.groups()
            row = f"| `{name}` | `{value}` | {meaning.strip()} |"
            assert row in readme, f"README.md lacks the row {row!r}"



# --- URLs, Sentinel addresses and the settings file: one line, never a traceback ----------------


def _refusal(monkeypatch, name: str, value: str) -> str:
    """The one line settings refuse ``name=value`` with."""
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    return str(info.value)


@pytest.mark.parametrize(("value", "expected"), [
    ("redis://:pw-hidden-1@host:notaport/0",
     "REDIS_URL must be a URL whose port is a number from 1 to 65535 (got 'redis://:***@host:notaport/0')"),
    ("redis://:pw-hidden-1@host:99999/0",
     "REDIS_URL must be a URL whose port is a number from 1 to 65535 (got 'redis://:***@host:99999/0')"),
    ("redis://:pw-hidden-1@host:6379/zero",
     "REDIS_URL must be a URL whose path is a database number, like /0 (got 'redis://:***@host:6379/zero')"),
    ("redis://host:6379/0?socket_timeout=soon",
     "REDIS_URL must be a URL redis-py can read (Invalid value for 'socket_timeout' in connection URL) "
     "(got 'redis://host:6379/0?socket_timeout=soon')"),
    ("redis://[::1/0", "REDIS_URL must be a redis://, rediss:// or unix:// URL (got '<invalid url>')"),
    # redis-py passes an option it does not know on, and the first connection raised a TypeError
    ("redis://:pw-hidden-1@host:6379/0?foo=bar",
     "REDIS_URL must be a URL redis-py can read (unknown option 'foo') (got 'redis://:***@host:6379/0?foo=bar')"),
    # (Sentinels are contacted without a password: no process of ours ever read this one)
    ("redis://:pw-hidden-1@host:6379/0?sentinel_password=pw-hidden-2",
     "REDIS_URL must be a URL redis-py can read (unknown option 'sentinel_password') "
     "(got 'redis://:***@host:6379/0?sentinel_password=***')"),
    ("unix:///run/redis.sock?db=1&ssl_cert_reqs=none",
     "REDIS_URL must be a URL redis-py can read (unknown option 'ssl_cert_reqs') "
     "(got 'unix:///run/redis.sock?db=1&ssl_cert_reqs=none')"),
])
def test_a_redis_url_redis_py_cannot_use_is_refused_without_its_password(monkeypatch, value, expected):
    assert _refusal(monkeypatch, "REDIS_URL", value) == expected


@pytest.mark.parametrize("value", [
    "rediss://:pw@host:6380/0?ssl_cert_reqs=none&socket_timeout=3&max_connections=20&health_check_interval=10"
    "&client_name=bot&protocol=3",
    "unix:///run/redis.sock?db=2&socket_timeout=1",
    "redis://host:6379/0?retry_on_timeout=true&socket_connect_timeout=2",
])
def test_a_redis_url_with_options_redis_py_takes_is_accepted(monkeypatch, value):
    monkeypatch.setenv("REDIS_URL", value)
    assert load_settings().redis_url == value


@pytest.mark.parametrize("name", ["WEBHOOK_URL", "DASHBOARD_PUBLIC_URL"])
def test_an_optional_address_is_checked_when_given(monkeypatch, name):
    """Empty means unused; given, it must be an address the code can use (a missing scheme was
    found only at the first request, or never, as every form from the proxy was refused)."""
    assert _refusal(monkeypatch, name, "dash.example.com") == (
        f"{name} must be an http:// or https:// URL with a host (got 'dash.example.com')")
    monkeypatch.setenv(name, "")
    assert getattr(load_settings(), name.lower()) == ""


BAD_REDIS_URL = "redis://:pw-never-shown@127.0.0.1:99999/0"


@pytest.mark.parametrize("command", [
    [sys.executable, "admin.py", "status"],
    [sys.executable, "-m", "dashboard"],
    [sys.executable, "scheduler.py"],
    [sys.executable, "-m", "dramatiq", "actors", "--processes", "1", "--threads", "1"],
])
def test_a_bad_redis_port_stops_every_entry_point_with_one_line(command):
    env = {**os.environ, "REDIS_URL": BAD_REDIS_URL}
    out = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "REDIS_URL must be a URL whose port is a number from 1 to 65535" in out.stderr
    assert "Traceback" not in out.stderr + out.stdout and "pw-never-shown" not in out.stderr + out.stdout


def test_a_sentinel_without_a_port_is_on_sentinels_port(monkeypatch):
    from queues.connection import _sentinel_hosts, redis_client

    monkeypatch.setenv("REDIS_SENTINELS", "sentinel-a, sentinel-b:26380,[::1]:26381")
    monkeypatch.setenv("REDIS_SENTINEL_MASTER", "mymaster")
    s = load_settings()
    assert _sentinel_hosts(s) == [("sentinel-a", 26379), ("sentinel-b", 26380), ("::1", 26381)]
    redis_client(s).close()  # builds (connects lazily)


@pytest.mark.parametrize(("value", "expected"), [
    ("sentinel-a:port", "REDIS_SENTINELS must be a comma-separated list of host or host:port, "
                        "each port from 1 to 65535 (got 'sentinel-a:port')"),
    ("sentinel-a:70000", "REDIS_SENTINELS must be a comma-separated list of host or host:port, "
                         "each port from 1 to 65535 (got 'sentinel-a:70000')"),
    (":26379", "REDIS_SENTINELS must be a comma-separated list of host or host:port (got ':26379')"),
])
def test_a_bad_sentinel_address_is_one_line(monkeypatch, value, expected):
    assert _refusal(monkeypatch, "REDIS_SENTINELS", value) == expected


def test_a_settings_file_that_is_a_directory_or_not_utf8_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("SETTINGS_FILE", str(tmp_path))
    with pytest.raises(SettingsError, match=f"^settings file {tmp_path} is a directory, not a file$"):
        load_settings()
    latin = tmp_path / "latin1.toml"
    latin.write_bytes(b'SENTRY_ENVIRONMENT = "b\xe9ta"\n')
    monkeypatch.setenv("SETTINGS_FILE", str(latin))
    with pytest.raises(SettingsError, match=f"^settings file {latin} is not UTF-8 text \\(byte 23\\)$"):
        load_settings()


# --- values that pass the type but fail later: infinities, huge TTLs, bad list items ------------


@pytest.mark.parametrize(("name", "value", "expected"), [
    ("SCHEDULER_LOCK_TTL", "inf", "SCHEDULER_LOCK_TTL must be a finite number (got 'inf')"),
    ("QUEUE_HEARTBEAT_TIMEOUT", "nan", "QUEUE_HEARTBEAT_TIMEOUT must be a finite number (got 'nan')"),
    ("ALERT_FAILURE_RATE", "nan", "ALERT_FAILURE_RATE must be a finite number (got 'nan')"),
    ("QUEUE_RESULT_TTL", "99999999999999999999",
     "QUEUE_RESULT_TTL must be at most 315360000 (ten years) (got '99999999999999999999')"),
    ("FACEIT_CACHE_FAILURE_TTL", "1e300", "FACEIT_CACHE_FAILURE_TTL must be at most 315360000 (ten years) "
                                          "(got '1e300')"),
    ("QUEUE_RETRY_DELAYS", "10,-5",
     "QUEUE_RETRY_DELAYS must be a comma-separated list of numbers, each at least 0 (got '-5')"),
    ("QUEUE_RETRY_DELAYS", "10,nan", "QUEUE_RETRY_DELAYS must be a comma-separated list of finite numbers "
                                     "(got 'nan')"),
    ("QUEUE_RETRY_DELAYS", "inf", "QUEUE_RETRY_DELAYS must be a comma-separated list of finite numbers "
                                  "(got 'inf')"),
    ("ADMIN_USER_IDS", "12,-3",
     "ADMIN_USER_IDS must be a comma-separated list of whole numbers, each more than 0 (got '-3')"),
])
def test_values_that_would_fail_later_are_refused_at_once(monkeypatch, name, value, expected):
    assert _refusal(monkeypatch, name, value) == expected


def test_the_scheduler_stops_with_one_line_on_an_infinite_lock_ttl():
    env = {**os.environ, "SCHEDULER_LOCK_TTL": "inf"}
    out = subprocess.run([sys.executable, "scheduler.py"], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 2
    assert out.stderr.strip() == "settings error: SCHEDULER_LOCK_TTL must be a finite number (got 'inf')"


@pytest.mark.parametrize(("overrides", "expected"), [
    ({"queue_retry_delays": 10}, "QUEUE_RETRY_DELAYS must be a comma-separated list (got 10)"),
    ({"queue_name_prefix": 5}, "QUEUE_NAME_PREFIX must be text (got 5)"),
    ({"queue_max_workers": [1]}, "QUEUE_MAX_WORKERS must be a whole number (got [1])"),
])
def test_every_kind_of_error_reads_as_one_sentence(overrides, expected):
    with pytest.raises(SettingsError) as info:
        load_settings(**overrides)
    assert str(info.value) == expected


@pytest.mark.parametrize(("line", "expected"), [
    ("QUEUE_MAX_WORKERS = true", "QUEUE_MAX_WORKERS in settings.toml must be a whole number (no quotes) (got True)"),
    ('QUEUE_MAX_WORKERS = "4"', "QUEUE_MAX_WORKERS in settings.toml must be a whole number (no quotes) (got '4')"),
    ("QUEUE_WORKER_TTL = 2.5", "QUEUE_WORKER_TTL in settings.toml must be a whole number (no quotes) (got 2.5)"),
    ('QUEUE_ENABLE_MONITORING = "yes"',
     "QUEUE_ENABLE_MONITORING in settings.toml must be true or false (no quotes) (got 'yes')"),
    ("ADMIN_USER_IDS = [true]", "ADMIN_USER_IDS in settings.toml must be a list of whole numbers in [ ] (got [True])"),
    ("QUEUE_RETRY_DELAYS = 10", "QUEUE_RETRY_DELAYS in settings.toml must be a list of numbers in [ ] (got 10)"),
    ("QUEUE_NAME_PREFIX = 5", "QUEUE_NAME_PREFIX in settings.toml must be a quoted string (got 5)"),
    ("DASHBOARD_PASSWORD = 123456", "DASHBOARD_PASSWORD in settings.toml must be a quoted string"),
])
def test_settings_toml_values_must_have_the_settings_type(tmp_path, monkeypatch, line, expected):
    name = line.split()[0]
    monkeypatch.delenv(name, raising=False)
    kept = [row for row in (ROOT / "settings.toml").read_text().splitlines() if not row.startswith(f"{name} ")]
    bad = tmp_path / "settings.toml"
    bad.write_text("\n".join([*kept, line]) + "\n")
    monkeypatch.setenv("SETTINGS_FILE", str(bad))
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert str(info.value) == expected
    assert "123456" not in str(info.value)


def test_settings_toml_numbers_of_either_kind_still_fit_a_float(tmp_path, monkeypatch):
    monkeypatch.delenv("QUEUE_RETRY_DELAYS", raising=False)
    kept = [row for row in (ROOT / "settings.toml").read_text().splitlines() if not row.startswith("QUEUE_RETRY")]
    good = tmp_path / "settings.toml"
    good.write_text("\n".join([*kept, "QUEUE_RETRY_DELAYS = [1, 2.5]"]) + "\n")
    monkeypatch.setenv("SETTINGS_FILE", str(good))
    assert load_settings().queue_retry_delays == [1, 2.5]


@pytest.mark.parametrize(("name", "value", "expected"), [
    ("SENTRY_DSN", "nonsense", "SENTRY_DSN must be a Sentry DSN, https://<key>@<host>/<project number> "
                               "(or empty: no Sentry)"),
    ("SENTRY_DSN", "https://abcdef0123456789@o1.ingest.sentry.io/notanumber",
     "SENTRY_DSN must be a Sentry DSN, https://<key>@<host>/<project number> (or empty: no Sentry)"),
    ("DASHBOARD_TOKEN", "short", "DASHBOARD_TOKEN must be at least 16 characters (or empty: no token)"),
])
def test_secrets_sentry_and_the_dashboard_would_refuse_are_refused_at_once_unsaid(monkeypatch, name, value, expected):
    """A bad DSN stopped every process with a traceback, a short token the dashboard: each over and
    over under ``make run``. Refused here, in one line that does not repeat the secret."""
    message = _refusal(monkeypatch, name, value)
    assert message == expected and value not in message
    monkeypatch.setenv(name, "https://abcdef0123456789@o1.ingest.sentry.io/42" if name == "SENTRY_DSN" else "x" * 16)
    load_settings()


@pytest.mark.parametrize("value", ["proxy.internal", "10.0.0.0/33", "10.0.0.2:8080", "10.0.0.2 10.0.0.3",
                                   "127.0.0.1, ::1/129"])
def test_dashboard_trusted_proxies_are_addresses_or_networks(monkeypatch, value):
    """A host name or a typo would leave the login throttle keyed on the proxy, silently: refused
    at start instead, in one line naming the setting."""
    assert _refusal(monkeypatch, "DASHBOARD_TRUSTED_PROXIES", value) == (
        "DASHBOARD_TRUSTED_PROXIES must be a comma-separated list of IP addresses or CIDR networks, "
        f"like 10.0.0.2 or 172.16.0.0/12 (got {value!r})")
    monkeypatch.setenv("DASHBOARD_TRUSTED_PROXIES", " 10.0.0.2, 172.16.0.0/12,::1 ")
    assert load_settings().dashboard_trusted_proxies == ["10.0.0.2", "172.16.0.0/12", "::1"]
    monkeypatch.delenv("DASHBOARD_TRUSTED_PROXIES")
    assert load_settings().dashboard_trusted_proxies == []  # settings.toml: trust no header


# --- a password with '/', '#' or '?' written unescaped: never in any message -------------------

#: Each URL's password has a character that ends the host part for every URL parser, which then
#: finds no password to hide (and a "port" made of part of it).
UNESCAPED_PASSWORD_URLS = [
    ("REDIS_URL", "redis://:Xy7/Pq+Zr9@cache.internal:6379/0"),
    ("REDIS_URL", "redis://default:Ab#cd3fG@h:6379/0"),
    ("REDIS_URL", "redis://:s3cr?et@h:6379"),
    ("RABBITMQ_URL", "amqp://bot:Xy7/Pq+Zr9@mq:5672/"),
]
PASSWORD_PIECES = ("Pq+Zr9", "Xy7", "cd3fG", "s3cr", "Ab#", "?et")


def _no_password_piece(text: str) -> None:
    leaked = [piece for piece in PASSWORD_PIECES if piece in text]
    assert not leaked, text


def _settings_file_with(tmp_path: Path, line: str) -> Path:
    name = line.split()[0]
    kept = [row for row in (ROOT / "settings.toml").read_text().splitlines() if not row.startswith(f"{name} ")]
    path = tmp_path / "settings.toml"
    path.write_text("\n".join([*kept, line]) + "\n")
    return path


@pytest.mark.parametrize(("name", "url"), UNESCAPED_PASSWORD_URLS)
def test_an_unescaped_slash_hash_or_question_mark_in_a_password_never_reaches_the_message(
        tmp_path, monkeypatch, name, url):
    if name == "RABBITMQ_URL":
        monkeypatch.setenv("BROKER", "rabbitmq")
    message = _refusal(monkeypatch, name, url)  # from the environment
    _no_password_piece(message)
    assert message.startswith(f"{name} must be a URL whose port is a number from 1 to 65535; any '/', '?' "
                              "or '#' in a password must be written as %2F, %3F or %23 (got '")
    assert ":***@" in message
    monkeypatch.delenv(name)  # from settings.toml: the same check, the same message
    monkeypatch.setenv("SETTINGS_FILE", str(_settings_file_with(tmp_path, f"{name} = {url!r}".replace("'", '"'))))
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert str(info.value) == message
    # settings.toml holding the URL with the wrong TOML type: said with the value, but masked
    monkeypatch.setenv("SETTINGS_FILE", str(_settings_file_with(tmp_path, f'{name} = ["{url}"]')))
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert str(info.value).startswith(f"{name} in settings.toml must be a quoted string (got [")
    _no_password_piece(str(info.value))


@pytest.mark.parametrize("value", ["redis:/:Xy7/Pq+Zr9@cache.internal:6379/0", ":Xy7/Pq+Zr9@cache.internal:6379/0"])
def test_a_url_setting_written_without_its_scheme_hides_what_stands_before_the_at(monkeypatch, value):
    message = _refusal(monkeypatch, "REDIS_URL", value)
    assert message.startswith("REDIS_URL must be ") and message.endswith("(got '***@cache.internal:6379/0')")
    _no_password_piece(message)


def test_a_url_that_loads_with_part_of_its_password_read_as_a_port_shows_none_of_it(monkeypatch):
    """``bot:1234/Pq+Zr9@mq`` parses as host ``bot``, port 1234: the settings load, and neither
    their repr nor a redacted URL may show the rest of the password; scrubbers get all of it."""
    monkeypatch.setenv("BROKER", "rabbitmq")
    monkeypatch.setenv("RABBITMQ_URL", "amqp://bot:1234/Pq+Zr9@mq:5672/")
    s = load_settings()
    shown = repr(s) + str(s) + redact_url(s.rabbitmq_url)
    assert "Pq+Zr9" not in shown and "1234" not in shown, shown
    assert redact_url(s.rabbitmq_url) == "amqp://bot:***@mq:5672/"
    assert "1234/Pq+Zr9" in s.secret_values()


@pytest.mark.parametrize("url", [
    "redis://:pw@h:6379/0?password=ab#cd3fG&socket_timeout=5",
    "redis://:Xy7%2FPq+Zr9@h:6379/0",
])
def test_query_passwords_and_escaped_passwords_are_hidden_as_written(url):
    shown = redact_url(url)
    _no_password_piece(shown)
    assert shown.startswith("redis://:***@h:6379/0")


@pytest.mark.parametrize("command", [[sys.executable, "admin.py", "status"], [sys.executable, "supervisor.py"]])
@pytest.mark.parametrize(("name", "url"), UNESCAPED_PASSWORD_URLS)
def test_the_admin_tool_and_the_supervisor_say_the_refusal_without_the_password(command, name, url):
    env = {**os.environ, name: url, "BROKER": "rabbitmq" if name == "RABBITMQ_URL" else "redis"}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2, done.stderr
    assert f"{name} must be a URL whose port is a number" in done.stderr
    _no_password_piece(done.stdout + done.stderr)


def test_a_bracket_in_a_password_neither_breaks_the_message_nor_shows_in_it(monkeypatch):
    """``[`` makes urlsplit take the password for an IPv6 address and raise: the refusal is
    still one sentence, with the URL shown masked."""
    message = _refusal(monkeypatch, "REDIS_URL", "redis://:Xy[7/Pq+Zr9@h:6379/0")
    assert message == ("REDIS_URL must be a redis://, rediss:// or unix:// URL; any '/', '?' or '#' in a "
                       "password must be written as %2F, %3F or %23 (got 'redis://:***@h:6379/0')")


@pytest.mark.parametrize("url", ["redis://h:6379/0?client_name=a@b&password=hunter22",
                                 "redis://h:99999/0?client_name=a@b&password=hunter22"])
def test_a_password_parameter_after_an_at_sign_in_the_query_is_masked(monkeypatch, url):
    """An '@' in the query made everything before it look like credentials, the '?' included, so
    the password parameters after it were no longer read as the query's and were shown."""
    from settings import redact_url

    assert "hunter22" not in redact_url(url) and "password=***" in redact_url(url)
    if ":99999/" in url:  # refused: the message shows the URL masked
        message = _refusal(monkeypatch, "REDIS_URL", url)
        assert "hunter22" not in message and "password=***" in message, message


def test_rabbitmqs_public_default_account_is_no_secret_but_a_real_password_is():
    """The default RABBITMQ_URL (guest:guest, RabbitMQ's own account) made "guest" a secret in
    force, on either broker: every error text and log line read "***" for the word."""
    assert "guest" not in load_settings(rabbitmq_url="amqp://guest:guest@127.0.0.1:5672/").secret_values()
    assert "s3cret-rabbit" in load_settings(rabbitmq_url="amqp://app:s3cret-rabbit@mq:5672/").secret_values()

