"""What every store on the millnet database shares: opening (and migrating) its engine,
closing it, and a repr that never shows a password."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import ClassVar, Self, TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from millnet.db import migrate
from millnet.db.engine import URL_SETTING, create_db_engine, writer
from millnet.errors import StorageError

T = TypeVar("T")


class SqlStore:
    """Owns an engine whose schema is at head; ``label`` names the store in errors."""

    label: ClassVar[str] = "database"

    def __init__(self, engine: Engine) -> None:
        """Wrap an engine made by ``create_db_engine`` whose schema is at head."""
        self._engine = engine
        self._writer = writer(engine)

    @classmethod
    def open(cls, url: str, *, setting: str = URL_SETTING) -> Self:
        """Connect to ``url`` (sqlite:///path or postgresql+psycopg://...) and migrate to head;
        configuration errors name ``setting``, where the URL came from."""
        engine = create_db_engine(url, setting)
        try:
            migrate.upgrade(engine)
        except (OperationalError, InterfaceError) as exc:
            engine.dispose()
            raise StorageError(f"{cls.label} database unavailable: {exc.orig!s}") from exc
        except BaseException:
            engine.dispose()
            raise
        return cls(engine)

    def _run(self, work: Callable[[Connection], T], *, write: bool = False) -> T:
        """Run ``work`` in one transaction (on the single writer when ``write``); database
        failures become :class:`StorageError` naming this store."""
        try:
            with (self._writer if write else self._engine).begin() as conn:
                return work(conn)
        except IntegrityError as exc:
            raise StorageError(f"{self.label} write refused by the database: {exc.orig!s}") \
                from exc
        except (OperationalError, InterfaceError) as exc:
            raise StorageError(f"{self.label} database error: {exc.orig!s}") from exc
        except PoolTimeout as exc:
            raise StorageError(f"{self.label} database busy: {exc}") from exc

    @property
    def engine(self) -> Engine:
        return self._engine

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        url = self._engine.url.render_as_string(hide_password=True)
        return f"{type(self).__name__}({url!r})"
