"""Writes the hand-built replay recordings under `juggernaut_assets/fixtures/replay/`.

The bodies follow each service's documented shape; the numbers are invented but plausible
(weekly rhythm, slow trends, a spike or two on the last day). URLs come from the request
builders themselves, so a recording answers exactly what `requests_for` asks for.

    .venv/bin/python tests/data/sources/build_replay_fixtures.py
"""

from __future__ import annotations

import json
import random
import re
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from juggernaut_assets.lib.sources import github, google_trends, hackernews, npm, pypi, wikipedia
from juggernaut_assets.lib.sources.rdap import BOOTSTRAP_URL, parse_rdap_bootstrap, rdap_url
from juggernaut_assets.lib.sources.tracked import TrackedItems
from juggernaut_assets.lib.sources.wayback import wayback_request

REPLAY_DIR = Path(__file__).resolve().parents[3] / "juggernaut_assets" / "fixtures" / "replay"
DAY = date(2026, 11, 23)
JSON = {"content-type": "application/json; charset=utf-8"}
RDAP_JSON = {"content-type": "application/rdap+json"}

rng = random.Random(20261123)


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def write(source: str, name: str, url: str, body: Any, headers: dict[str, str], status: int = 200):
    record: dict[str, Any] = {"url": url, "status": status, "headers": headers}
    record["text" if isinstance(body, str) else "json"] = body
    path = REPLAY_DIR / source / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(record, indent=1, ensure_ascii=False)
    if isinstance(body, list) and body and all(isinstance(row, list) for row in body):
        rows = ",\n  ".join(json.dumps(row) for row in body)
        text = text[: text.index('"json": [')] + f'"json": [\n  {rows}\n ]\n}}'
    path.write_text(text + "\n")


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


GITHUB_REPOS = [
    ("openhands-labs/agent-mesh", "Python", ["ai-agents", "llm", "multi-agent", "python"]),
    ("kestrel-dev/kestrel", "Rust", ["rust", "ai-agents", "mcp", "cli"]),
    ("tinygrad-community/tinyvec", "Rust", ["vector-database", "rust", "embeddings"]),
    ("mira-ai/mira-browser-agent", "TypeScript", ["ai-agents", "browser-automation", "llm"]),
    ("fieldnote/notebook-llm", "Python", ["llm", "rag", "jupyter"]),
    ("sunpath-io/sunpath", "Python", ["solar", "energy", "forecasting"]),
    ("ledgerline/ledgerline", "Go", ["crypto", "blockchain", "wallet"]),
    ("quillstack/quill", "TypeScript", ["ai-agents", "mcp", "developer-tools"]),
    ("hollowbyte/rustdb", "Rust", ["database", "rust", "storage-engine"]),
    ("agentbench-org/agentbench-2", "Python", ["ai-agents", "benchmark", "llm"]),
    ("lumen-ml/lumen", "Python", ["llm", "inference", "cuda"]),
    ("pgvector-contrib/pgvector-rs", "Rust", ["vector-database", "postgres", "rust"]),
    ("dagster-io/dagster-dbt-cloud-v2", "Python", ["dagster", "dbt", "data-engineering"]),
    ("orbital-data/solar-grid-sim", "Julia", ["solar", "energy", "simulation"]),
    ("sparrow-sh/sparrow", "Go", ["cli", "devops"]),
    ("threadloom/threadloom", "Python", ["ai-agents", "workflow", "python"]),
    ("kvasir-db/kvasir", "C++", ["vector-database", "ann", "simd"]),
    ("mintwise/mintwise", "TypeScript", ["crypto", "defi", "nextjs"]),
    ("stackcraft/agent-ui", "TypeScript", ["ai-agents", "react", "ui"]),
    ("pyforge-dev/pyforge", "Python", ["python", "packaging", "cli"]),
    ("cinder-rs/cinder", "Rust", ["rust", "game-engine", "wgpu"]),
    ("promptvault/promptvault", "Python", ["llm", "prompt-engineering"]),
    ("opsagent/opsagent", "Go", ["ai-agents", "kubernetes", "devops"]),
    ("helio-labs/helio", "Python", ["solar", "iot", "home-assistant"]),
    ("datadrift/driftwatch", "Python", ["dagster", "data-quality", "python"]),
    ("zenith-ui/zenith", "TypeScript", ["react", "design-system"]),
    ("coinpulse/coinpulse", "Python", ["crypto", "trading-bot", "python"]),
    ("needle-search/needle", "Rust", ["vector-database", "search", "rust"]),
    ("localmind/localmind", "Swift", ["llm", "macos", "on-device"]),
    ("agent-zoo/agent-zoo", "Python", ["ai-agents", "reinforcement-learning"]),
    ("tesseract-labs/tscan", "Rust", ["rust", "security", "scanner"]),
    ("mlplumber/mlplumber", "Python", ["mlops", "dagster", "python"]),
    ("gridwise/gridwise", "TypeScript", ["solar", "energy", "dashboard"]),
    ("smallcode/smolcoder", "Python", ["llm", "code-generation", "ai-agents"]),
    ("wasmtide/wasmtide", "Rust", ["rust", "webassembly"]),
    ("chainscope/chainscope", "Go", ["crypto", "ethereum", "indexer"]),
    ("embedkit/embedkit", "Python", ["embeddings", "vector-database", "rag"]),
    ("nightowl-dev/nightowl.nvim", "Lua", ["neovim", "colorscheme"]),
    ("agentops-oss/tracer", "Python", ["ai-agents", "observability", "llm"]),
    ("paperplane/paperplane", "TypeScript", ["ai-agents", "email", "automation"]),
    ("ferrous-ai/ferrous", "Rust", ["rust", "llm", "inference"]),
    ("pybatch/pybatch", "Python", ["python", "async"]),
    ("solstice-energy/pvlib-extras", "Python", ["solar", "photovoltaics", "python"]),
    ("memorylane/memorylane", "Python", ["ai-agents", "memory", "llm"]),
    ("tinykv/tinykv", "Zig", ["database", "key-value"]),
    ("shellmate/shellmate", "Rust", ["ai-agents", "terminal", "rust"]),
    ("vaultwatch/vaultwatch", "Go", ["crypto", "security"]),
    ("notebookjs/nbjs", "JavaScript", ["jupyter", "notebook"]),
    ("graphrag-lite/graphrag-lite", "Python", ["rag", "knowledge-graph", "llm"]),
    ("skyforge/skyforge", None, ["awesome-list", "ai-agents"]),
]


