"""The public error catalogue: every ``error.code`` the API returns or stores on a failed job.

Codes are stable API; add, never rename. docs/errors.md is generated from this catalogue
(scripts/gen_docs.py). Pipeline codes come from ``restoration.errors``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ErrorCode:
    code: str
    http_status: int
    description: str


CATALOGUE: dict[str, ErrorCode] = {e.code: e for e in [
    # request errors (HTTP responses)
    ErrorCode("unauthorized", 401, "Missing, malformed or unknown API key."),
    ErrorCode("not_found", 404, "No such resource for this client (other clients' resources are 404 too)."),
    ErrorCode("invalid_request", 400, "The request body or parameters are invalid; message says which."),
    ErrorCode("invalid_cursor", 400, "A pagination cursor this API did not issue (forged, truncated or from "
                                     "another listing); pass next_cursor back unchanged."),
    ErrorCode("validation_error", 422, "A field failed validation; message names it."),
    ErrorCode("empty_input", 400, "The uploaded file or object is zero bytes."),
    ErrorCode("payload_too_large", 413, "The upload exceeds MAX_UPLOAD_BYTES."),
    ErrorCode("unsupported_media_type", 415, "Neither multipart/form-data nor application/json."),
    ErrorCode("invalid_image", 422, "Not a decodable image (JPEG, PNG, WebP, BMP, TIFF)."),
    ErrorCode("image_too_large", 422, "Over MAX_IMAGE_PIXELS or MAX_IMAGE_SIDE (checked from the header)."),
    ErrorCode("image_too_small", 422, "Under MIN_IMAGE_SIDE."),
    ErrorCode("job_not_cancelable", 409, "The job already finished."),
    ErrorCode("last_credential", 409, "The client's last active API key or last live webhook secret cannot be "
                                      "revoked or retired: create its successor first."),
    ErrorCode("url_not_allowed", 422, "An input or webhook URL is not https, carries credentials, does not "
                                      "resolve, or resolves to a private, loopback, link-local, metadata, CGNAT, "
                                      "multicast or reserved address (see URL_ALLOWLIST). Also a job failure code "
                                      "when the check fails at fetch time or on a redirect."),
    ErrorCode("idempotency_key_reused", 409, "This Idempotency-Key was already used with a different request "
                                             "(method, path or body)."),
    ErrorCode("idempotency_request_in_progress", 409, "A request with this Idempotency-Key is still running; "
                                                      "retry shortly to get its response."),
    ErrorCode("rate_limited", 429, "Too many requests for this client, or from this address without a valid "
                                   "key (token buckets); wait Retry-After seconds."),
    ErrorCode("too_many_jobs_in_flight", 429, "Queued + running jobs would exceed MAX_JOBS_IN_FLIGHT (a batch "
                                              "counts all its items); retry when some finish."),
    ErrorCode("service_unavailable", 503, "A backing service (DB, Redis, S3) is down or the API's temporary "
                                          "disk is full; retry after Retry-After (same Idempotency-Key)."),
    # job failure codes (stored on failed jobs)
    ErrorCode("truncated_image", 422, "The image data ends early (a partial upload)."),
    ErrorCode("input_missing", 422, "The input object does not exist in the bucket."),
    ErrorCode("input_fetch_failed", 422, "The input URL could not be fetched (status, size or time cap)."),
    ErrorCode("attempts_exhausted", 500, "The job failed or its worker died MAX_ATTEMPTS times."),
    ErrorCode("timeout", 500, "The job ran past the task time limit."),
    ErrorCode("weights_missing", 500, "A model weights file is missing on the worker."),
    ErrorCode("internal_error", 500, "An unexpected error; the message has the exception type."),
]}


class ApiError(Exception):
    """Raised anywhere in the API; rendered as ``{"error": {"code", "message"}}``."""

    def __init__(self, code: str, message: str, http_status: int | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.http_status = http_status or CATALOGUE[code].http_status
        self.headers = headers
