"""`TrackedItems`: which terms, articles and packages the market-trend sources follow.

The defaults below track eight tech and business terms; every field can be overridden in run
config. Terms are one vocabulary across sources: a Wikipedia article maps to a term, a package's
term is its lower-cased name, and GitHub topics and languages are normalised the same way, so a
term seen by several sources can be counted as agreement.
"""

from __future__ import annotations

from collections.abc import Iterable

import pydantic

from juggernaut_assets.lib.sources.base import normalise_term

DEFAULT_TERMS = (
    "ai agents",
    "rust",
    "python",
    "llm",
    "vector database",
    "solar",
    "crypto",
    "dagster",
)
DEFAULT_WIKIPEDIA_ARTICLES = {
    "Intelligent agent": "ai agents",
    "Rust (programming language)": "rust",
    "Python (programming language)": "python",
    "Large language model": "llm",
    "Vector database": "vector database",
    "Solar power": "solar",
    "Cryptocurrency": "crypto",
}
DEFAULT_PYPI_PACKAGES = ("dagster", "llm", "langchain", "openai", "polars")
DEFAULT_NPM_PACKAGES = ("langchain", "openai", "ai")


class TrackedItems(pydantic.BaseModel):
    """What to follow. Defaults are a starting set, overridable in run config."""

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    terms: list[str] = pydantic.Field(
        default_factory=lambda: list(DEFAULT_TERMS),
        description="Search terms (Hacker News queries); normalised to lower case.",
    )
    wikipedia_articles: dict[str, str] = pydantic.Field(
        default_factory=lambda: dict(DEFAULT_WIKIPEDIA_ARTICLES),
        description="Wikipedia article title -> the term its pageviews count for.",
    )
    pypi_packages: list[str] = pydantic.Field(
        default_factory=lambda: list(DEFAULT_PYPI_PACKAGES),
        description="PyPI packages; each one's term is its lower-cased name.",
    )
    npm_packages: list[str] = pydantic.Field(
        default_factory=lambda: list(DEFAULT_NPM_PACKAGES),
        description="npm packages; each one's term is its lower-cased name.",
    )
    github_min_stars: int = pydantic.Field(default=10, ge=0)
    hn_min_points: int = pydantic.Field(
        default=1, ge=0, description="Only Hacker News stories with at least this many points."
    )
    google_trends_geo: str = pydantic.Field(default="US", min_length=2)
    wikipedia_project: str = pydantic.Field(default="en.wikipedia.org", min_length=3)

    @pydantic.field_validator("terms")
    @classmethod
    def _normalise_terms(cls, terms: list[str]) -> list[str]:
        return _unique(normalise_term(t) for t in terms if t.strip())

    @pydantic.field_validator("wikipedia_articles")
    @classmethod
    def _normalise_article_terms(cls, articles: dict[str, str]) -> dict[str, str]:
        return {
            " ".join(title.split()): normalise_term(term)
            for title, term in articles.items()
            if title.strip() and term.strip()
        }

    @pydantic.field_validator("pypi_packages", "npm_packages")
    @classmethod
    def _strip_packages(cls, packages: list[str]) -> list[str]:
        return _unique(p.strip() for p in packages if p.strip())


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))
