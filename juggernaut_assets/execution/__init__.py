"""Carrying tasks out: one handler registry, one tool registry, artifact verification."""
