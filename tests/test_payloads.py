from __future__ import annotations

import pytest

from juggernaut_assets.tasks.payloads import (
    CodePayload,
    PayloadError,
    QueryPayload,
    WorkflowPayload,
    validate_payload,
)


def test_payload_that_is_not_json_is_rejected_with_parser_message():
    with pytest.raises(PayloadError, match="payload is not valid JSON: Expecting"):
        validate_payload(QueryPayload, "{'sql': 1")


def test_payload_must_be_an_object():
    with pytest.raises(PayloadError, match="must be a JSON object, got list"):
        validate_payload(QueryPayload, [1, 2])


def test_missing_fields_are_named():
    with pytest.raises(PayloadError, match=r"missing required field\(s\): sql"):
        validate_payload(QueryPayload, {"query": "SELECT 1"})
    with pytest.raises(PayloadError, match=r"steps\.0\.tool"):
        validate_payload(WorkflowPayload, {"steps": [{"args": {}}]})


def test_payload_over_one_megabyte_is_rejected():
    with pytest.raises(PayloadError, match=r"payload is 1\.1 MB, over the 1 MB limit"):
        validate_payload(QueryPayload, {"sql": "SELECT 1", "pad": "x" * 1_100_000})


def test_unknown_fields_are_kept_and_ignored():
    payload = validate_payload(QueryPayload, '{"sql": "SELECT 1", "note": "keep me"}')
    assert payload.sql == "SELECT 1"
    assert payload.model_extra == {"note": "keep me"}


def test_code_payload_needs_changes_or_instruction():
    with pytest.raises(PayloadError, match="either 'changes'"):
        validate_payload(CodePayload, {"repo": "octo/repo"})
    with pytest.raises(PayloadError, match="repo"):
        validate_payload(CodePayload, {"repo": "not a repo", "instruction": "x"})
