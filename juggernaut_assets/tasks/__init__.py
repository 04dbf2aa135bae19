"""The task queue: creating, claiming and settling `governance_tasks` rows."""
