"""Shared service core: settings, the `portrait` CLI, S3 storage and the public error catalogue."""
