from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from juggernaut_assets import settings
from juggernaut_assets.cli import main
from juggernaut_assets.db.engine import make_engine
from juggernaut_assets.db.models import PrTracking, new_id
from juggernaut_assets.demo import DEMO_TASKS
from juggernaut_assets.tasks.claim import claim_tasks


@pytest.fixture
def cli(db_url, monkeypatch):
    monkeypatch.setenv("JUGGERNAUT_DATABASE_URL", db_url)
    runner = CliRunner()

    def run(*args: str, ok: bool = True) -> str:
        result = runner.invoke(main, list(args), catch_exceptions=False)
        assert (result.exit_code == 0) is ok, result.output
        return result.output.strip()

    return run


def test_add_show_approve_and_deny(cli, db_url):
    assert "head" in cli("db", "upgrade")
    task_id = cli(
        "tasks",
        "add",
        "analysis",
        "--payload",
        '{"sql": "SELECT 1"}',
        "--requires-approval",
        "--approval-reason",
        "look first",
        "--priority",
        "high",
    )
    shown = json.loads(cli("tasks", "show", task_id, "--json"))
    assert (shown["status"], shown["priority"], shown["artifacts"]) == ("pending", "high", [])
    assert "cannot approve" in cli("tasks", "approve", task_id, ok=False)
    gated = cli("tasks", "add", "analysis", "--payload", "{}", "--requires-approval")
    claim_tasks(make_engine(db_url), limit=10, batch_size=10)
    assert cli("tasks", "approve", task_id, "--by", "alice") == f"approved {task_id} as alice"
    assert json.loads(cli("tasks", "show", task_id, "--json"))["approved_by"] == "alice"
    cli("tasks", "deny", gated, "--by", "bob", "--reason", "no budget")
    denied = json.loads(cli("tasks", "show", gated, "--json"))
    assert (denied["status"], denied["error_message"]) == ("cancelled", "denied by bob: no budget")
    other = cli("tasks", "add", "analysis", "--payload", '{"sql": "SELECT 2"}')
    shown_text = cli("tasks", "show", other)
    assert "status: pending" in shown_text.replace("  ", "")
    query = f"view=events&partition={other}&partitions%5B0%5D={other}"
    page = f"{settings.dagster_ui_url()}/assets/task_runs?{query}"
    assert f"dagster page: {page}" in shown_text
    assert json.loads(cli("tasks", "show", other, "--json"))["dagster_page"] == page
    assert "does not exist" in cli(
        "tasks", "show", "00000000-0000-0000-0000-000000000000", ok=False
    )


def test_add_rejects_payload_that_is_not_json(cli):
    assert "not valid JSON" in cli("tasks", "add", "analysis", "--payload", "{sql", ok=False)


def test_dedupe_key_adds_once(cli):
    first = cli("tasks", "add", "analysis", "--payload", "{}", "--dedupe-key", "k1")
    second = cli("tasks", "add", "analysis", "--payload", "{}", "--dedupe-key", "k1")
    assert second == f"{first} (already exists with this dedupe key)"


def test_demo_seed_is_idempotent(cli):
    assert f"{len(DEMO_TASKS) + 1} new task(s) and experiments" in cli("demo", "seed")
    assert "0 new task(s)" in cli("demo", "seed")
    assert len(cli("tasks", "list", "--limit", "100").splitlines()) == len(DEMO_TASKS)


def test_tasks_are_found_by_a_piece_of_their_title_taken_literally(cli):
    cli("db", "upgrade")
    weekly = cli("tasks", "add", "analysis", "--title", "Weekly revenue report")
    cut = cli("tasks", "add", "analysis", "--title", "Cut costs by 100%")
    cli("tasks", "add", "analysis", "--title", "Cut costs by 1000 USD")
    assert cli("tasks", "list", "--title", "REVENUE").split()[0] == weekly
    [line] = cli("tasks", "list", "--title", "100%").splitlines()
    assert line.startswith(cut) and line.endswith("Cut costs by 100%")
    assert cli("tasks", "list", "--title", "_") == ""


@pytest.mark.parametrize(
    "command",
    [
        ("tasks", "show", "not-a-uuid"),
        ("tasks", "show", "not-a-uuid", "--json"),
        ("tasks", "approve", "not-a-uuid", "--by", "alice"),
        ("tasks", "deny", "not-a-uuid", "--by", "alice"),
        ("tasks", "retry", "not-a-uuid"),
        ("tasks", "add", "analysis", "--depends-on", "not-a-uuid"),
    ],
)
def test_a_bad_task_id_is_a_clear_error_not_a_traceback(db_url, monkeypatch, command):
    monkeypatch.setenv("JUGGERNAUT_DATABASE_URL", db_url)
    result = CliRunner().invoke(main, list(command))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert result.exit_code == 1
    assert result.output == "Error: not a task id: 'not-a-uuid' (expected a UUID)\n"


def test_a_task_id_is_accepted_in_any_uuid_spelling(cli):
    task_id = cli("tasks", "add", "analysis", "--payload", '{"sql": "SELECT 1"}')
    shown = json.loads(cli("tasks", "show", task_id.upper().replace("-", ""), "--json"))
    assert shown["id"] == task_id


def test_prs_list_shows_what_the_sensor_saw(cli, db_url):
    assert cli("prs", "list") == "no tracked pull requests"
    with make_engine(db_url).begin() as conn:
        conn.execute(
            PrTracking.__table__.insert().values(
                id=new_id(),
                repo="acme/app",
                pr_number=7,
                current_state="open",
                merge_state="behind",
                checks_state="pending",
                review_status="none",
            )
        )
    out = cli("prs", "list", "--state", "open")
    assert "acme/app#7" in out and "merge=behind" in out and "checks=pending" in out
    assert "never polled" in out and "no task" in out
    assert cli("prs", "list", "--state", "merged") == "no tracked pull requests"