def build_github(tracked: TrackedItems) -> None:
    (request,) = github.requests_for(tracked, DAY)
    items = []
    stars = 4200.0
    for index, (full_name, language, topics) in enumerate(GITHUB_REPOS):
        owner, name = full_name.split("/")
        created = datetime(2026, 11, 17, tzinfo=UTC) + timedelta(minutes=rng.randint(0, 7 * 1440))
        count = max(10, int(stars))
        stars *= rng.uniform(0.82, 0.95)
        items.append(
            {
                "id": 1_098_400_000 + index * 7919,
                "node_id": f"R_kgDOQ{index:05d}",
                "name": name,
                "full_name": full_name,
                "private": False,
                "owner": {"login": owner, "type": "Organization" if index % 3 else "User"},
                "html_url": f"https://github.com/{full_name}",
                "description": f"{name.replace('-', ' ').title()}: {', '.join(topics[:2])}",
                "fork": False,
                "created_at": iso(created),
                "updated_at": iso(created + timedelta(hours=rng.randint(2, 40))),
                "pushed_at": iso(created + timedelta(hours=rng.randint(1, 30))),
                "stargazers_count": count,
                "watchers_count": count,
                "forks_count": int(count * rng.uniform(0.04, 0.15)),
                "open_issues_count": rng.randint(0, 40),
                "language": language,
                "topics": sorted(topics),
                "visibility": "public",
                "default_branch": "main",
                "score": 1.0,
            }
        )
    body = {"total_count": 1873, "incomplete_results": False, "items": items}
    write("github", "search_repositories", request.url, body, JSON)


