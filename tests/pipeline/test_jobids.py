"""A typed job id is read one way by the bot and the admin tool (queues.jobids)."""

from __future__ import annotations

import pytest

from queues.jobids import job_ref, whole_job_id

WHOLE = "0adf2eb6-1c2d-4e5f-8a9b-0c1d2e3f4a5b"


@pytest.mark.parametrize("typed", [WHOLE, WHOLE.upper(), f"<{WHOLE}>", f"`{WHOLE}`", f"  {WHOLE}\n"])
def test_a_whole_id_is_read_in_any_case_and_copied_quotes(typed):
    assert whole_job_id(typed) == WHOLE
    assert job_ref(typed) == WHOLE


@pytest.mark.parametrize(("typed", "read"), [("0adf2eb6", "0adf2eb6"), ("0ADF2EB6…", "0adf2eb6"),
                                             ("0adf2eb6...", "0adf2eb6"), ("'0adf2eb6-1c'", "0adf2eb6-1c"),
                                             ("0adf2eb6-", "0adf2eb6-")])
def test_the_start_of_an_id_is_read_without_what_a_copy_adds(typed, read):
    assert job_ref(typed) == read


@pytest.mark.parametrize("typed", ["", "0adf2eb", "zzzzzzzz", "0adf2eb6x", "0adf2eb61c2d", f"{WHOLE}0",
                                   "0adf2eb6*", "no-such-job"])
def test_what_is_no_job_id_is_refused(typed):
    assert job_ref(typed) is None


def test_only_a_whole_id_is_a_cancel_buttons_id():
    assert whole_job_id(WHOLE[:8]) is None and whole_job_id(None) is None and whole_job_id("") is None


@pytest.mark.parametrize("typed", [f"\u200b{WHOLE}", f"{WHOLE}\u200e", f"\ufeff{WHOLE[:8]}\u200b"])
def test_characters_that_show_nothing_are_not_part_of_a_job_id(typed):
    """A job id copied from a message may carry a zero-width space or a direction mark: it was
    "not a job id"."""
    assert job_ref(typed) == WHOLE[:len(typed.strip("\u200b\u200e\ufeff"))]
