"""Persistence: the only package that imports SQLModel, SQLAlchemy or alembic.

Other packages hold a ``Database`` handle (from ``create_engine``) and pass it to the store's
functions; they never issue SQL themselves.
"""

from sqlalchemy.ext.asyncio import AsyncEngine as Database

__all__ = ["Database"]
