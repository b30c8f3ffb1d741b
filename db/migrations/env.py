"""Alembic environment: online migrations against the URL set by db.session.alembic_config()."""

from alembic import context
from sqlalchemy import engine_from_config, pool

from db.models import Base
from portrait.settings import get_settings

config = context.config
if not config.get_main_option("sqlalchemy.url"):  # plain `alembic -c db/alembic.ini …` uses DATABASE_URL
    config.set_main_option("sqlalchemy.url", get_settings().database_url.replace("%", "%%"))
target_metadata = Base.metadata


def run_migrations_offline() -> None:
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=target_metadata,
                      literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connectable = engine_from_config(config.get_section(config.config_ini_section, {}),
                                     prefix="sqlalchemy.", poolclass=pool.NullPool)
    with connectable.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
