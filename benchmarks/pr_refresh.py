"""One `pr_state_sensor` tick follows 1,000 open pull requests in 10 repositories.

The pull requests live on the tests' local GitHub (REST + GraphQL on 127.0.0.1); the governance
database is a throwaway PostgreSQL database. Printed: GitHub requests and GraphQL points one
tick uses (target ≤ 20 requests) and its wall time (target ≤ 10 s), for a first tick (every
state new) and a second one (nothing changed), beside the naive way: one REST call per pull
request (`GET /pulls/{n}`, which still leaves checks and reviews unread).

    .venv/bin/python -m benchmarks.pr_refresh [--prs 1000] [--repos 10]
"""

from __future__ import annotations

import argparse
import time
import uuid

import dagster as dg
import sqlalchemy as sa

from benchmarks._pg import temporary_database
from juggernaut_assets.db.engine import make_engine
from juggernaut_assets.db.migrate import upgrade
from juggernaut_assets.db.models import GovernanceTask, PrTracking, utcnow
from juggernaut_assets.execution.github_pr import repository
from juggernaut_assets.resources.github import GitHubResource
from juggernaut_assets.resources.governance_db import GovernanceDB
from juggernaut_assets.sensors.pr_state import pr_state_sensor
from tests.fakes.github_server import FakeGitHub

TOKEN = "bench-token"


def _seed(gh: FakeGitHub, url: str, prs: int, repos: int) -> list[tuple[str, int]]:
    """Open `prs` pull requests spread over `repos` repositories, each tracked for a task
    in `awaiting_pr_merge`; a third have a passing check, a tenth a failing one."""
    engine = make_engine(url)
    now = utcnow()
    names = [f"bench/repo{r}" for r in range(repos)]
    for name in names:
        gh.add_repo(name, {"README.md": "bench\n"})
    tasks, rows, opened = [], [], []
    for i in range(prs):
        repo = names[i % repos]
        pull = gh.open_pull(repo, f"juggernaut/bench{i}", {f"src/f{i}.py": f"x = {i}\n"})
        head = gh.head_sha(repo, pull.number)
        if i % 3 == 0:
            gh.add_check(repo, head, "ci", conclusion="success")
        elif i % 10 == 1:
            gh.add_check(repo, head, "ci", conclusion="failure")
        task_id = str(uuid.uuid4())
        tasks.append(
            {
                "id": task_id,
                "task_type": "code",
                "title": f"bench {i}",
                "status": "awaiting_pr_merge",
                "priority": "medium",
                "created_at": now,
            }
        )
        rows.append(
            {
                "id": str(uuid.uuid4()),
                "task_id": task_id,
                "repo": repo,
                "pr_number": pull.number,
                "pr_url": f"{gh.url}/{repo}/pull/{pull.number}",
                "current_state": "open",
                "head_sha": head,
                "node_id": pull.node_id if i % 2 == 0 else None,
                "metadata": {"base": "main"},
                "created_at": now,
                "updated_at": now,
            }
        )
        opened.append((repo, pull.number))
    with engine.begin() as conn:
        conn.execute(GovernanceTask.__table__.insert(), tasks)
        conn.execute(PrTracking.__table__.insert(), rows)
    engine.dispose()
    return opened


def _tick(instance: dg.DagsterInstance, resources: dict, cursor: str | None):
    context = dg.build_sensor_context(instance=instance, resources=resources, cursor=cursor)
    clock = time.perf_counter()
    result = pr_state_sensor(context)
    return time.perf_counter() - clock, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prs", type=int, default=1_000)
    parser.add_argument("--repos", type=int, default=10)
    args = parser.parse_args()
    with (
        FakeGitHub(TOKEN) as gh,
        temporary_database("bench_pr") as url,
        dg.instance_for_test() as instance,
    ):
        upgrade(url)
        opened = _seed(gh, url, args.prs, args.repos)
        github = GitHubResource(
            token=TOKEN,
            api_url=gh.url,
            automerge_repos=["bench/repo0"],
            seconds_between_requests=0,
            seconds_between_writes=0,
        )
        resources = {"governance_db": GovernanceDB(url=url), "github": github}
        print(f"{len(opened)} tracked open pull requests in {args.repos} repositories")
        cursor = None
        first_used = 0
        for label in ("first tick (all new)", "second tick (unchanged)"):
            requests_before, points_before = len(gh.requests), sum(gh.graphql_costs)
            seconds, result = _tick(instance, resources, cursor)
            cursor = result.cursor if isinstance(result, dg.SensorResult) else cursor
            used = len(gh.requests) - requests_before
            first_used = first_used or used
            points = sum(gh.graphql_costs) - points_before
            runs = len(result.run_requests or []) if isinstance(result, dg.SensorResult) else 0
            reason = result.skip_reason.skip_message if getattr(result, "skip_reason", None) else ""
            print(
                f"{label}: {used} GitHub request(s), {points} GraphQL point(s), "
                f"{seconds:.2f} s, {runs} action run(s) requested"
            )
            if reason:
                print(f"  skip reason: {reason}")
        client = github.client()
        requests_before = len(gh.requests)
        clock = time.perf_counter()
        for repo, number in opened:
            repository(client, repo).get_pull(number).raw_data  # noqa: B018 - one GET per PR
        naive = time.perf_counter() - clock
        used = len(gh.requests) - requests_before
        print(
            f"naive, one REST call per PR: {used} request(s), {naive:.2f} s "
            "(states only: checks and reviews would cost 2 more per PR)"
        )
        print(f"requests per tick: {used / max(first_used, 1):.0f}x fewer than one call per PR")
        with make_engine(url).connect() as conn:
            polled = conn.execute(
                sa.select(sa.func.count()).where(PrTracking.last_polled_at.is_not(None))
            ).scalar_one()
        print(f"rows refreshed: {polled} of {len(opened)}")


if __name__ == "__main__":
    main()
