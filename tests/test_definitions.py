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
    monkeypatch.setenv("JUGGERNAUT_AUTOMERGE_REPOS", "acme/app")
    monkeypatch.setenv("JUGGERNAUT_GITHUB_API_URL", "https://ghe.example/api/v3")
    monkeypatch.setenv("JUGGERNAUT_PR_MAX_AGE_HOURS", "24")
    monkeypatch.setenv("OPENROUTER_API_KEY", "test-llm-key")
    monkeypatch.setenv("JUGGERNAUT_SMTP_URL", "smtp://127.0.0.1:2525")
    monkeypatch.setenv("JUGGERNAUT_SMTP_PASSWORD", "smtp-secret")
    monkeypatch.setenv("NAMECOM_USERNAME", "ops-test")
    monkeypatch.setenv("NAMECOM_TOKEN", "namecom-secret")
    monkeypatch.setenv("JUGGERNAUT_SPEND_LIMIT_USD_PER_DAY", "25")
    try:
        defs = importlib.reload(definitions).defs
        dg.Definitions.validate_loadable(defs)
        resources = defs.resources
        assert resources["task_queue"].batch_size == 7
        assert resources["task_tools"].http_allowed_hosts == ["api.example.com", "*.example.org"]
        assert isinstance(resources["github"].token, dg.EnvVar)
        assert resources["github"].allowed_repos == ["acme/app", "acme-labs/*"]
        assert isinstance(resources["governance_db"].url, dg.EnvVar)
        github = resources["github"]
        assert github.automerge_repos == ["acme/app"] and github.pr_max_age_hours == 24
        assert github.resolved_graphql_url == "https://ghe.example/api/graphql"
        assert resources["http_sources"].github_api_url == "https://ghe.example/api/v3"
        assert isinstance(resources["llm"].api_key, dg.EnvVar)
        assert isinstance(resources["task_tools"].smtp_password, dg.EnvVar)
        assert isinstance(resources["registrar"].token, dg.EnvVar)
        assert resources["registrar"].spend_limit_usd_per_day == 25
    finally:
        monkeypatch.undo()
        importlib.reload(definitions)


def test_definitions_name_the_contracted_jobs_sensors_and_assets():
    defs = definitions.defs
    assert defs.resolve_job_def("execute_tasks")
    assert defs.resolve_sensor_def("new_tasks_sensor")
    assert defs.resolve_sensor_def("pr_state_sensor")
    assert defs.resolve_job_def("settle_pull_requests")
    keys = {k.to_user_string() for k in defs.resolve_all_asset_keys()}
    assert {"task_runs", "task_completion_audit"} <= keys


def test_the_ui_shows_every_description_as_plain_text():
    """The catalog prints descriptions raw, so no asset, check, sensor, job or schedule of the
    code location may show markdown backticks there (docstrings keep them for the code)."""
    defs = definitions.defs
    graph = defs.resolve_asset_graph()
    texts = {key.to_user_string(): graph.get(key).description for key in graph.get_all_asset_keys()}
    for assets_def in graph.assets_defs:
        texts.update({str(spec.key): spec.description for spec in assets_def.check_specs})
    for named in (*defs.sensors, *defs.jobs, *defs.schedules):
        texts[named.name] = named.description
    assert len(texts) > 30
    assert {name for name, text in texts.items() if not text} == set()
    assert {name for name, text in texts.items() if "`" in text} == set()


def test_every_asset_has_kinds_and_owners():
    graph = definitions.defs.resolve_asset_graph()
    nodes = {key.to_user_string(): graph.get(key) for key in graph.get_all_asset_keys()}
    assert {name for name, node in nodes.items() if not node.kinds} == set()
    assert {name for name, node in nodes.items() if not node.owners} == set()