HN_STORIES = {
    "ai agents": (
        23,
        [
            "Show HN: {x}, an open-source framework for AI agents",
            "AI agents are coming for back-office work",
            "Why most AI agents fail in production",
            "Ask HN: Who is running AI agents against real customers?",
        ],
    ),
    "rust": (
        12,
        [
            "Rust {v} released",
            "Rewriting our ingest pipeline in Rust",
            "Show HN: {x} – a Rust TUI for Postgres",
        ],
    ),
    "python": (
        15,
        [
            "Python 3.15 beta: what's new",
            "Show HN: {x}, a Python library for PDFs",
            "The state of Python packaging, late 2026",
        ],
    ),
    "llm": (
        31,
        [
            "Show HN: {x} – run an LLM on your phone",
            "LLM evals are mostly vibes",
            "A 3B LLM that beats last year's 70B on code",
        ],
    ),
    "vector database": (
        3,
        [
            "Do you still need a vector database?",
            "Show HN: {x}, a vector database in 2k lines of Rust",
        ],
    ),
    "solar": (
        7,
        [
            "Solar now cheaper than coal in every G20 country",
            "Balcony solar is finally legal in my state",
        ],
    ),
    "crypto": (9, ["Crypto exchange halts withdrawals", "The crypto winter that wasn't"]),
    "dagster": (1, ["Dagster 1.14: components and declarative automation"]),
}
NAMES = ["Kestrel", "Quill", "Sparrow", "Lumen", "Needle", "Helio", "Cinder", "Mira", "Threadloom"]


def build_hackernews(tracked: TrackedItems) -> None:
    start, _ = hackernews.day_window(DAY)
    for request in hackernews.requests_for(tracked, DAY):
        assert request.term is not None
        count, titles = HN_STORIES[request.term]
        hits = []
        for index in range(count):
            created_i = start + rng.randint(0, 86_399)
            points = rng.choice([1, 1, 2, 2, 3, 4, 5, 8, 13]) if index else rng.randint(60, 480)
            object_id = str(46_012_000 + rng.randint(0, 90_000))
            title = titles[index % len(titles)].format(x=rng.choice(NAMES), v="1.92")
            hits.append(
                {
                    "_tags": ["story", f"author_user{index}", f"story_{object_id}"],
                    "author": f"user{rng.randint(100, 99_999)}",
                    "children": [],
                    "created_at": iso(datetime.fromtimestamp(created_i, UTC)).replace("Z", ".000Z"),
                    "created_at_i": created_i,
                    "num_comments": int(points * rng.uniform(0.1, 0.9)),
                    "objectID": object_id,
                    "points": points,
                    "story_id": int(object_id),
                    "title": title,
                    "updated_at": iso(datetime.fromtimestamp(created_i + 3600, UTC)),
                    "url": f"https://example-news.dev/{slug(title)}",
                }
            )
        hits.sort(key=lambda h: h["created_at_i"], reverse=True)
        body = {
            "exhaustive": {"nbHits": True, "typo": True},
            "exhaustiveNbHits": True,
            "exhaustiveTypo": True,
            "hits": hits,
            "hitsPerPage": 100,
            "nbHits": count,
            "nbPages": 1,
            "page": 0,
            "params": request.url.split("?", 1)[1],
            "processingTimeMS": rng.randint(2, 30),
            "query": request.term,
            "serverTimeMS": rng.randint(3, 35),
        }
        write("hackernews", slug(request.term), request.url, body, JSON)


TRENDS = [
    ("black friday deals", "1M+", "Mon, 23 Nov 2026 05:10:00 -0800", "CNN Underscored"),
    ("powerball", "500K+", "Mon, 23 Nov 2026 04:40:00 -0800", "USA Today"),
    ("cowboys vs eagles", "200K+", "Sun, 22 Nov 2026 19:20:00 -0800", "ESPN"),
    ("bitcoin price", "100K+", "Mon, 23 Nov 2026 02:00:00 -0800", "CoinDesk"),
    ("thanksgiving weather forecast", "50K+", "Mon, 23 Nov 2026 06:30:00 -0800", "AccuWeather"),
    ("chatgpt", "50K+", "Mon, 23 Nov 2026 07:10:00 -0800", "The Verge"),
    ("cyber monday", "20K+", "Mon, 23 Nov 2026 03:50:00 -0800", "Forbes"),
    ("mortgage rates", "10K+", "Mon, 23 Nov 2026 06:00:00 -0800", "CNBC"),
    ("solar tax credit", "5,000+", "Sun, 22 Nov 2026 22:15:00 -0800", "NerdWallet"),
    ("python", "2000+", "Mon, 23 Nov 2026 01:30:00 -0800", "Ars Technica"),
]


