"""The ML core: everything between an input photo and a restored photo.

This package knows nothing of queues, databases or S3. It is imported lazily by design: importing
``restoration`` or ``restoration.options`` / ``restoration.errors`` does not import torch, so the API
process can validate options without the ML stack. The entry point is
``restoration.pipeline.Restorer``.
"""
