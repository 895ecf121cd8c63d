"""Running the server: `memtrace serve` (preflight, then Granian workers) and what wraps the app at the edge.

    serve.py           preflight checks and the Granian launch                     → serve, preflight
    granian_config.py  Granian options from ServerSettings                         → granian_options
    bodytimeout.py     ASGI middleware: a slow request body gets 408, not a worker → with_body_timeout
    dbcheck.py         refuse to start on a damaged metadata or journal file       → check_metadata, check_journal
"""

__all__: list[str] = []  # import the module you need: `serve` pulls in the whole app, dbcheck must not