def build_google_trends(tracked: TrackedItems) -> None:
    (request,) = google_trends.requests_for(tracked, DAY)
    items = []
    for title, traffic, published, outlet in TRENDS:
        dashed = slug(title).replace("_", "-")
        story = f"https://www.{slug(outlet).replace('_', '')}.com/2026/11/{dashed}"
        items.append(
            f"""    <item>
      <title>{escape(title)}</title>
      <ht:approx_traffic>{traffic}</ht:approx_traffic>
      <description></description>
      <link>https://trends.google.com/trending/rss?geo=US</link>
      <pubDate>{published}</pubDate>
      <ht:picture>https://encrypted-tbn1.gstatic.com/images?q=tbn:ANd9Gc{slug(title)[:12]}&amp;s</ht:picture>
      <ht:picture_source>{escape(outlet)}</ht:picture_source>
      <ht:news_item>
        <ht:news_item_title>{escape(title.title())}: what to know</ht:news_item_title>
        <ht:news_item_url>{escape(story)}</ht:news_item_url>
        <ht:news_item_picture>https://encrypted-tbn1.gstatic.com/images?q=tbn:{slug(outlet)}</ht:news_item_picture>
        <ht:news_item_source>{escape(outlet)}</ht:news_item_source>
      </ht:news_item>
      <ht:news_item>
        <ht:news_item_title>More on {escape(title)}</ht:news_item_title>
        <ht:news_item_url>https://apnews.com/article/{dashed}</ht:news_item_url>
        <ht:news_item_picture>https://encrypted-tbn2.gstatic.com/images?q=tbn:ap</ht:news_item_picture>
        <ht:news_item_source>AP News</ht:news_item_source>
      </ht:news_item>
    </item>"""
        )
    text = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<rss xmlns:atom="http://www.w3.org/2005/Atom" '
        'xmlns:ht="https://trends.google.com/trending/rss" version="2.0">\n'
        "  <channel>\n"
        "    <title>Daily Search Trends</title>\n"
        '    <atom:link href="https://trends.google.com/trending/rss?geo=US" rel="self" '
        'type="application/rss+xml"/>\n'
        "    <link>https://trends.google.com/trending/rss?geo=US</link>\n"
        "    <description>Recent searches</description>\n"
        + "\n".join(items)
        + "\n  </channel>\n</rss>\n"
    )
    headers = {"content-type": "application/rss+xml; charset=UTF-8"}
    write("google_trends", "trending_rss_us", request.url, text, headers)


# base daily views, weekend factor, trend per day, last-days multipliers
PAGEVIEWS = {
    "Intelligent agent": (1450, 0.80, 0.004, [1.3, 1.7, 2.9]),
    "Rust (programming language)": (5200, 0.72, 0.0, []),
    "Python (programming language)": (13100, 0.70, -0.001, []),
    "Large language model": (8800, 0.78, 0.006, []),
    "Vector database": (930, 0.65, 0.002, []),
    "Solar power": (2450, 0.92, 0.0, []),
    "Cryptocurrency": (6900, 0.95, 0.001, [1.2, 3.4]),
}


def daily(base: float, weekend: float, trend: float, tail: list[float], day: date, i: int) -> int:
    value = base * (1 + trend) ** i * (weekend if day.weekday() >= 5 else 1.0)
    value *= rng.uniform(0.93, 1.07)
    offset = 30 - i
    if offset <= len(tail):
        value *= tail[len(tail) - offset]
    return int(value)


def build_wikipedia(tracked: TrackedItems) -> None:
    titles = {wikipedia.article_path(title): title for title in tracked.wikipedia_articles}
    for request in wikipedia.requests_for(tracked, DAY):
        encoded = request.url.split("/user/", 1)[1].split("/", 1)[0]
        title = titles[encoded]
        base, weekend, trend, tail = PAGEVIEWS[title]
        items = []
        for i in range(30):
            day = DAY - timedelta(days=29 - i)
            items.append(
                {
                    "project": "en.wikipedia",
                    "article": "_".join(title.split()),
                    "granularity": "daily",
                    "timestamp": day.strftime("%Y%m%d") + "00",
                    "access": "all-access",
                    "agent": "user",
                    "views": daily(base, weekend, trend, tail, day, i),
                }
            )
        write("wikipedia", slug(title), request.url, {"items": items}, JSON)


