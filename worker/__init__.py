"""Celery workers: the GPU restoration task, webhook delivery and the sweeper."""
