"""Alembic migrations of the plant database: ``versions/`` holds one file per revision, ``env.py``
runs them (see :mod:`store.migrate`), ``helpers.py`` has the operations a new measure needs."""
