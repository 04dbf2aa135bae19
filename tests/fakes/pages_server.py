"""Web pages on 127.0.0.1 for research tasks, and a SearXNG JSON search.

- `/articles/solar` and `/articles/wind`: articles inside navigation, cookie banner and footer
  boilerplate; `/old/solar` redirects (301) to `/articles/solar`.
- `/missing`: 404. `/huge`: a page bigger than any small body cap.
- `/changing`: a different article on every fetch (the first fetch is `CHANGING_FIRST`).
- `/private/secret`: a page that `/robots.txt` disallows for every crawler.
- `/search?q=…&format=json`: SearXNG's JSON answer, listing `search_results` (URLs).
Every request is recorded with its path and User-Agent.
"""

from __future__ import annotations

import threading
from email.message import Message

from tests.fakes.local_server import LocalServer, Reply

HTML = {"Content-Type": "text/html; charset=utf-8"}
SOLAR_FACT = (
    "Solar panel installations in the region grew by 41 percent in 2025, reaching 3.2 gigawatts "
    "of capacity."
)
SOLAR_MORE = (
    "The regional energy agency attributes the growth to falling module prices and a new "
    "rooftop subsidy programme."
)
WIND_FACT = (
    "Offshore wind farms supplied 18 percent of the region's electricity in 2025, up from "
    "11 percent two years earlier."
)
WIND_MORE = "Two new turbine ports opened on the northern coast, employing about 900 people."
CHANGING_FIRST = (
    "The council approved the harbour expansion plan on 3 March 2025 by a vote of 9 to 2."
)
CHANGING_LATER = "The council rejected the harbour expansion plan after a second reading in April."
BOILERPLATE = "Accept all cookies to continue browsing our site"
ROBOTS = "User-agent: *\nDisallow: /private/\n"


def article(title: str, *paragraphs: str) -> str:
    """An article page with the navigation, banner and footer real sites wrap around text."""
    body = "\n".join(f"<p>{p}</p>" for p in paragraphs)
    return f"""<!DOCTYPE html>
<html><head><title>{title}</title><meta charset="utf-8"></head>
<body>
<header><nav><a href="/">Home</a> | <a href="/news">News</a> | <a href="/about">About us</a>
| <a href="/contact">Contact</a></nav></header>
<div class="cookie-banner">{BOILERPLATE}. <button>Accept</button></div>
<main><article>
<h1>{title}</h1>
<p class="byline">By the energy desk</p>
{body}
<p>Analysts expect the figures to be revised when the annual statistics are published next
spring, as in previous years, and the agency has said it will publish a full breakdown by
municipality at the same time.</p>
</article></main>
<aside><h3>Related</h3><ul><li><a href="/a">Ten tips for saving energy</a></li>
<li><a href="/b">Subscribe to our newsletter</a></li></ul></aside>
<footer><p>Copyright 2026 Example News. All rights reserved. Privacy policy. Terms.</p></footer>
</body></html>"""


class PagesServer(LocalServer):
    """The pages above; `search_results` are the URLs the search answers with."""

    def __init__(self, huge_bytes: int = 2_000_000) -> None:
        super().__init__()
        self.huge_bytes = huge_bytes
        self.search_results: list[str] = []
        self.requests: list[tuple[str, str]] = []
        self.changing_fetches = 0
        self._lock = threading.Lock()

    def page(self, path: str) -> str:
        return f"{self.url}{path}"

    def respond(self, method: str, path: str, headers: Message, body: bytes) -> Reply:
        with self._lock:
            self.requests.append((path, headers.get("User-Agent", "")))
        route = path.split("?", 1)[0]
        if route == "/robots.txt":
            return Reply(200, ROBOTS, {"Content-Type": "text/plain"})
        if route == "/articles/solar":
            return Reply(200, article("Solar capacity grows", SOLAR_FACT, SOLAR_MORE), HTML)
        if route == "/articles/wind":
            return Reply(200, article("Wind power share rises", WIND_FACT, WIND_MORE), HTML)
        if route == "/old/solar":
            return Reply(301, "", {"Location": "/articles/solar"})
        if route == "/changing":
            with self._lock:
                self.changing_fetches += 1
                first = self.changing_fetches == 1
            text = CHANGING_FIRST if first else CHANGING_LATER
            return Reply(200, article("Harbour plan", text, WIND_MORE), HTML)
        if route == "/private/secret":
            return Reply(200, article("Secret", SOLAR_FACT), HTML)
        if route == "/huge":
            filler = "<p>" + "Padding text for a very large page. " * 100 + "</p>\n"
            count = self.huge_bytes // len(filler) + 1
            return Reply(200, article("Huge", SOLAR_FACT) + filler * count, HTML)
        if route == "/search":
            results = [
                {"url": url, "title": f"Result {n}", "content": "", "engine": "fake"}
                for n, url in enumerate(self.search_results, start=1)
            ]
            return Reply(200, {"query": "", "number_of_results": len(results), "results": results})
        return Reply(404, "<html><body><h1>Not found</h1></body></html>", HTML)
