"""The database that registry and identifiers share: engines, the SqlStore base, the one
Alembic migration chain and the MetaData their tables live on.

``db`` imports no domain package: the domain packages define their tables on
:data:`millnet.db.schema.metadata`, and the migrations spell out every table themselves (a
migration must not change when live code does). Import the submodules you need; this package
imports nothing, so a module that only defines tables does not load Alembic.
"""
