"""Object storage under the lake root: a local folder or an S3 prefix, behind one small interface.

Publishing is the only way data enters the lake, and it is atomic: a file is staged elsewhere and
appears under its final key whole or not at all (``os.replace`` locally; a single PUT or a
completed multipart upload on S3). Nothing ever appends to a published object.

Tier moves add three things: a storage class set on upload, deletes that only remove the exact
version that was read (``delete_if_unchanged``: an ingest that rewrote the file meanwhile wins),
and a lock so two tiering runs never work at once (``flock`` locally, a conditional PUT on S3).
"""

import contextlib
import fcntl
import json
import os
import socket
import tempfile
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
from obs_pipelines.lake import inventory

STAGING_SUFFIX = ".tmp"


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    modified: datetime
    storage_class: str | None = None  # S3 only
    etag: str | None = None  # identifies this version of the object


class LockBusy(LakeError):
    """Another tiering run holds the lake's lock."""


@dataclass
class HeldLock:
    key: str
    token: str  # local: the open descriptor's path; S3: the lock object's ETag
    fd: int | None = None


def _lock_body(owner: str, ttl_seconds: float) -> bytes:
    now = datetime.now(UTC)
    return json.dumps(
        {
            "owner": owner,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "acquired": now.isoformat(),
            "expires": datetime.fromtimestamp(now.timestamp() + ttl_seconds, UTC).isoformat(),
        }
    ).encode()


