"""S3 storage for inputs and results (AWS, MinIO in compose, SeaweedFS in tests).

Keys are deterministic and scoped by client, so isolation and retention are prefix operations and a
retried job overwrites its own result instead of leaving orphans:

    clients/<client_id>/inputs/<job_id>            the uploaded or fetched input
    clients/<client_id>/results/<job_id>.<ext>     the restored photo
    clients/<client_id>/uploads/<upload_id>        a file sent with a presigned POST (POST /v1/uploads)
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import boto3
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import ClientError

from portrait.settings import Settings, get_settings


def client_prefix(client_id: uuid.UUID | str) -> str:
    return f"clients/{client_id}/"


def input_key(client_id: uuid.UUID | str, job_id: uuid.UUID | str) -> str:
    return f"{client_prefix(client_id)}inputs/{job_id}"


def result_key(client_id: uuid.UUID | str, job_id: uuid.UUID | str, ext: str) -> str:
    return f"{client_prefix(client_id)}results/{job_id}.{ext}"


def upload_key(client_id: uuid.UUID | str, upload_id: uuid.UUID | str) -> str:
    return f"{client_prefix(client_id)}uploads/{upload_id}"


class ObjectMissing(Exception):
    pass


class Storage:
    def __init__(self, settings: Settings | None = None) -> None:
        s = settings or get_settings()
        self.bucket = s.s3_bucket
        self.presign_ttl_s = s.presign_ttl_s
        cfg = Config(signature_version="s3v4", s3={"addressing_style": "path"},
                     retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=30)
        common: dict[str, Any] = dict(region_name=s.s3_region, aws_access_key_id=s.s3_access_key_id,
                                      aws_secret_access_key=s.s3_secret_access_key, config=cfg)
        self.s3: BaseClient = boto3.client("s3", endpoint_url=s.s3_endpoint_url, **common)
        self._probe_args: dict[str, Any] = {**common, "endpoint_url": s.s3_endpoint_url}
        self._probes: dict[float, BaseClient] = {}  # per timeout: readiness probes
        # Presigned URLs are signed for the host the *client* will call (e.g. a public MinIO name).
        public = s.s3_public_endpoint_url or s.s3_endpoint_url
        self._presigner: BaseClient = (
            self.s3 if public == s.s3_endpoint_url else boto3.client("s3", endpoint_url=public, **common)
        )
        if s.s3_create_bucket:
            self.ensure_bucket()

    def ensure_bucket(self) -> None:
        try:
            self.s3.head_bucket(Bucket=self.bucket)
        except ClientError:
            try:
                self.s3.create_bucket(Bucket=self.bucket)
            except ClientError as e:  # created concurrently by another process
                if e.response.get("Error", {}).get("Code") not in ("BucketAlreadyOwnedByYou",
                                                                   "BucketAlreadyExists"):
                    raise

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)

    def get(self, key: str) -> bytes:
        try:
            return self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                raise ObjectMissing(key) from e
            raise

    def size(self, key: str) -> int | None:
        """Object size, or None when it does not exist."""
        try:
            return int(self.s3.head_object(Bucket=self.bucket, Key=key)["ContentLength"])
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                return None
            raise

    def delete(self, key: str) -> None:
        self.s3.delete_object(Bucket=self.bucket, Key=key)

    def presign_get(self, key: str, ttl_s: int | None = None) -> tuple[str, datetime]:
        ttl = ttl_s or self.presign_ttl_s
        url = self._presigner.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=ttl
        )
        return url, datetime.now(UTC) + timedelta(seconds=ttl)

    def presign_post(self, key: str, max_bytes: int, ttl_s: int) -> tuple[str, dict[str, str], datetime]:
        """A browser-style POST policy for exactly ``key``, 1..max_bytes long (the store enforces both).

        SeaweedFS, MinIO and AWS all check the policy's signature, key and content-length-range.
        """
        post = self._presigner.generate_presigned_post(
            self.bucket, key, Conditions=[["content-length-range", 1, max_bytes]], ExpiresIn=ttl_s
        )
        return post["url"], post["fields"], datetime.now(UTC) + timedelta(seconds=ttl_s)

    def delete_many(self, keys: list[str]) -> None:
        """Delete up to 1000 keys in one request (missing keys are fine)."""
        for i in range(0, len(keys), 1000):
            chunk = keys[i:i + 1000]
            if chunk:
                self.s3.delete_objects(Bucket=self.bucket,
                                       Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True})

    def ping(self, timeout_s: float | None = None) -> None:
        """HEAD the bucket. With ``timeout_s`` (readiness probes) through a client that makes one attempt
        and waits at most that long to connect and to read, instead of 3 attempts of up to 5 + 30 s."""
        client = self.s3 if timeout_s is None else self._probe_client(timeout_s)
        client.head_bucket(Bucket=self.bucket)

    def _probe_client(self, timeout_s: float) -> BaseClient:
        if timeout_s not in self._probes:
            cfg = self._probe_args["config"].merge(
                Config(connect_timeout=timeout_s, read_timeout=timeout_s, retries={"max_attempts": 1}))
            self._probes[timeout_s] = boto3.client("s3", **{**self._probe_args, "config": cfg})
        return self._probes[timeout_s]


@lru_cache
def get_storage() -> Storage:
    return Storage()