PYPI_RECENT = {
    "dagster": (98_412, 702_331, 2_918_774),
    "llm": (11_905, 84_220, 351_016),
    "langchain": (3_284_117, 22_940_506, 96_113_842),
    "openai": (4_206_339, 29_118_702, 121_455_090),
    "polars": (1_010_560, 7_002_913, 29_377_401),
}


def build_pypi(tracked: TrackedItems) -> None:
    for request in pypi.requests_for(tracked, DAY):
        assert request.term is not None
        last_day, last_week, last_month = PYPI_RECENT[request.term]
        body = {
            "data": {"last_day": last_day, "last_month": last_month, "last_week": last_week},
            "package": request.term,
            "type": "recent_downloads",
        }
        write("pypi", slug(request.term), request.url, body, JSON)


NPM_DAILY = {
    "langchain": (262_000, 0.55, 0.003, []),
    "openai": (1_640_000, 0.60, 0.002, []),
    "ai": (905_000, 0.58, 0.005, [1.4, 2.2]),
}


def build_npm(tracked: TrackedItems) -> None:
    start = DAY - timedelta(days=29)
    for request in npm.requests_for(tracked, DAY):
        assert request.term is not None
        base, weekend, trend, tail = NPM_DAILY[request.term]
        downloads = []
        for i in range(30):
            day = start + timedelta(days=i)
            downloads.append(
                {"downloads": daily(base, weekend, trend, tail, day, i), "day": day.isoformat()}
            )
        body = {
            "start": start.isoformat(),
            "end": DAY.isoformat(),
            "package": request.term,
            "downloads": downloads,
        }
        write("npm", slug(request.term), request.url, body, JSON)


BOOTSTRAP = {
    "description": "Some text",
    "publication": "2026-11-20T20:00:02Z",
    "services": [
        [["com"], ["https://rdap.verisign.com/com/v1/"]],
        [["net"], ["https://rdap.verisign.com/net/v1/"]],
        [["org"], ["https://rdap.publicinterestregistry.org/rdap/"]],
        [
            ["ai", "bio", "info", "io", "pro", "mobi", "lc", "ac"],
            ["https://rdap.identitydigital.services/rdap/"],
        ],
        [
            ["app", "dev", "page", "new", "how", "soy"],
            ["https://pubapi.registry.google/rdap/"],
        ],
    ],
    "version": "1.0",
}
BOOTSTRAP["description"] = "RDAP bootstrap file for Domain Name System registrations"

