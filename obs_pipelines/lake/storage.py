"""Object storage under the lake root, a local folder or an S3 prefix: listing it, and handing
its filesystem and credentials to pyarrow and DuckDB. The Delta tables' own reads and writes go
through delta-rs and DuckDB's delta extension (:mod:`obs_pipelines.lake.delta`)."""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow.fs as pafs

from obs_pipelines.config import LakeConfig, secret
from obs_pipelines.errors import LakeError
from obs_pipelines.sql_literal import sql_literal

if TYPE_CHECKING:
    import duckdb


def s3_location(root: str) -> tuple[str, str]:
    """The bucket and the key prefix (no slashes at its ends) of an ``s3://bucket/prefix`` root."""
    bucket, _, prefix = root.removeprefix("s3://").partition("/")
    return bucket, prefix.strip("/")


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    modified: datetime
    storage_class: str | None = None  # S3 only
    etag: str | None = None  # identifies this version of the object


class LocalStorage:
    """The lake in a folder."""

    def __init__(self, root: str) -> None:
        self.root = str(Path(root).resolve())

    def list_objects(self, prefix: str) -> list[StoredObject]:
        base = self._path(prefix)
        if base.is_file():
            stat = base.stat()
            key = base.relative_to(self.root).as_posix()
            return [] if base.name.startswith(".") else [_stored(key, stat)]
        found: list[StoredObject] = []
        base_text = str(base)
        base_key = base.relative_to(self.root).as_posix()
        base_key = "" if base_key == "." else base_key
        pending = [base_text]
        while pending:
            try:
                entries = os.scandir(pending.pop())
            except (FileNotFoundError, NotADirectoryError):
                continue
            with entries:
                for entry in entries:
                    if entry.is_dir():
                        pending.append(entry.path)
                    elif entry.is_file() and not entry.name.startswith("."):
                        key = (base_key + entry.path[len(base_text) :]).lstrip("/")
                        found.append(_stored(key, entry.stat()))
        return sorted(found, key=lambda o: o.key)

    def url(self, key: str) -> str:
        return str(self._path(key))

    def arrow_filesystem(self) -> tuple[pafs.FileSystem, str]:
        return pafs.LocalFileSystem(), self.root

    def _path(self, key: str) -> Path:
        return Path(self.root, key)