class Storage(Protocol):
    root: str

    def staging(self, key: str) -> AbstractContextManager[Path]: ...

    def publish(
        self, staged: Path, key: str, storage_class: str | None = None, rows: int | None = None
    ) -> int: ...

    def delete_if_unchanged(
        self, key: str, etag: str | None, markers: tuple[str, ...] = ()
    ) -> bool: ...

    def put_empty(self, key: str) -> None: ...

    def move(self, source: str, target: str) -> None: ...

    def acquire_lock(self, name: str, owner: str, ttl_seconds: float) -> HeldLock: ...

    def release_lock(self, lock: HeldLock) -> None: ...

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
            raise LakeError(
                f"cannot create {target.parent} ({exc.strerror}); check lake.root and its permissions"
            ) from None
        staged = target.parent / f".{target.name}.{uuid.uuid4().hex}{STAGING_SUFFIX}"
        try:
            yield staged
        finally:
            staged.unlink(missing_ok=True)

    def publish(
        self, staged: Path, key: str, storage_class: str | None = None, rows: int | None = None
    ) -> int:
        """Rename ``staged`` onto ``key`` (a folder has no storage classes; ``rows`` is in the
        file's own footer)."""
        target = self._path(key)
        with open(staged, "rb") as handle:
            os.fsync(handle.fileno())
        size = staged.stat().st_size
        sha = inventory.file_sha256(staged) if inventory.is_data_key(key) else ""
        os.replace(staged, target)
        _fsync_dir(target.parent)
        self._sweep_stale_staging(target.parent)
        if sha:
            _record(self, key, rows, size, sha)
        return size

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

    def delete(self, keys: list[str]) -> None:
        for key in keys:
            path = self._path(key)
            path.unlink(missing_ok=True)
            if key.startswith(f"{inventory.INVENTORY}/"):
                self._remove_empty_folders(path.parent, keep=2)

    def put_empty(self, key: str) -> None:
        """Create an empty object (an inventory marker) at ``key``, durably."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
        _fsync_dir(path.parent)

    def move(self, source: str, target: str) -> None:
        """Rename ``source`` to ``target`` (quarantine); a missing source is not an error."""
        destination = self._path(target)
        destination.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(self._path(source), destination)
        except FileNotFoundError:
            return
        _fsync_dir(destination.parent)
        self._remove_empty_folders(self._path(source).parent)

    def delete_if_unchanged(
        self, key: str, etag: str | None, markers: tuple[str, ...] = ()
    ) -> bool:
        """Delete ``key`` (and the inventory ``markers`` it was listed with) only if it is still
        the version ``etag`` names; True if it is gone.

        The file is first renamed aside (atomic), so a writer replacing it at the same moment
        lands its new version under the key (with a marker of its own) and is never deleted by
        mistake.
        """
        path = self._path(key)
        aside = path.with_name(f".{path.name}.{uuid.uuid4().hex}.deleting")
        try:
            os.rename(path, aside)
        except FileNotFoundError:
            self.delete(list(markers))
            return True
        if etag is None or _local_etag(aside.stat()) == etag:
            aside.unlink()
            _fsync_dir(path.parent)
            self._remove_empty_folders(path.parent)
            self.delete(list(markers))
            return True
        with contextlib.suppress(FileExistsError):  # a newer version already took the key
            os.link(aside, path)
        aside.unlink()
        return False

    def acquire_lock(self, name: str, owner: str, ttl_seconds: float) -> HeldLock:
        """An exclusive ``flock`` on ``<root>/_locks/<name>``: released by the kernel if the
        holder dies, so it never needs to expire."""
        path = self._path(f"_locks/{name}")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode(errors="replace")
            os.close(fd)
            raise LockBusy(
                f"another tiering run holds {path} ({_describe_holder(holder)}); "
                "wait for it to finish, it does the same work"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, _lock_body(owner, ttl_seconds), 0)
        return HeldLock(str(path), str(path), fd)

    def release_lock(self, lock: HeldLock) -> None:
        if lock.fd is not None:
            fcntl.flock(lock.fd, fcntl.LOCK_UN)
            os.close(lock.fd)
            lock.fd = None

    def sweep_staging(self, prefix: str) -> int:
        """Remove every staged or half-deleted file under ``prefix`` (call with the tier lock held:
        only tiering stages files there)."""
        base = self._path(prefix)
        removed = 0
        if base.is_dir():
            for stale in list(base.rglob(".*")):
                if stale.is_file() and stale.name.endswith((STAGING_SUFFIX, ".deleting")):
                    stale.unlink(missing_ok=True)
                    removed += 1
        return removed

    def read_bytes(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def url(self, key: str) -> str:
        return str(self._path(key))

    def arrow_filesystem(self) -> tuple[pafs.FileSystem, str]:
        return pafs.LocalFileSystem(), self.root

    def _path(self, key: str) -> Path:
        return Path(self.root, key)

    def _remove_empty_folders(self, folder: Path, keep: int = 2) -> None:
        """Drop partition folders a move emptied, up to the tier's dataset folder (``keep``
        levels under the root stay)."""
        root = Path(self.root)
        while folder != root and len(folder.relative_to(root).parts) > keep:
            try:
                folder.rmdir()
            except OSError:
                return
            folder = folder.parent

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
    """The lake under ``s3://bucket/prefix`` on AWS or any S3-compatible endpoint.

    Every S3 call is bounded, through boto3 and pyarrow alike: 10 s to connect, 60 s at most
    waiting on a silent connection, and 5 attempts in all (the "standard" retry mode: backoff
    with jitter on throttling, 5xx answers and connection errors), so a stalled endpoint fails a
    run within minutes instead of hanging it.
    """

    CONNECT_TIMEOUT_SECONDS = 10.0
    READ_TIMEOUT_SECONDS = 60.0
    MAX_ATTEMPTS = 5

    def __init__(self, root: str, config: LakeConfig) -> None:
        import boto3
        from botocore.config import Config as BotoConfig

        self.root = root
        self.bucket, _, prefix = root.removeprefix("s3://").partition("/")
        # Uploads are staged in a folder of their own, so a run can sweep what a crash left.
        self.staging_dir = str(Path(tempfile.gettempdir()) / f"obs-staging-{self.bucket}")
        Path(self.staging_dir).mkdir(parents=True, exist_ok=True)
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
            config=BotoConfig(
                connect_timeout=self.CONNECT_TIMEOUT_SECONDS,
                read_timeout=self.READ_TIMEOUT_SECONDS,
                retries={"max_attempts": self.MAX_ATTEMPTS, "mode": "standard"},
            ),
        )

    @contextmanager
    def staging(self, key: str) -> Iterator[Path]:
        # Tier moves stage under their own prefix: a run sweeps only what a crashed move left.
        prefix = "obs-" if key.startswith("hot/") else "obs-move-"
        handle, name = tempfile.mkstemp(prefix=prefix, suffix=STAGING_SUFFIX, dir=self.staging_dir)
        os.close(handle)
        staged = Path(name)
        try:
            yield staged
        finally:
            staged.unlink(missing_ok=True)

    def publish(
        self, staged: Path, key: str, storage_class: str | None = None, rows: int | None = None
    ) -> int:
        """Upload ``staged`` as ``key`` in ``storage_class``; the row count goes into the object's
        metadata so the catalog can list archived objects it cannot open."""
        size = staged.stat().st_size
        sha = inventory.file_sha256(staged) if inventory.is_data_key(key) else ""
        extra: dict[str, object] = {}
        if storage_class:
            extra["StorageClass"] = storage_class
        if rows is not None:
            extra["Metadata"] = {"rows": str(rows)}
        with self.errors(f"upload s3://{self.bucket}/{self._key(key)}"):
            self.client.upload_file(
                str(staged), self.bucket, self._key(key), ExtraArgs=extra or None
            )
        if sha:
            _record(self, key, rows, size, sha)
        return size

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

    def delete_if_unchanged(
        self, key: str, etag: str | None, markers: tuple[str, ...] = ()
    ) -> bool:
        """Delete ``key`` only if its ETag is still ``etag`` (a conditional DELETE), then the
        inventory ``markers`` it was listed with."""
        from botocore.exceptions import ClientError

        args: dict[str, str] = {"Bucket": self.bucket, "Key": self._key(key)}
        if etag:
            args["IfMatch"] = etag
        try:
            self.client.delete_object(**args)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code == "PreconditionFailed":
                return False
            if code not in ("NoSuchKey", "404"):
                raise LakeError(
                    f"could not delete s3://{self.bucket}/{self._key(key)}: {code}; check lake.s3"
                ) from None
        self.delete(list(markers))
        return True

    def put_empty(self, key: str) -> None:
        with self.errors(f"write s3://{self.bucket}/{self._key(key)}"):
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=b"")

    def move(self, source: str, target: str) -> None:
        """Copy ``source`` to ``target`` and delete it (quarantine); a missing source is fine."""
        from botocore.exceptions import ClientError

        try:
            self.client.copy_object(
                Bucket=self.bucket,
                Key=self._key(target),
                CopySource={"Bucket": self.bucket, "Key": self._key(source)},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return
            raise LakeError(
                f"could not move s3://{self.bucket}/{self._key(source)} aside: {exc}"
            ) from None
        self.delete([source])

    def object_rows(self, key: str) -> int | None:
        """Rows recorded in the object's metadata at upload (None if it was not recorded)."""
        with self.errors(f"read metadata of s3://{self.bucket}/{self._key(key)}"):
            head = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        rows = head.get("Metadata", {}).get("rows")
        return int(rows) if rows else None

    def acquire_lock(self, name: str, owner: str, ttl_seconds: float) -> HeldLock:
        """A lock object created with ``If-None-Match: *``; one past its expiry is taken over with
        ``If-Match`` on the ETag that was read, so two runs can never both take it."""
        from botocore.exceptions import ClientError

        key = self._key(f"_locks/{name}")
        body = _lock_body(owner, ttl_seconds)
        try:
            made = self.client.put_object(Bucket=self.bucket, Key=key, Body=body, IfNoneMatch="*")
            return HeldLock(key, made["ETag"])
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in (
                "PreconditionFailed",
                "ConditionalRequestConflict",
            ):
                raise LakeError(
                    f"could not take the tiering lock s3://{self.bucket}/{key}: {exc}"
                ) from None
        current = self.client.get_object(Bucket=self.bucket, Key=key)
        holder = current["Body"].read().decode(errors="replace")
        try:
            expired = datetime.fromisoformat(json.loads(holder)["expires"]) < datetime.now(UTC)
        except (ValueError, KeyError, TypeError):
            expired = True
        if expired:
            with contextlib.suppress(ClientError):  # unless someone else took it over first
                made = self.client.put_object(
                    Bucket=self.bucket, Key=key, Body=body, IfMatch=current["ETag"]
                )
                return HeldLock(key, made["ETag"])
        raise LockBusy(
            f"another tiering run holds s3://{self.bucket}/{key} ({_describe_holder(holder)}); "
            "wait for it to finish, or for the lock to expire (lake.lock_ttl)"
        )

    def release_lock(self, lock: HeldLock) -> None:
        from botocore.exceptions import ClientError

        with contextlib.suppress(ClientError):  # taken over after expiry: no longer ours
            self.client.delete_object(Bucket=self.bucket, Key=lock.key, IfMatch=lock.token)

    def sweep_staging(self, prefix: str) -> int:
        """Remove staged uploads a crashed run left in this machine's staging folder."""
        removed = 0
        for stale in Path(self.staging_dir).glob(f"obs-move-*{STAGING_SUFFIX}"):
            stale.unlink(missing_ok=True)
            removed += 1
        return removed

    def delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):
            batch = [{"Key": self._key(k)} for k in keys[start : start + 1000]]
            with self.errors(f"delete from s3://{self.bucket}"):
                self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
                )

    def read_bytes(self, key: str) -> bytes:
        with self.errors(f"read s3://{self.bucket}/{self._key(key)}"):
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
            connect_timeout=self.CONNECT_TIMEOUT_SECONDS,
            request_timeout=self.READ_TIMEOUT_SECONDS,
            retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=self.MAX_ATTEMPTS),
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
            parts += [
                f"ENDPOINT '{host}'",
                f"USE_SSL {str(self._endpoint.startswith('https')).lower()}",
            ]
        return f"CREATE OR REPLACE TEMPORARY SECRET obs_lake ({', '.join(parts)})"

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