ACTIVE = ["client delete prohibited", "client transfer prohibited", "client update prohibited"]
# name -> (state, registered, expires, last changed); dates as ISO days
DOMAINS: dict[str, tuple[str, str | None, str | None, str | None]] = {
    "aiagents.com": ("active", "2016-04-11", "2027-04-11", "2026-03-30"),
    "aiagents.net": ("redemption", "2023-09-28", "2026-09-28", "2026-11-06"),
    "aiagents.io": ("free", None, None, None),
    "aiagents.ai": ("active-epp", "2024-03-02", "2028-03-02", "2026-02-14"),
    "rust.com": ("active", "1997-05-20", "2027-05-19", "2026-04-18"),
    "rust.net": ("active", "1999-02-09", "2027-02-09", "2026-01-12"),
    "rust.io": ("active", "2013-07-30", "2027-07-30", "2026-07-01"),
    "rust.ai": ("auto-renew", "2018-11-05", "2027-11-05", "2026-11-06"),
    "python.com": ("active", "1995-03-27", "2027-03-28", "2026-02-25"),
    "python.net": ("active", "1998-12-01", "2026-12-01", "2025-11-03"),
    "python.io": ("active", "2014-01-15", "2027-01-15", "2025-12-16"),
    "python.ai": ("pending-delete", "2021-08-29", "2026-08-29", "2026-11-19"),
    "llm.com": ("active", "1998-10-05", "2029-10-05", "2025-03-11"),
    "llm.net": ("active", "2001-06-18", "2027-06-18", "2026-05-20"),
    "llm.io": ("active", "2015-02-03", "2027-02-03", "2026-01-05"),
    "llm.ai": ("active", "2019-05-12", "2027-05-12", "2026-04-13"),
    "vectordatabase.com": ("active", "2021-03-14", "2027-03-14", "2026-02-12"),
    "vectordatabase.net": ("free", None, None, None),
    "vectordatabase.io": ("redemption-only", "2023-10-09", "2026-10-09", "2026-11-13"),
    "vectordatabase.ai": ("free", None, None, None),
    "solar.com": ("active", "1994-11-30", "2027-11-29", "2026-10-30"),
    "solar.net": ("active", "1997-08-04", "2027-08-03", "2026-07-05"),
    "solar.io": ("pending-delete", "2016-08-22", "2026-08-22", "2026-11-21"),
    "solar.ai": ("active", "2017-09-19", "2027-09-19", "2026-08-20"),
    "crypto.com": ("active", "1993-04-06", "2031-04-07", "2024-05-01"),
    "crypto.net": ("hold", "1996-06-10", "2027-06-09", "2026-10-02"),
    "crypto.io": ("active", "2012-10-22", "2027-10-22", "2026-09-23"),
    "crypto.ai": ("active", "2017-12-08", "2027-12-08", "2026-11-09"),
    "dagster.com": ("active", "2018-05-02", "2027-05-02", "2026-04-03"),
    "dagster.net": ("free", None, None, None),
    "dagster.io": ("active", "2018-04-30", "2027-04-30", "2026-03-31"),
    "dagster.ai": ("free", None, None, None),
    # The other scored trend terms (`openai`, `ai`, `langchain`): the demo's top terms can reach
    # them, and a lookup without a recording would fail in replay mode.
    "openai.com": ("active", "2015-04-10", "2031-04-10", "2025-03-11"),
    "openai.net": ("active", "2015-12-11", "2027-12-11", "2026-11-12"),
    "openai.io": ("active-epp", "2016-02-01", "2027-02-01", "2026-01-03"),
    "openai.ai": ("active", "2017-06-20", "2027-06-20", "2026-05-22"),
    "ai.com": ("active", "1993-05-04", "2032-05-05", "2025-03-02"),
    "ai.net": ("active", "1997-03-12", "2027-03-13", "2026-02-11"),
    "ai.io": ("active", "2012-08-14", "2027-08-14", "2026-07-16"),
    "ai.ai": ("active", "2017-11-28", "2027-11-28", "2026-10-30"),
    "langchain.com": ("active", "2022-11-01", "2027-11-01", "2026-10-03"),
    "langchain.net": ("pending-delete", "2023-02-14", "2026-08-14", "2026-11-18"),
    "langchain.io": ("free", None, None, None),
    "langchain.ai": ("active", "2023-01-09", "2027-01-09", "2026-01-10"),
}
STATUSES = {
    "active": ACTIVE,
    "active-epp": ["clientTransferProhibited", "clientUpdateProhibited"],
    "auto-renew": ["auto renew period", "client transfer prohibited"],
    "redemption": ["pending delete", "redemption period"],
    "redemption-only": ["redemption period"],
    "pending-delete": ["pending delete"],
    "hold": ["client hold", "client transfer prohibited"],
}
# first archived year and share of months with a capture; None = no captures
ARCHIVE = {
    "aiagents.io": (2017, 0.4),
    "vectordatabase.net": (2022, 0.2),
    "vectordatabase.ai": None,
    "dagster.net": (2019, 0.1),
    "dagster.ai": None,
    "langchain.io": (2023, 0.3),
}
# Names with a Wayback answer but no RDAP request: the bootstrap has no server for their TLD
# (the demo drop list's `bücher.de`, whose RDAP check says so).
WAYBACK_ONLY = {"xn--bcher-kva.de": (2004, 0.7)}


