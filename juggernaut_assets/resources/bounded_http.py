"""Reading another service's answer under a size cap, so a runaway or hostile endpoint cannot
fill memory: the body is streamed and refused once it passes `max_bytes`."""

from __future__ import annotations

from typing import Any

import httpx

_DROPPED = ("content-encoding", "content-length", "transfer-encoding")


class ResponseTooLarge(Exception):
    """The answer's body is larger than the caller allows."""


def send_bounded(
    client: httpx.Client, method: str, url: str, *, max_bytes: int, **kwargs: Any
) -> httpx.Response:
    """`client.request(method, url, **kwargs)`, its (decoded) body read up to `max_bytes`."""
    with client.stream(method, url, **kwargs) as response:
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > max_bytes:
                raise ResponseTooLarge(
                    f"the answer from {response.url.host} is larger than {max_bytes:,} bytes"
                )
            chunks.append(chunk)
    headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in _DROPPED]
    return httpx.Response(
        response.status_code,
        headers=headers,
        content=b"".join(chunks),
        request=response.request,
    )
