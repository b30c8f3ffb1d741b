"""The thin HTTP API: validates, stores inputs in S3, writes jobs to Postgres, enqueues by task name."""