def rdap_body(name: str, url: str) -> dict[str, Any]:
    state, registered, expires, changed = DOMAINS[name]
    verisign = name.endswith((".com", ".net"))
    assert registered and expires and changed
    registrar = rng.choice(
        [("MarkMonitor Inc.", "292"), ("GoDaddy.com, LLC", "146"), ("Namecheap, Inc.", "1068")]
    )
    return {
        "objectClassName": "domain",
        "handle": f"{rng.randint(10**8, 10**9)}_DOMAIN_{name.rsplit('.', 1)[1].upper()}-VRSN"
        if verisign
        else f"{rng.randint(10**6, 10**7):x}-LROR",
        "ldhName": name.upper() if verisign else name,
        "links": [{"value": url, "rel": "self", "href": url, "type": "application/rdap+json"}],
        "status": STATUSES[state],
        "entities": [
            {
                "objectClassName": "entity",
                "handle": registrar[1],
                "roles": ["registrar"],
                "publicIds": [{"type": "IANA Registrar ID", "identifier": registrar[1]}],
                "vcardArray": [
                    "vcard",
                    [["version", {}, "text", "4.0"], ["fn", {}, "text", registrar[0]]],
                ],
            }
        ],
        "events": [
            {
                "eventAction": "registration",
                "eventDate": f"{registered}T{rng.randint(0, 23):02d}:14:07Z",
            },
            {"eventAction": "expiration", "eventDate": f"{expires}T04:00:00Z"},
            {"eventAction": "last changed", "eventDate": f"{changed}T09:31:55Z"},
            {"eventAction": "last update of RDAP database", "eventDate": "2026-11-23T11:02:17Z"},
        ],
        "secureDNS": {"delegationSigned": False},
        "nameservers": [
            {"objectClassName": "nameserver", "ldhName": f"NS{i}.EXAMPLE-DNS.NET"} for i in (1, 2)
        ],
        "rdapConformance": [
            "rdap_level_0",
            "icann_rdap_technical_implementation_guide_1",
            "icann_rdap_response_profile_1",
        ],
        "notices": [
            {
                "title": "Status Codes",
                "description": [
                    "For more information on domain status codes, please visit https://icann.org/epp"
                ],
                "links": [{"href": "https://icann.org/epp", "type": "text/html"}],
            }
        ],
    }


def cdx_rows(name: str) -> list[list[str]] | None:
    state = DOMAINS[name][0]
    if name in ARCHIVE:
        spec = ARCHIVE[name]
        if spec is None:
            return None
        first, share = spec
    else:
        first = max(1996, int(DOMAINS[name][1][:4]) + rng.randint(0, 1))  # type: ignore[index]
        share = 0.95 if state.startswith("active") else 0.6
    return monthly_captures(first, share)


def monthly_captures(first: int, share: float) -> list[list[str]]:
    """CDX rows (`collapse=timestamp:6`: one a month) from `first` to 2026-11."""
    rows = [["timestamp", "statuscode"]]
    for year in range(first, 2027):
        for month in range(1, 13):
            if (year, month) > (2026, 11) or rng.random() > share:
                continue
            stamp = f"{year}{month:02d}{rng.randint(1, 28):02d}{rng.randint(0, 235959):06d}"
            rows.append([stamp, "200"])
    return rows[:501]


def build_domains() -> None:
    write("rdap", "bootstrap", BOOTSTRAP_URL, BOOTSTRAP, {"content-type": "application/json"})
    bootstrap = parse_rdap_bootstrap(json.dumps(BOOTSTRAP).encode())
    for name, (state, *_rest) in DOMAINS.items():
        url = rdap_url(bootstrap, name)
        assert url is not None
        if state == "free":
            body: Any = {
                "errorCode": 404,
                "title": "Not Found",
                "description": [f"The domain {name} was not found in the registry."],
                "rdapConformance": ["rdap_level_0"],
            }
            write("rdap", slug(name), url, body, RDAP_JSON, status=404)
        else:
            write("rdap", slug(name), url, rdap_body(name, url), RDAP_JSON)
        rows = cdx_rows(name)
        cdx_url = wayback_request(name)
        if rows is None:
            text = "" if name == "vectordatabase.ai" else "[]"
            write("wayback", slug(name), cdx_url, text, {"content-type": "text/plain"})
        else:
            write("wayback", slug(name), cdx_url, rows, JSON)
    for name, (first, share) in WAYBACK_ONLY.items():
        write("wayback", slug(name), wayback_request(name), monthly_captures(first, share), JSON)


def main() -> None:
    tracked = TrackedItems()
    for source in (
        "github",
        "hackernews",
        "google_trends",
        "wikipedia",
        "pypi",
        "npm",
        "rdap",
        "wayback",
    ):
        shutil.rmtree(REPLAY_DIR / source, ignore_errors=True)
    build_github(tracked)
    build_hackernews(tracked)
    build_google_trends(tracked)
    build_wikipedia(tracked)
    build_pypi(tracked)
    build_npm(tracked)
    build_domains()


if __name__ == "__main__":
    main()
