from __future__ import annotations

import importlib

import dagster as dg

import juggernaut_assets.definitions as definitions


def test_definitions_load_with_every_setting_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("JUGGERNAUT_DATABASE_URL", f"sqlite:///{tmp_path / 'g.db'}")
    monkeypatch.setenv("JUGGERNAUT_BATCH_SIZE", "7")
    monkeypatch.setenv("JUGGERNAUT_MAX_TASKS_PER_TICK", "70")
    monkeypatch.setenv("GITHUB_TOKEN", "test-token-value")
    monkeypatch.setenv("SLACK_WEBHOOK_URL", "http://127.0.0.1:1/hook")
    monkeypatch.setenv("JUGGERNAUT_HTTP_ALLOWED_HOSTS", "api.example.com, *.example.org")
    monkeypatch.setenv("JUGGERNAUT_GITHUB_REPOS", "acme/app,acme-labs/*")
    try:
        defs = importlib.reload(definitions).defs
        dg.Definitions.validate_loadable(defs)
        resources = defs.resources
        assert resources["task_queue"].batch_size == 7
        assert resources["task_tools"].http_allowed_hosts == ["api.example.com", "*.example.org"]
        assert isinstance(resources["github"].token, dg.EnvVar)
        assert resources["github"].allowed_repos == ["acme/app", "acme-labs/*"]
        assert isinstance(resources["governance_db"].url, dg.EnvVar)
    finally:
        monkeypatch.undo()
        importlib.reload(definitions)


def test_definitions_name_the_contracted_jobs_sensors_and_assets():
    defs = definitions.defs
    assert defs.resolve_job_def("execute_tasks")
    assert defs.resolve_sensor_def("new_tasks_sensor")
    keys = {k.to_user_string() for k in defs.resolve_all_asset_keys()}
    assert {"task_runs", "task_completion_audit"} <= keys
