"""Persistence: the only package that imports SQLModel, SQLAlchemy or alembic.

Other packages hold a ``Database`` handle (from ``create_engine``) and pass it to the store's
functions; they never issue SQL themselves. The repositories reach the database through
``boundary.transaction`` or ``boundary.connection``, so a driver error leaves them as
``StoreUnavailable`` (``engine.migrate`` keeps a narrower rule, and ``listener`` runs its own
asyncpg connection, reconnecting). The notices live in four repositories by concept:
``intake_repo`` (what intake commits), ``deliveries_repo`` (a recipient's side),
``escalation_repo`` and ``retention_repo``.
"""

from sqlalchemy.ext.asyncio import AsyncEngine as Database

__all__ = ["Database"]
