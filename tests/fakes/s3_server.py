"""A real S3 server on 127.0.0.1 (moto's), and buckets on it, for tests of the object store.

`s3_server()` serves on a free port; `new_bucket(endpoint)` creates a bucket there and returns
the environment that points the platform's artifacts at it (`JUGGERNAUT_ARTIFACTS_DIR`, the
endpoint and throwaway credentials under the standard AWS names). Import it only after
`pytest.importorskip("moto.server")`: moto and boto3 are test dependencies.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

KEY_ID = "AKIDTESTONLY0000"
SECRET = "test-secret-never-stored"
REGION = "us-east-1"


@contextlib.contextmanager
def s3_server() -> Iterator[str]:
    """moto's S3 server on 127.0.0.1, on a free port; yields its endpoint URL."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def credentials(endpoint: str) -> dict[str, str]:
    """The AWS variables a client (ours through botocore, or boto3 here) reads."""
    return {
        "AWS_ACCESS_KEY_ID": KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL": endpoint,
    }


@dataclass
class Bucket:
    """A fresh bucket on the test's S3 server, and a boto3 client to look inside it."""

    name: str
    client: Any
    env: dict[str, str] = field(default_factory=dict)
    """Points `JUGGERNAUT_ARTIFACTS_DIR` at `s3://<name>/artifacts`, with the credentials."""

    def keys(self, prefix: str = "") -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.name, Prefix=prefix
        )
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def read(self, uri: str) -> bytes:
        return self.client.get_object(Bucket=self.name, Key=self.key(uri))["Body"].read()

    def key(self, uri: str) -> str:
        prefix = f"s3://{self.name}/"
        assert uri.startswith(prefix), uri
        return uri.removeprefix(prefix)


def new_bucket(endpoint: str) -> Bucket:
    """A bucket of its own on the server at `endpoint`."""
    name = f"juggernaut-{uuid.uuid4().hex[:12]}"
    auth = credentials(endpoint)
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=KEY_ID,
        aws_secret_access_key=SECRET,
    )
    client.create_bucket(Bucket=name)
    return Bucket(name, client, {**auth, "JUGGERNAUT_ARTIFACTS_DIR": f"s3://{name}/artifacts"})
