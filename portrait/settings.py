"""Every setting of the service in one pydantic-settings class.

Each field is read from the environment variable of the same name in upper case (``DATABASE_URL``,
``S3_BUCKET`` …) or from a ``.env`` file in the working directory. docs/settings.md lists them all,
generated from this class (scripts/gen_docs.py). ``restoration/`` never imports this module: the CLI
and the worker translate the fields it needs into plain arguments, so the ML core stays free of service
concerns.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from portrait.urlguard import parse_allow_entry
from restoration import formats
from restoration.options import MaskSource, Precision
from restoration.paths import default_weights_dir

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    log_format: Literal["text", "json"] = Field(
        "text", description="Logs of the API and workers: text lines, or one JSON object per line with the "
                            "request and job context (request_id, job_id, client_id, batch_id, attempt).")

    # --- stores -------------------------------------------------------------------------------
    database_url: str = Field(
        "postgresql+psycopg://postgres@127.0.0.1:5432/portrait",
        description="SQLAlchemy URL of the Postgres database, the source of truth for jobs.",
    )
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Celery broker (messages only).")
    s3_endpoint_url: str | None = Field(
        None, description="S3 endpoint; unset means AWS. MinIO/SeaweedFS: http://host:port."
    )
    s3_public_endpoint_url: str | None = Field(
        None, description="Endpoint used in presigned URLs handed to clients, if it differs."
    )
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None
    s3_bucket: str = Field("portrait", description="Bucket holding inputs and results.")
    s3_create_bucket: bool = Field(True, description="Create the bucket at start-up if missing.")
    presign_ttl_s: int = Field(3600, description="Lifetime of presigned result URLs, seconds.")

    # --- API ----------------------------------------------------------------------------------
    max_upload_bytes: int = Field(25 * 1024 * 1024, description="Largest accepted input, bytes.")
    max_json_bytes: int = Field(2 * 1024 * 1024, description="Largest JSON request body (jobs, batches, uploads), "
                                                             "bytes; larger ones get 413 before they are read.")
    max_image_pixels: int = Field(formats.MAX_PIXELS, description="Largest accepted input, pixels (w*h).")
    max_image_side: int = Field(formats.MAX_SIDE, description="Largest accepted input side, pixels.")
    min_image_side: int = Field(formats.MIN_SIDE, description="Smallest accepted input side, pixels.")
    url_fetch_timeout_s: float = Field(
        15.0, description="Total deadline for fetching an input URL: every redirect, the headers and the body.")
    allow_http_urls: bool = Field(False, description="Accept plain http:// input URLs (tests only).")
    url_allowlist: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Hosts, addresses or CIDRs, each best scoped to a port or range ('127.0.0.1:9371', "
                    "'10.0.0.0/8:443', 'images.internal:8443', '[::1]:8080', '127.0.0.1:31000-31999'), that input and "
                    "webhook URLs may reach although they are not public addresses (tests, named internal sources). "
                    "An entry without a port opens every port of it. Comma-separated or JSON.",
    )
    url_max_redirects: int = Field(5, description="Redirects followed when fetching an input URL (each re-checked).")
    wait_max_s: float = Field(60.0, description="Longest hold of 'Prefer: wait=N' on POST /v1/jobs, seconds.")
    readyz_timeout_s: float = Field(
        2.0, description="Bound on /readyz: a database, Redis or S3 check that has not answered by then fails it (503)."
    )

    # --- batches, uploads, idempotency --------------------------------------------------------
    batch_max_items: int = Field(1000, description="Most items in one POST /v1/batches.")
    upload_url_ttl_s: int = Field(3600, description="Lifetime of the presigned POST returned by POST /v1/uploads.")
    idempotency_ttl_s: int = Field(
        48 * 3600, description="Idempotency keys are kept at least this long (Stripe: 24 h), then purged."
    )
    idempotency_lock_s: float = Field(
        120.0, description="An in-progress idempotent request older than this is presumed crashed; a retry may "
                           "take it over instead of getting 409 idempotency_request_in_progress."
    )

    # --- fairness: per-client limits (each client row may override them) ----------------------
    rate_limit_per_s: float = Field(20.0, description="Token bucket refill rate per client, requests per second.")
    rate_limit_burst: int = Field(100, description="Token bucket size per client: the largest burst accepted.")
    unauthenticated_rate_limit_per_s: float = Field(
        2.0, gt=0, description="Token bucket refill rate per source address for requests without a valid key "
                               "(each 401 costs 1); an empty bucket answers 429 rate_limited instead of 401.",
    )
    unauthenticated_rate_limit_burst: int = Field(
        30, ge=1, description="Token bucket size per source address for requests without a valid key.",
    )
    max_jobs_in_flight: int = Field(
        5000, description="Most queued+running jobs per client; a batch counts all its items. Over it: 429."
    )
    bulk_in_flight_per_client: int = Field(
        4, ge=1,
        description="Most batch items per client with a message in the bulk queue or running; the rest wait in "
                    "Postgres and are sent as those finish, clients taking turns. Set it to about 4 x the number "
                    "of GPU worker processes: below that count one client alone cannot keep every GPU busy, far "
                    "above it another client's new batch waits behind more of the first one's items.",
    )

    # --- worker -------------------------------------------------------------------------------
    device: str = Field("auto", description="Torch device for the pipeline: auto, cpu, cuda, cuda:N.")
    weights_dir: Path = Field(
        default_factory=default_weights_dir,
        description="Third-party weights (facexlib/, identity/, landmarks/, segmentation/, and "
                    "metrics/niqe_pris_params.npz, which fidelity=auto reads). Never committed.",
    )
    model_path: Path | None = Field(
        None, description="Generator weights (.safetensors); unset = the project's shipped default "
                          "(restoration/weights/restorer.safetensors); `classical` = the non-learned stand-in."
    )
    precision: Precision = Field(
        "auto", description="What the generator computes in: `auto` = bf16 on CUDA and on CPUs with AMX-BF16 or "
                            "AVX512-BF16 (1.4-2.4x faster there), fp32 elsewhere (bf16 is emulated, hence slower, "
                            "on other CPUs).")
    mask_source: MaskSource = Field(
        "input", description="Where the generator's face-part mask comes from: `input` = parsed from the degraded "
                             "face; `restored` = parsed from a first mask-free pass (two generator passes per "
                             "face); `none` = the mask-free path.")
    max_batch_faces: int = Field(
        0, ge=0, description="Faces per generator batch; 0 = auto: 16 on CUDA, 1 on the CPU (where a face costs "
                             "more in a bigger batch: restoration/pipeline.py AUTO_BATCH).")
    task_soft_time_limit_s: int = Field(240, description="Soft limit of one restoration task.")
    task_time_limit_s: int = Field(300, description="Hard limit; the child is killed past it.")
    worker_start_timeout_s: float = Field(
        180.0, description="How long a new worker child may take to load the pipeline before the parent gives up on "
                           "it (Celery's worker_proc_alive_timeout, 4 s by default: shorter than a model load, so "
                           "every replacement child was killed in a loop).")
    worker_metrics_port: int = Field(
        0, ge=0, le=65535, description="Port of a worker's Prometheus exporter (/metrics, all its processes "
                                       "merged); 0 = none. Give each worker on a host its own.")
    worker_metrics_host: str = Field("127.0.0.1", description="Address the worker's exporter binds (0.0.0.0 in "
                                                             "containers, for Prometheus to reach it).")
    max_attempts: int = Field(3, description="Attempts before a job fails with attempts_exhausted.")
    lease_s: int = Field(60, description="A running job whose heartbeat is older is presumed dead.")
    heartbeat_s: float = Field(10.0, description="How often a running task renews its lease.")
    queued_stale_s: int = Field(120, description="A queued job older than this is re-enqueued.")
    db_wait_s: float = Field(
        60.0, ge=0, description="How long a GPU worker waits for an unreachable Postgres, retrying, to claim a job "
                                "(then it gives the message back to Redis) or to record a finished job's outcome "
                                "(then the job runs again); meanwhile it takes no other message, so an outage "
                                "does not drain the queue.")
    sweep_interval_s: float = Field(30.0, description="How often the sweeper runs (Celery beat).")
    gpu_queue: str = Field("gpu", description="Interactive queue: single jobs (POST /v1/jobs).")
    gpu_bulk_queue: str = Field(
        "gpu-bulk", description="Bulk queue: batch items. GPU workers consume 'gpu' first, then this one."
    )
    webhook_queue: str = Field("webhooks", description="Queue consumed by webhook senders.")
    maintenance_queue: str = Field("maintenance", description="Queue for the sweeper.")
    fetch_queue: str = Field("fetch", description="Queue of URL-input fetches (CPU workers; never a GPU's time).")
    gpu_worker_children: int = Field(
        0, ge=0, description="Prefork children of a GPU worker per GPU (`portrait worker gpu`), each with its own "
                             "pipeline, so one child's host work (parsing, PNG, S3) overlaps another's GPU work; "
                             "0 = auto: CPU cores / 2 / GPUs on CUDA, 1 on the CPU (worker/layout.py).")
    worker_child_threads: int = Field(
        0, ge=0, description="Intra-op threads (torch, OpenCV) of each GPU worker child; 0 = CPU cores / children, "
                             "which `portrait worker gpu` works out and passes to its children.")
    cpu_worker_concurrency: int = Field(
        8, ge=1, description="Threads of a CPU worker (`portrait worker cpu`): URL fetches, webhook deliveries "
                             "and maintenance tasks it runs at once (GPU workers: GPU_WORKER_CHILDREN).")
    fetch_url_inputs_on_cpu: bool = Field(
        True, description="A URL input's job goes to FETCH_QUEUE first, and on to a GPU queue once fetched; "
                          "decided where a job's message is sent (the API, and the CPU workers' dispatcher and "
                          "sweeper). False: straight to a GPU queue, and the GPU worker fetches (the test stack "
                          "uses it to hold a job running).")

    # --- webhooks -----------------------------------------------------------------------------
    webhook_timeout_s: float = Field(10.0, description="Per-attempt timeout of a webhook POST.")
    webhook_max_attempts: int = Field(8, description="Attempts before a delivery is abandoned.")
    webhook_backoff_base_s: float = Field(
        5.0, description="Delay before retry n is base * 2**(n-1), capped, with ±jitter."
    )
    webhook_backoff_max_s: float = Field(3600.0, description="Cap of a single retry delay.")
    webhook_jitter: float = Field(0.2, description="Relative jitter of retry delays (0.2 = ±20%).")

    # --- retention ----------------------------------------------------------------------------
    retention_days: int = Field(7, description="Inputs and results are deleted after this many days.")
    retention_s: int | None = Field(
        None, description="Overrides retention_days in seconds (tests, or a stricter deployment)."
    )
    retention_interval_s: float = Field(3600.0, description="How often the retention task runs (Celery beat).")

    @field_validator("url_allowlist", mode="before")
    @classmethod
    def _split_list(cls, v: Any) -> Any:
        """Accept ``a,b`` as well as a JSON list from the environment."""
        if isinstance(v, str):
            v = v.strip()
            if v.startswith("["):  # a JSON list, or a bracketed IPv6 entry such as [::1]:8080
                try:
                    return json.loads(v)
                except json.JSONDecodeError:
                    pass
            return [x.strip() for x in v.split(",") if x.strip()]
        return v

    @field_validator("model_path", mode="before")
    @classmethod
    def _empty_is_unset(cls, v: Any) -> Any:
        """``MODEL_PATH=`` (set but empty, e.g. by a compose file) means the shipped default, not ``.``."""
        return None if isinstance(v, str) and not v.strip() else v

    @field_validator("url_allowlist")
    @classmethod
    def _valid_entries(cls, v: list[str]) -> list[str]:
        """A malformed entry fails at start-up, not silently at the first URL."""
        for entry in v:
            parse_allow_entry(entry)
        return v

    @property
    def retention_ttl_s(self) -> int:
        """The effective retention, seconds: RETENTION_S if set, else RETENTION_DAYS."""
        return self.retention_s if self.retention_s is not None else self.retention_days * 86400


@lru_cache
def get_settings() -> Settings:
    """Settings are read once per process; tests clear the cache after changing the environment."""
    return Settings()
