"""Shared service core, below both api/ and worker/: settings, Celery names and sending (queue.py), S3
storage, the public error catalogue and objects, the SSRF guard; and the `portrait` CLI and client."""
