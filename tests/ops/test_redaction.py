"""One masking core (queues.redaction) under the dashboard, the admin tool, job errors, Sentry
and the alert sinks: each of them hides the same secrets."""

from __future__ import annotations

from queues.redaction import Redactor
from queues.sentry import scrub

TOKEN = "7012345678:AAH4-example_token_value_0123456789"  # not a token in force: found by its shape


def test_a_bot_token_inside_a_bot_api_path_is_masked_by_its_shape():
    line = f"POST https://api.telegram.org/bot{TOKEN}/sendMessage failed"
    assert Redactor().text(line) == "POST https://api.telegram.org/bot***/sendMessage failed"
    assert scrub(line, []) == "POST https://api.telegram.org/bot[scrubbed]/sendMessage failed"


def test_a_password_inside_a_url_is_masked_everywhere():
    line = "Error 111 connecting to redis://app:s3cr3t-pass@10.0.0.5:6379/0"
    assert "s3cr3t-pass" not in Redactor().text(line)
    assert scrub(line, []) == "Error 111 connecting to redis://app:[scrubbed]@10.0.0.5:6379/0"


def test_keys_that_name_a_secret_are_hidden_alike():
    record = {"credentials": "x" * 12, "db_password": "y" * 12, "webhook_secret": "z" * 12, "nickname": "s1mple",
              "empty_token": ""}
    shown, sent = Redactor().redact(record), scrub(record, [])
    assert shown == {"credentials": "***", "db_password": "***", "webhook_secret": "***", "nickname": "s1mple",
                     "empty_token": ""}
    assert {key for key, value in sent.items() if value == "[scrubbed]"} == {"credentials", "db_password",
                                                                             "webhook_secret"}


def test_only_sentry_drops_what_users_wrote():
    event = {"extra": {"text": "/player s1mple", "caption": "my chart", "nickname": "s1mple"}}
    assert scrub(event, [])["extra"] == {"text": "[scrubbed]", "caption": "[scrubbed]", "nickname": "s1mple"}
    assert Redactor().redact(event) == event  # the dashboard shows a job's arguments as typed


def test_secret_values_are_masked_longest_first():
    masked = Redactor(["abcd", "abcdefgh"]).text("key=abcdefgh and abcd")
    assert masked == "key=*** and ***"


def test_a_bot_token_cut_short_in_a_bot_api_path_is_masked_in_job_records_too():
    """An error quoting a Bot API URL whose token was cut short (a message cut to a length before it
    reached us) kept the part of the token it had: the log filter masked it, job records did not."""
    line = "GET https://api.telegram.org/bot7012345678:AAH4-exam"
    assert Redactor().text(line) == "GET https://api.telegram.org/bot***"
    assert scrub(line, []) == "GET https://api.telegram.org/bot[scrubbed]"


def test_log_lines_and_task_histories_mask_every_secret_in_force_not_only_the_bot_token(monkeypatch):
    """``error_text`` (the bot's and the scheduler's log lines, the scheduler's task history, alert
    logs) masked the bot token only; job records masked every secret in force. One masking now."""
    from queues.redaction import error_text
    from settings import get_settings

    key, password = "faceit-key-0f9a8b7c6d5e", "r3dis-Pass-word"
    monkeypatch.setenv("FACEIT_API_KEY", key)
    monkeypatch.setenv("REDIS_URL", f"redis://:{password}@127.0.0.1:6399/0")
    get_settings.cache_clear()
    try:
        text = error_text(RuntimeError(f"upstream said: bad key {key}; AUTH {password} refused"), 200,
                          "7012345678:AAH4-example_token_value_0123456789")
    finally:
        get_settings.cache_clear()
    assert key not in text and password not in text, text
    assert text.startswith("upstream said: bad key ***")