def _record(
    store: "LocalStorage | S3Storage", key: str, rows: int | None, size: int, sha: str
) -> None:
    """Publish ``key`` in the inventory: its new marker first, then its older markers go."""
    if rows is None:
        raise LakeError(f"publishing {key} needs its row count for the inventory; this is a bug")
    marker = inventory.marker_key(key, rows, size, sha)
    store.put_empty(marker)
    stale = [o.key for o in store.list_objects(inventory.marker_prefix(key)) if o.key != marker]
    store.delete(stale)


def _local_etag(stat: os.stat_result) -> str:
    return f"{stat.st_mtime_ns}-{stat.st_size}-{stat.st_ino}"


def _describe_holder(holder: str) -> str:
    try:
        info = json.loads(holder)
        return f"{info['owner']} on {info['host']} pid {info['pid']} since {info['acquired']}"
    except (ValueError, KeyError, TypeError):
        return "holder unknown"


def _stored(key: str, stat: os.stat_result) -> StoredObject:
    return StoredObject(
        key=key,
        size=stat.st_size,
        modified=datetime.fromtimestamp(stat.st_mtime, UTC),
        etag=_local_etag(stat),
    )


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def open_storage(config: LakeConfig, root: str) -> LocalStorage | S3Storage:
    return S3Storage(root, config) if root.startswith("s3://") else LocalStorage(root)
