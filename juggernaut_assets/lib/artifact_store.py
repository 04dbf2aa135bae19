"""Where file artifacts live: a local directory or an object store, as one `UPath`.

`JUGGERNAUT_ARTIFACTS_DIR` is a local path (the default, `.local/artifacts`) or an fsspec URL
such as `s3://bucket/prefix`, so that workers on several machines write where every verifier
and the UI read. An artifact records `str(path)` as its `uri`: for a local file the plain path
it has always been (`/…/attempt-1/query_result.json`), for S3 the object's URL
(`s3://bucket/prefix/…`). `artifact_path` turns either back into a path to read or write.

S3 is configured from the environment only, under the standard AWS names, which botocore
reads itself (s3fs → aiobotocore): credentials from `AWS_ACCESS_KEY_ID` and
`AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`; or a profile, or the machine's role), the
region from `AWS_DEFAULT_REGION`. This module never reads credentials, so they are in no
path's storage options, log line or database row. The endpoint of an S3-compatible store
(MinIO, Ceph, a test server) is `AWS_ENDPOINT_URL_S3` or else `AWS_ENDPOINT_URL`; botocore
honours both, and they are also passed as `endpoint_url`, so fsspec's cached filesystem is one
per endpoint. The polars IO manager (`JUGGERNAUT_ASSETS_DIR=s3://…`) reads the same variables.
S3 needs the `s3fs` package (the `s3` extra).

A stored `uri` is read only where artifacts are written: a local path, or the store of
`JUGGERNAUT_ARTIFACTS_DIR` (its protocol). Rows may come from other programs (an operator
points the platform at the production database), and fsspec would otherwise follow any URL it
knows (`http://`, `ftp://`, `memory://`, …) when the audit re-reads an artifact:
`artifact_path` raises `ArtifactLocationError` for those, and the verifiers report it as the
artifact's problem.

Object stores have no directories: `make_dirs` creates a local directory and does nothing on
an object store (s3fs's `mkdir` would create a missing bucket; a missing bucket must fail the
write instead).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from upath import UPath

_URL = re.compile(r"^(?P<protocol>[A-Za-z][A-Za-z0-9+.-]*)://")
_FILE_URL = "file://"
_S3_PROTOCOLS = ("s3", "s3a")
_LOCAL_PROTOCOLS = ("", "file", "local")
ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")


def storage_options(protocol: str) -> dict[str, str]:
    """fsspec options for `protocol` from the environment: S3's endpoint, never credentials."""
    if protocol.lower() not in _S3_PROTOCOLS:
        return {}
    for name in ENDPOINT_VARIABLES:
        if os.environ.get(name):
            return {"endpoint_url": os.environ[name]}
    return {}


class ArtifactLocationError(ValueError):
    """A stored artifact location this platform does not read (see the module docstring)."""


def _store_protocol() -> str:
    """The protocol of `JUGGERNAUT_ARTIFACTS_DIR` ("" for a local directory)."""
    url = _URL.match(os.environ.get("JUGGERNAUT_ARTIFACTS_DIR", ""))
    return url["protocol"].lower() if url else ""


def artifact_path(location: str | os.PathLike[str] | UPath) -> UPath:
    """A configured artifacts directory or a stored `uri`, as a path to read or write.

    A local path stays a local path (its `str` is the same text); `file://` is dropped, as
    the verifiers always did; a URL of the configured store (`s3://…`) gets its storage
    options. Any other URL raises `ArtifactLocationError`.
    """
    if isinstance(location, UPath):
        return location
    text = os.fspath(location)
    if text.startswith(_FILE_URL):
        return UPath(text.removeprefix(_FILE_URL))
    url = _URL.match(text)
    if url is None:
        return UPath(text)
    protocol = url["protocol"].lower()
    if protocol not in _LOCAL_PROTOCOLS and protocol != _store_protocol():
        raise ArtifactLocationError(
            f"{protocol}:// is not where artifacts are stored (JUGGERNAUT_ARTIFACTS_DIR)"
        )
    return UPath(text, **storage_options(protocol))


def is_local(path: Path | UPath) -> bool:
    """True for a path on this machine's file system."""
    return isinstance(path, Path) or path.protocol in _LOCAL_PROTOCOLS


def make_dirs(path: Path | UPath) -> None:
    """Create a local directory and its parents; nothing to do in an object store."""
    if is_local(path):
        path.mkdir(parents=True, exist_ok=True)
