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
