"""`memtrace admin` (or `python -m memtrace.admin`): provision orgs, Arc bindings and API keys, server up or
down; and inspect, retry or drop the memories Arc refused (`delivery`, which works on the journal DB).

It writes the metadata DB directly; running servers notice through the DB's change counter within
about a second (new orgs, rebinds, revocations), so nothing needs a restart.

The master key (`MEMTRACE_MASTER_KEY`) is needed only to store an Arc API key (`org add-arc --api-key`)
and, optionally, to show its last four characters (`org show-arc`); everything else works without it,
so routine key management does not spread the master key to more shells than necessary.

Exit status: 0 on success, 1 with one `error: ...` line on stderr for anything wrong (unknown org,
duplicate name, bad URL, missing master key), 2 for command-line usage errors.

Orgs are named by id or by name wherever a command takes one. `org delete` asks for confirmation on a
terminal and refuses without `--yes` when stdin is not one (scripts must say so explicitly).

    cli.py          the parser and `main` (errors → one line and an exit status)
    orgs.py         org create / list / delete / add-arc / show-arc / remove-arc
    keys.py         key create / list / revoke, keygen master
    delivery.py     delivery dead-letters / retry / drop (the journal's dead letters)
    forgetting.py   org retention / show, retention run, audit list, org delete --purge
    status.py       status: each org's Arc health and backlog, read from outside the server
    standalone.py   the server's forgetting stack, opened by a CLI process that deletes
    _common.py      what every command shares (errors, output, org lookup, file paths)
"""

from memtrace.admin._common import AdminError
from memtrace.admin.cli import build_parser, main

__all__ = ["AdminError", "build_parser", "main"]