class S3Storage:
    """The lake under ``s3://bucket/prefix`` on AWS or any S3-compatible endpoint.

    Every S3 call is bounded, through boto3 and pyarrow alike: 10 s to connect, 60 s at most
    waiting on a silent connection, and 5 attempts in all (the "standard" retry mode: backoff
    with jitter on throttling, 5xx answers and connection errors), so a stalled endpoint fails a
    run within minutes instead of hanging it.
    """

    CONNECT_TIMEOUT_SECONDS = 10.0
    READ_TIMEOUT_SECONDS = 60.0
    MAX_ATTEMPTS = 5

    def __init__(
        self,
        root: str,
        config: LakeConfig,
        *,
        connect_timeout: float = CONNECT_TIMEOUT_SECONDS,
        read_timeout: float = READ_TIMEOUT_SECONDS,
        retries: dict[str, object] | None = None,
    ) -> None:
        """``connect_timeout``, ``read_timeout`` and ``retries`` (botocore's) default to what
        runs need; ``obs doctor`` asks once, briefly, whether the endpoint answers at all."""
        import boto3
        from botocore.config import Config as BotoConfig

        self.root = root
        self.bucket, self.prefix = s3_location(root)
        s3 = config.s3
        self._endpoint = s3.endpoint_url
        self._region = s3.region
        self._access_key = secret(s3.access_key_id_env) if s3.access_key_id_env else None
        self._secret_key = secret(s3.secret_access_key_env) if s3.secret_access_key_env else None
        self._token = secret(s3.session_token_env) if s3.session_token_env else None
        self.client = boto3.client(
            "s3",
            endpoint_url=self._endpoint,
            region_name=self._region,
            aws_access_key_id=self._access_key,
            aws_secret_access_key=self._secret_key,
            aws_session_token=self._token,
            config=BotoConfig(
                connect_timeout=connect_timeout,
                read_timeout=read_timeout,
                retries=retries or {"max_attempts": self.MAX_ATTEMPTS, "mode": "standard"},
            ),
        )

    def list_objects(self, prefix: str) -> list[StoredObject]:
        found = []
        paginator = self.client.get_paginator("list_objects_v2")
        with self.errors(f"list s3://{self.bucket}/{self._key(prefix)}"):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(prefix)):
                for item in page.get("Contents", []):
                    key = item["Key"][len(self.prefix) + 1 :] if self.prefix else item["Key"]
                    found.append(
                        StoredObject(
                            key,
                            item["Size"],
                            item["LastModified"].astimezone(UTC),
                            item.get("StorageClass", "STANDARD"),
                            item.get("ETag"),
                        )
                    )
        return sorted(found, key=lambda o: o.key)

    def url(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def arrow_filesystem(self) -> tuple[pafs.FileSystem, str]:
        endpoint = self._endpoint or ""
        fs = pafs.S3FileSystem(
            access_key=self._access_key,
            secret_key=self._secret_key,
            session_token=self._token,
            region=self._region,
            endpoint_override=endpoint.split("://", 1)[-1] or None,
            scheme="http" if endpoint.startswith("http://") else "https",
            connect_timeout=self.CONNECT_TIMEOUT_SECONDS,
            request_timeout=self.READ_TIMEOUT_SECONDS,
            retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=self.MAX_ATTEMPTS),
        )
        return fs, f"{self.bucket}/{self.prefix}".rstrip("/")

    def duckdb_secret_sql(self) -> str:
        """A temporary DuckDB secret for this lake (never persisted, never logged). Every value
        is a quoted literal: a credential holding a quote stays a value, never SQL."""
        parts = ["TYPE s3", f"REGION {sql_literal(self._region)}", "URL_STYLE 'path'"]
        if self._access_key:
            parts += [
                f"KEY_ID {sql_literal(self._access_key)}",
                f"SECRET {sql_literal(self._secret_key or '')}",
            ]
        if self._token:
            parts.append(f"SESSION_TOKEN {sql_literal(self._token)}")
        if self._endpoint:
            host = self._endpoint.split("://", 1)[-1]
            parts += [
                f"ENDPOINT {sql_literal(host)}",
                f"USE_SSL {str(self._endpoint.startswith('https')).lower()}",
            ]
        return f"CREATE OR REPLACE TEMPORARY SECRET obs_lake ({', '.join(parts)})"

    def create_duckdb_secret(self, con: "duckdb.DuckDBPyConnection") -> None:
        """Create :meth:`duckdb_secret_sql` in ``con``; a refusal is one line that never
        repeats the statement (DuckDB's errors quote it, credentials included)."""
        import duckdb

        try:
            con.execute(self.duckdb_secret_sql())
        except duckdb.Error as exc:
            raise LakeError(
                f"DuckDB refused the S3 secret for {self.root} ({type(exc).__name__}); check "
                "the credentials named under lake.s3"
            ) from None

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    @contextmanager
    def errors(self, action: str) -> Iterator[None]:
        """S3 and network failures of ``action`` as one LakeError line that names the bucket."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "error")
            hint = {
                "NoSuchBucket": f"create bucket {self.bucket} or fix lake.root",
                "AccessDenied": "check the credentials named under lake.s3",
                "InvalidAccessKeyId": "check the credentials named under lake.s3",
                "SignatureDoesNotMatch": "check the credentials named under lake.s3",
            }.get(code, "check lake.root and lake.s3")
            raise LakeError(f"could not {action}: {code}; {hint}") from None
        except BotoCoreError as exc:
            raise LakeError(
                f"could not {action}: {exc}; check lake.s3.endpoint_url and the network"
            ) from None


def _stored(key: str, stat: os.stat_result) -> StoredObject:
    return StoredObject(
        key=key,
        size=stat.st_size,
        modified=datetime.fromtimestamp(stat.st_mtime, UTC),
        etag=_local_etag(stat),
    )


def _local_etag(stat: os.stat_result) -> str:
    return f"{stat.st_mtime_ns}-{stat.st_size}-{stat.st_ino}"


def open_storage(config: LakeConfig, root: str) -> LocalStorage | S3Storage:
    return S3Storage(root, config) if root.startswith("s3://") else LocalStorage(root)
