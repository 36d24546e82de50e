"""Object storage under the lake root: a local folder or an S3 prefix, behind one small interface.

Publishing is the only way data enters the lake, and it is atomic: a file is staged elsewhere and
appears under its final key whole or not at all (``os.replace`` locally; a single PUT or a
completed multipart upload on S3). Nothing ever appends to a published object.
"""

import os
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import pyarrow.fs as pafs

from obs_pipelines.config import LakeConfig, secret
from obs_pipelines.errors import LakeError

STAGING_SUFFIX = ".tmp"


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    modified: datetime


class Storage(Protocol):
    root: str

    def staging(self, key: str) -> AbstractContextManager[Path]: ...

    def publish(self, staged: Path, key: str) -> int: ...

    def list_objects(self, prefix: str) -> list[StoredObject]: ...

    def delete(self, keys: list[str]) -> None: ...

    def read_bytes(self, key: str) -> bytes: ...

    def url(self, key: str) -> str: ...

    def arrow_filesystem(self) -> tuple[pafs.FileSystem, str]: ...


class LocalStorage:
    """The lake in a folder. Staged files sit beside their target, hidden by a dot and a suffix."""

    def __init__(self, root: str) -> None:
        self.root = str(Path(root).resolve())

    @contextmanager
    def staging(self, key: str) -> Iterator[Path]:
        target = self._path(key)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LakeError(f"cannot create {target.parent} ({exc.strerror}); check lake.root and its permissions") from None
        staged = target.parent / f".{target.name}.{uuid.uuid4().hex}{STAGING_SUFFIX}"
        try:
            yield staged
        finally:
            staged.unlink(missing_ok=True)

    def publish(self, staged: Path, key: str) -> int:
        target = self._path(key)
        with open(staged, "rb") as handle:
            os.fsync(handle.fileno())
        size = staged.stat().st_size
        os.replace(staged, target)
        _fsync_dir(target.parent)
        self._sweep_stale_staging(target.parent)
        return size

    def list_objects(self, prefix: str) -> list[StoredObject]:
        base = self._path(prefix)
        if not base.exists():
            return []
        found = []
        for path in base.rglob("*") if base.is_dir() else [base]:
            if path.is_file() and not path.name.startswith("."):
                stat = path.stat()
                found.append(
                    StoredObject(
                        key=path.relative_to(self.root).as_posix(),
                        size=stat.st_size,
                        modified=datetime.fromtimestamp(stat.st_mtime, UTC),
                    )
                )
        return sorted(found, key=lambda o: o.key)

    def delete(self, keys: list[str]) -> None:
        for key in keys:
            self._path(key).unlink(missing_ok=True)

    def read_bytes(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def url(self, key: str) -> str:
        return str(self._path(key))

    def arrow_filesystem(self) -> tuple[pafs.FileSystem, str]:
        return pafs.LocalFileSystem(), self.root

    def _path(self, key: str) -> Path:
        return Path(self.root, key)

    @staticmethod
    def _sweep_stale_staging(folder: Path) -> None:
        """Remove staging files a crashed writer left here more than an hour ago."""
        horizon = datetime.now(UTC).timestamp() - 3600
        for stale in folder.glob(f".*{STAGING_SUFFIX}"):
            try:
                if stale.stat().st_mtime < horizon:
                    stale.unlink()
            except FileNotFoundError:
                pass


class S3Storage:
    """The lake under ``s3://bucket/prefix`` on AWS or any S3-compatible endpoint."""

    def __init__(self, root: str, config: LakeConfig) -> None:
        import boto3
        from botocore.config import Config as BotoConfig

        self.root = root
        self.bucket, _, prefix = root.removeprefix("s3://").partition("/")
        self.prefix = prefix.strip("/")
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
            config=BotoConfig(retries={"max_attempts": 5, "mode": "standard"}),
        )

    @contextmanager
    def staging(self, key: str) -> Iterator[Path]:
        import tempfile

        handle, name = tempfile.mkstemp(prefix="obs-", suffix=STAGING_SUFFIX)
        os.close(handle)
        staged = Path(name)
        try:
            yield staged
        finally:
            staged.unlink(missing_ok=True)

    def publish(self, staged: Path, key: str) -> int:
        size = staged.stat().st_size
        with self._errors(f"upload s3://{self.bucket}/{self._key(key)}"):
            self.client.upload_file(str(staged), self.bucket, self._key(key))
        return size

    def list_objects(self, prefix: str) -> list[StoredObject]:
        found = []
        paginator = self.client.get_paginator("list_objects_v2")
        with self._errors(f"list s3://{self.bucket}/{self._key(prefix)}"):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(prefix)):
                for item in page.get("Contents", []):
                    key = item["Key"][len(self.prefix) + 1 :] if self.prefix else item["Key"]
                    found.append(StoredObject(key, item["Size"], item["LastModified"].astimezone(UTC)))
        return sorted(found, key=lambda o: o.key)

    def delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):
            batch = [{"Key": self._key(k)} for k in keys[start : start + 1000]]
            with self._errors(f"delete from s3://{self.bucket}"):
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})

    def read_bytes(self, key: str) -> bytes:
        with self._errors(f"read s3://{self.bucket}/{self._key(key)}"):
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()

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
        )
        return fs, f"{self.bucket}/{self.prefix}".rstrip("/")

    def duckdb_secret_sql(self) -> str:
        """A temporary DuckDB secret for this lake (never persisted, never logged)."""
        parts = ["TYPE s3", f"REGION '{self._region}'", "URL_STYLE 'path'"]
        if self._access_key:
            parts += [f"KEY_ID '{self._access_key}'", f"SECRET '{self._secret_key}'"]
        if self._token:
            parts.append(f"SESSION_TOKEN '{self._token}'")
        if self._endpoint:
            host = self._endpoint.split("://", 1)[-1]
            parts += [f"ENDPOINT '{host}'", f"USE_SSL {str(self._endpoint.startswith('https')).lower()}"]
        return f"CREATE OR REPLACE TEMPORARY SECRET obs_lake ({', '.join(parts)})"

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
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
            raise LakeError(f"could not {action}: {exc}; check lake.s3.endpoint_url and the network") from None


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def open_storage(config: LakeConfig, root: str) -> LocalStorage | S3Storage:
    return S3Storage(root, config) if root.startswith("s3://") else LocalStorage(root)
