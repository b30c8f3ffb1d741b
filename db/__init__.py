"""Persistence: SQLAlchemy 2 models, sessions, Alembic migrations and the job state machine."""
