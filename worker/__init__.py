"""Celery workers: the GPU restoration task; on CPU workers URL fetches, webhook delivery, the fair
batch dispatcher, the sweeper and retention. Glues restoration/ to db/ and storage; never imports api/."""
