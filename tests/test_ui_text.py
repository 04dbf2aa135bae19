"""`ui_description`: docstrings as plain UI text."""

from __future__ import annotations

import pytest

from juggernaut_assets.lib.ui_text import ui_description
from juggernaut_assets.sensors import pr_state, scan_tasks


def test_wrapped_lines_join_and_paragraphs_stay_apart():
    doc = """`new_tasks_sensor`: the queue's only entry
    into Dagster.

    Each evaluation (1) gives back tasks,
      (2) relaunches batches.
    """
    assert ui_description(doc) == (
        "new_tasks_sensor: the queue's only entry into Dagster.\n\n"
        "Each evaluation (1) gives back tasks, (2) relaunches batches."
    )


def test_backticks_go_even_when_doubled_and_the_code_stays():
    assert ui_description("Reads ``pr_tracking`` and `lib/merge_policy.py`.") == (
        "Reads pr_tracking and lib/merge_policy.py."
    )


def test_list_items_keep_their_own_lines():
    doc = """Modes:
    - `live`: the network,
      with retries
    - `replay`: recordings
    1. first
    """
    assert ui_description(doc) == (
        "Modes:\n- live: the network, with retries\n- replay: recordings\n1. first"
    )


def test_first_line_flush_with_the_quotes_and_the_rest_indented():
    doc = "Summary on the first line\n        continues here.\n\n        Second paragraph."
    assert ui_description(doc) == "Summary on the first line continues here.\n\nSecond paragraph."


def test_blank_lines_with_spaces_still_separate_paragraphs():
    assert ui_description("one\n   \ntwo\n\n\n\nthree") == "one\n\ntwo\n\nthree"


@pytest.mark.parametrize("doc", [None, "", "   \n\n  "])
def test_nothing_gives_empty_text(doc):
    assert ui_description(doc) == ""


@pytest.mark.parametrize("module", [scan_tasks, pr_state])
def test_sensor_descriptions_are_the_cleaned_module_docstrings(module):
    [sensor] = [v for v in vars(module).values() if hasattr(v, "evaluate_tick")]
    assert sensor.description == ui_description(module.__doc__)
    assert "`" not in sensor.description and "\n\n" in sensor.description
    assert all("\n" not in paragraph for paragraph in sensor.description.split("\n\n"))
