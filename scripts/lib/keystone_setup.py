#!/usr/bin/python3
"""First-time Keystone setup for services.sh, in ONE python process.

Equivalent to:
    keystone-manage --config-file CONF db_sync
    (sqlite) PRAGMA journal_mode=WAL
    keystone-manage --config-file CONF fernet_setup     --keystone-user root --keystone-group root
    keystone-manage --config-file CONF credential_setup --keystone-user root --keystone-group root
    keystone-manage --config-file CONF bootstrap --bootstrap-password ... (args after --)

Why not four keystone-manage calls: each one spends 3-7 s (2.5 CPU-s) importing
keystone (saml2 alone ~1 s); the commands themselves take < 1 s. Calling
keystone.cmd.cli.main() repeatedly works once oslo.config's CONF is cleared between
commands (otherwise: ArgsAlreadyParsedError).

Why WAL: with the default rollback journal, two uwsgi workers writing the same SQLite
file get "database is locked" (HTTP 500). journal_mode is persistent in the db file.

Usage: keystone_setup.py CONF DBFILE -- BOOTSTRAP_ARGS...
Must run with Debian's /usr/bin/python3 (it has the keystone package).
"""
import os
import sqlite3
import sys


def run(cli, conf, args):
    cli.CONF.clear()
    try:
        cli.main(argv=["keystone-manage", "--config-file", conf] + args)
    except SystemExit as e:
        if e.code not in (0, None):
            print("keystone-manage %s failed (exit %s)" % (args[0], e.code), file=sys.stderr)
            sys.stderr.flush()
            os._exit(1)


def main():
    if len(sys.argv) < 4 or sys.argv[3] != "--":
        print(__doc__, file=sys.stderr)
        return 2
    conf, db, bootstrap_args = sys.argv[1], sys.argv[2], sys.argv[4:]
    from keystone.cmd import cli

    run(cli, conf, ["db_sync"])
    c = sqlite3.connect(db)
    mode = c.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    c.close()
    if mode.lower() != "wal":
        print("could not switch %s to WAL (journal_mode=%s)" % (db, mode), file=sys.stderr)
        return 1
    run(cli, conf, ["fernet_setup", "--keystone-user", "root", "--keystone-group", "root"])
    run(cli, conf, ["credential_setup", "--keystone-user", "root", "--keystone-group", "root"])
    run(cli, conf, ["bootstrap"] + bootstrap_args)
    return 0


if __name__ == "__main__":
    rc = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # os._exit: skip interpreter teardown, where eventlet's patched threading prints a
    # harmless "'NoneType' object has no attribute 'getcurrent'" traceback
    os._exit(rc)
