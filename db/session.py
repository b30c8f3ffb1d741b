"""Engine and session factory, one per process, built from settings.

Celery prefork children must not share the parent's connections: ``dispose_engine()`` is called after
fork (worker/celery_app.py) so each child opens its own pool.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker

from portrait.settings import get_settings

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


@lru_cache
def get_engine() -> Engine:
    return create_engine(get_settings().database_url, pool_pre_ping=True, pool_size=5, max_overflow=10)


@lru_cache
def _factory() -> sessionmaker[Session]:
    return sessionmaker(get_engine(), expire_on_commit=False)


def dispose_engine() -> None:
    """Forget this process's pool (after fork, or when tests switch databases)."""
    if get_engine.cache_info().currsize:
        get_engine().dispose(close=False)
    get_engine.cache_clear()
    _factory.cache_clear()


@contextmanager
def session_scope() -> Iterator[Session]:
    """A transaction: commits on success, rolls back on error."""
    session = _factory()()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def alembic_config(database_url: str | None = None):  # -> alembic.config.Config
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", (database_url or get_settings().database_url).replace("%", "%%"))
    return cfg


def migrate(database_url: str | None = None) -> None:
    """``alembic upgrade head`` without an alembic.ini: the service and tests call this directly."""
    from alembic import command

    command.upgrade(alembic_config(database_url), "head")
