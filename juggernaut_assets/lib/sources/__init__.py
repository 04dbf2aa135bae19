"""Pure request builders and parsers for the market-trend and domain sources (no network).

`TREND_SOURCES` maps each source name to its module; every module has
`requests_for(tracked, day, base_url=DEFAULT_BASE) -> list[SourceRequest]` and
`parse(request, status, body, day) -> ParsedRows`.
"""

from __future__ import annotations

from types import ModuleType

from juggernaut_assets.lib.sources import github, google_trends, hackernews, npm, pypi, wikipedia
from juggernaut_assets.lib.sources.base import (
    ParsedRows,
    Source,
    SourceFormatError,
    SourceRequest,
    SourceStatusError,
    TrendRow,
)
from juggernaut_assets.lib.sources.tracked import TrackedItems

TREND_SOURCES: dict[str, ModuleType] = {
    module.SOURCE: module for module in (github, hackernews, google_trends, wikipedia, pypi, npm)
}

__all__ = [
    "TREND_SOURCES",
    "ParsedRows",
    "Source",
    "SourceFormatError",
    "SourceRequest",
    "SourceStatusError",
    "TrackedItems",
    "TrendRow",
]
