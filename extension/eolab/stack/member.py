"""A member's STAC API: stac-fastapi-pgstac connected with the member's own PostgreSQL role.

    uvicorn eolab.stack.member:create_app --factory   # EOLAB_PG_* in the environment

The role and the file holding its password come from :class:`eolab.settings.ServiceSettings`
(``EOLAB_PG_USER``, ``EOLAB_PG_PASSWORD_FILE``, ...): the password is never in the environment or
on a command line. Demo members connect as the read-only role, the workspace as its writer role
(:mod:`eolab.stack.postgres`).
"""

from __future__ import annotations

from contextlib import asynccontextmanager


def postgres_settings():
    """stac-fastapi-pgstac's connection settings for this member, from eolab's settings."""
    from stac_fastapi.pgstac.config import PostgresSettings

    from eolab import settings
    from eolab.stack.postgres import read_password

    conf = settings.services()
    user = settings.required(conf.pg_user, "PostgreSQL role", "EOLAB_PG_USER")
    database = settings.required(conf.pg_database, "PostgreSQL database", "EOLAB_PG_DATABASE")
    password_file = settings.required(conf.pg_password_file, "PostgreSQL password file", "EOLAB_PG_PASSWORD_FILE")
    return PostgresSettings(pguser=user, pgpassword=read_password(password_file), pghost=conf.pg_host,
                            pgport=conf.pg_port, pgdatabase=database, db_min_conn_size=1, db_max_conn_size=8)


def pgstac_app(writable: bool = False):
    """The stac-fastapi-pgstac ASGI app with the member's role (write pool only if ``writable``)."""
    from stac_fastapi.pgstac.app import instantiate_api
    from stac_fastapi.pgstac.db import close_db_connection, connect_to_db

    pg = postgres_settings()

    @asynccontextmanager
    async def lifespan(app):
        await connect_to_db(app, postgres_settings=pg, add_write_connection_pool=writable)
        yield
        await close_db_connection(app)

    return instantiate_api(lifespan=lifespan).app


def create_app():
    """A read-only demo member (uvicorn ``--factory``): the stack's account or the service token only."""
    from eolab import settings
    from eolab._guard import ServiceGuard

    return ServiceGuard(pgstac_app(writable=False), [settings.services().service_token or ""])
