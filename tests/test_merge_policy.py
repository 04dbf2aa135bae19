"""The merge policy and the GraphQL query, as pure functions with hand-built answers."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from juggernaut_assets.lib.github_urls import graphql_url_for, same_origin
from juggernaut_assets.lib.merge_policy import (
    MAX_MERGE_ATTEMPTS,
    Action,
    MergePolicy,
    Tracked,
    decide,
)
from juggernaut_assets.lib.pr_query import (
    Check,
    ObservedPr,
    PrRef,
    build_query,
    chunks,
    parse_answer,
    parse_pull_request,
)

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
HEAD = "a" * 40
MERGE = MergePolicy(may_merge=True, max_age=timedelta(hours=168))
FOLLOW = dataclasses.replace(MERGE, may_merge=False)
PASSED = (Check("ci", "pass", "SUCCESS"), Check("lint", "pass", "SUCCESS"))


def tracked(**changes: object) -> Tracked:
    base = Tracked(
        key="k",
        repo="acme/app",
        number=7,
        task_id="t",
        task_status="awaiting_pr_merge",
        base="main",
        progress_at=NOW - timedelta(hours=1),
    )
    return dataclasses.replace(base, **changes)


def seen(**changes: object) -> ObservedPr:
    base = ObservedPr(
        repo="acme/app",
        number=7,
        node_id="PR_7",
        state="open",
        is_draft=False,
        mergeable=True,
        merge_state="clean",
        review_decision="APPROVED",
        head_sha=HEAD,
        head_ref="juggernaut/abc",
        base_ref="main",
        checks=PASSED,
    )
    return dataclasses.replace(base, **changes)


def test_clean_approved_pull_request_with_passing_checks_is_merged() -> None:
    decision = decide(tracked(), seen(), MERGE, NOW)
    assert decision.action is Action.MERGE
    assert HEAD[:12] in decision.reason


def test_reviews_not_required_and_checks_passing_is_merged() -> None:
    assert decide(tracked(), seen(review_decision=None), MERGE, NOW).action is Action.MERGE


@pytest.mark.parametrize(
    ("observed", "category"),
    [
        (seen(checks=()), "no checks"),
        (seen(checks=(Check("ci", "fail", "FAILURE"),)), "checks failing"),
        (seen(checks=(Check("ci", "pending", "IN_PROGRESS"),)), "checks pending"),
        (seen(checks=(Check("ci", "pass", "SKIPPED"),)), "checks pending"),
        (seen(checks_for_head=False), "checks pending"),
        (seen(checks_truncated=True), "checks pending"),
        (seen(is_draft=True), "draft"),
        (seen(review_decision="REVIEW_REQUIRED"), "awaiting review"),
        (seen(review_decision="CHANGES_REQUESTED"), "awaiting review"),
        (seen(merge_state="blocked"), "blocked"),
        (seen(merge_state="unstable"), "unstable"),
        (seen(merge_state="unknown"), "mergeability unknown"),
    ],
)
def test_pull_request_that_is_not_ready_is_never_merged(
    observed: ObservedPr, category: str
) -> None:
    decision = decide(tracked(), observed, MERGE, NOW)
    assert decision.action is Action.WAIT
    assert decision.category == category


def test_repository_outside_automerge_list_is_followed_not_merged() -> None:
    decision = decide(tracked(), seen(), FOLLOW, NOW)
    assert decision.action is Action.WAIT
    assert "JUGGERNAUT_AUTOMERGE_REPOS" in decision.reason


def test_failing_checks_are_named_in_the_reason() -> None:
    checks = (Check("unit", "fail", "FAILURE"), Check("e2e", "fail", "TIMED_OUT"), PASSED[0])
    decision = decide(tracked(), seen(checks=checks), MERGE, NOW)
    assert decision.reason.endswith("e2e, unit")


def test_merged_and_closed_pull_requests_are_settled() -> None:
    assert decide(tracked(), seen(state="merged"), FOLLOW, NOW).action is Action.SETTLE_MERGED
    closed = seen(state="closed", closed_by="bob", closed_at=NOW)
    decision = decide(tracked(), closed, FOLLOW, NOW)
    assert decision.action is Action.SETTLE_CLOSED
    assert "closed without merge by @bob at 2026-12-01T12:00:00+00:00" in decision.reason


def test_conflict_blocks_the_task_once_and_unblocks_when_resolved() -> None:
    decision = decide(tracked(), seen(merge_state="dirty", mergeable=False), MERGE, NOW)
    assert decision.action is Action.BLOCK_CONFLICT
    assert decision.reason.startswith("merge conflict with main")
    blocked = tracked(task_status="blocked")
    assert decide(blocked, seen(merge_state="dirty"), MERGE, NOW).action is Action.WAIT
    assert decide(blocked, seen(), MERGE, NOW).action is Action.UNBLOCK


def test_behind_branch_is_updated_once_per_head() -> None:
    assert decide(tracked(), seen(merge_state="behind"), MERGE, NOW).action is Action.UPDATE_BRANCH
    done = tracked(branch_updated_for=HEAD)
    assert decide(done, seen(merge_state="behind"), MERGE, NOW).action is Action.WAIT
    moved = seen(merge_state="behind", head_sha="b" * 40)
    assert decide(done, moved, MERGE, NOW).action is Action.UPDATE_BRANCH


def test_no_progress_for_longer_than_the_max_age_fails_the_task() -> None:
    old = tracked(progress_at=NOW - timedelta(hours=169))
    decision = decide(old, seen(checks=(Check("ci", "fail", "FAILURE"),)), MERGE, NOW)
    assert decision.action is Action.EXPIRE
    assert "168 h" in decision.reason


def test_merge_attempts_are_capped_per_head() -> None:
    spent = tracked(merge_attempts=MAX_MERGE_ATTEMPTS)
    assert decide(spent, seen(), MERGE, NOW).action is Action.WAIT


def test_graphql_url_is_derived_from_the_rest_base() -> None:
    assert graphql_url_for("https://api.github.com") == "https://api.github.com/graphql"
    assert graphql_url_for("https://ghe.corp/api/v3/") == "https://ghe.corp/api/graphql"
    assert graphql_url_for("http://127.0.0.1:8123") == "http://127.0.0.1:8123/graphql"
    assert same_origin("https://api.github.com/search", "https://api.github.com")
    assert not same_origin("https://api.github.com/search", "https://ghe.corp/api/v3")


def test_query_reads_known_nodes_by_id_and_others_by_alias() -> None:
    refs = [
        PrRef("k1", "acme/app", 1, "PR_1"),
        PrRef("k2", "acme/app", 2),
        PrRef("k3", "beta/lib", 3),
    ]
    query = build_query(refs)
    assert 'nodes(ids: ["PR_1"])' in query.text
    assert 'repository(owner: "acme", name: "app") { p2: pullRequest(number: 2)' in query.text
    assert "rateLimit { cost remaining resetAt limit }" in query.text
    with pytest.raises(ValueError):
        build_query([PrRef(str(i), "a/b", i) for i in range(101)])


def test_refs_are_chunked_by_one_hundred_keeping_repositories_together() -> None:
    refs = [PrRef(f"{r}-{n}", f"o/r{r}", n) for r in range(3) for n in range(90)]
    groups = list(chunks(refs))
    assert [len(g) for g in groups] == [100, 100, 70]
    assert groups[0][0].repo == "o/r0"


def _node(**changes: object) -> dict[str, object]:
    node: dict[str, object] = {
        "id": "PR_1",
        "number": 1,
        "state": "OPEN",
        "merged": False,
        "isDraft": False,
        "mergeable": "MERGEABLE",
        "mergeStateStatus": "CLEAN",
        "reviewDecision": None,
        "headRefOid": HEAD,
        "headRefName": "juggernaut/abc",
        "baseRefName": "main",
        "repository": {"nameWithOwner": "acme/app"},
        "timelineItems": {"nodes": []},
        "commits": {
            "nodes": [
                {
                    "commit": {
                        "oid": HEAD,
                        "statusCheckRollup": {
                            "state": "SUCCESS",
                            "contexts": {
                                "totalCount": 2,
                                "nodes": [
                                    {
                                        "__typename": "CheckRun",
                                        "name": "ci",
                                        "status": "COMPLETED",
                                        "conclusion": "SUCCESS",
                                    },
                                    {
                                        "__typename": "StatusContext",
                                        "context": "deploy",
                                        "state": "PENDING",
                                    },
                                ],
                            },
                        },
                    }
                }
            ]
        },
    }
    node.update(changes)
    return node


def test_answer_is_parsed_into_states_checks_and_rate_limit() -> None:
    refs = [PrRef("k1", "acme/app", 1, "PR_1"), PrRef("k2", "acme/app", 2), PrRef("k3", "x/y", 3)]
    query = build_query(refs)
    closed = _node(
        id="PR_2",
        number=2,
        state="CLOSED",
        closedAt="2026-11-30T10:00:00Z",
        timelineItems={"nodes": [{"actor": {"login": "bob"}, "createdAt": "2026-11-30T10:00:00Z"}]},
    )
    data = {
        "rateLimit": {"cost": 1, "remaining": 4999, "resetAt": "2026-12-01T13:00:00Z"},
        "nodes": [_node()],
        "r0": {"p2": closed},
        "r1": None,
    }
    answer = parse_answer(query, data)
    first = answer.observed["k1"]
    assert (first.state, first.merge_state, first.checks_state) == ("open", "clean", "pending")
    assert first.pending_checks == ["deploy"]
    assert answer.observed["k2"].state == "closed"
    assert answer.observed["k2"].closed_by == "bob"
    assert "repository" in answer.missing["k3"]
    assert answer.rate_limit is not None and answer.rate_limit.remaining == 4999


def test_checks_of_another_commit_do_not_count_for_the_head() -> None:
    node = _node()
    node["headRefOid"] = "b" * 40
    assert parse_pull_request(node).checks_state == "pending"
    merged = parse_pull_request(_node(state="MERGED", merged=True, mergeCommit={"oid": "c" * 40}))
    assert (merged.state, merged.merge_commit_sha) == ("merged", "c" * 40)
