"""arclite: the embedded Arc-compatible store (DuckDB behind Arc's HTTP protocol).

It exists so that `make run` and the test suite need nothing outside PyPI: Memtrace (and the official
`arc-tsdb-client`) talk to it exactly as they talk to a real Arc — msgpack columnar writes answered 204,
JSON SQL queries, databases chosen by `x-arc-database`, an optional token. Production points each org at a
real Arc instead. Run it with `python -m memtrace.arclite --port 8000 --data-dir ./data/arc [--token T]
[--buffer-age-ms N] [--delete-enabled]`.

Strict by default wherever Memtrace depends on Arc's behaviour (docs/arc.md lists each with its test): rows
become queryable after Arc's buffer age (5000 ms), a delete never touches rows still in the buffer, and the
rows of a query without a top-level ORDER BY come back shuffled. Lenient modes are flags only:
`--buffer-age-ms 0`, `--delete-buffered`, `--keep-order`.

Layout: `ingest` (decompression and msgpack payload checks), `sqlguard` (query admission, via DuckDB's
parser), `storage` (one DuckDB file per database), `registry` (open databases, writer threads, counters),
`delete` (Arc's delete API), `server` (aiohttp routes).

Guarantees:
- A 204 means the rows are committed to DuckDB, whose COMMIT appends to the WAL and fdatasyncs it before
  returning; they survive `kill -9` and are replayed on the next start.
- A delete's 200 (`POST /api/v1/delete`) is likewise sent only after its DuckDB transaction committed.
  As in Arc, rows still in the ingest buffer are neither counted nor deleted: they appear at the flush
  (`--delete-buffered` deletes them too, in the same transaction).
- Queries run one parsed SELECT inside a READ ONLY transaction on a connection opened with
  `enable_external_access=false`, so SQL can neither change data nor touch files, URLs or extensions.

arclite extension (not in Arc):
- `GET /api/v1/arclite/stats` -> `{"write_requests": n, "rows_written": n, "by_database": {db:
  {"write_requests": n, "rows": {measurement: n}}}, "delete_requests": n, "rows_deleted": n,
  "deleted_by_database": {db: {measurement: n}}}`: successful msgpack writes and (non-dry-run) deletes since
  process start, for tests and load tests that must prove no write was lost or doubled. Needs the token
  when one is set.
- The stats also give `largest_request_bytes` (of an accepted write) and `refused_requests` (bodies over the
  cap, answered 413). `--max-body-mb N` lowers the cap (Arc's is 100 MiB), so tests of large deliveries stay
  small.
- `--buffer-age-ms N` (default 5000, Arc's `max_buffer_age_ms`) emulates Arc's ingest buffer: acknowledged
  rows wait, durable, in hidden staging tables (schema `_arclite_stage`) and become queryable N ms later or
  on `POST /api/v1/write/line-protocol/flush`; 0 makes them queryable at once.

Where arclite differs from Arc:
- Storage is one DuckDB file per database (`<data-dir>/<db>.duckdb`), not Parquet files partitioned by time;
  no retention, compaction, continuous queries, RBAC (no 403s except a disabled delete API), rate limiting
  (no 429s) or clustering. `SHOW TABLES` reports the database file as `storage_path`, with `file_count` 1.
- Only `POST /api/v1/write/msgpack` ingests; the line-protocol, Arrow and msgpack *query* endpoints are
  absent. The flush endpoint needs only the ordinary token (Arc wants an admin token).
- Qualified names (`db.table`, `schema.table`) are refused even without `x-arc-database` (Arc would query the
  other database); `SHOW TABLES` without `FROM` lists the header's database (Arc lists `default`).
- Queries are admitted by DuckDB's parser, not Arc's regexes: only a single SELECT/WITH...SELECT (also
  `FROM t`, `VALUES`, `DESCRIBE t`, `SUMMARIZE t`) passes; EXPLAIN, PRAGMA, SET, CALL, PIVOT and every DDL/DML
  get 400. File-reading table functions (`read_*`, `glob`, `query`, ...) get 400.
- A DuckDB error is returned with DuckDB's message (Arc says only "Query execution failed"); a missing table
  gives 200 with empty `columns`/`data`, as Arc does. `execution_time_ms` is an integer.
- TIMESTAMPs come back as `YYYY-MM-DDTHH:MM:SS.ffffffZ` (always six fraction digits; Arc trims trailing
  zeros, RFC 3339 either way). `time` is stored as TIMESTAMP (µs precision; nanoseconds are truncated).
- Column types are fixed by the first non-null value ever written (int BIGINT, float DOUBLE, str VARCHAR,
  bool BOOLEAN; maps/lists stored as JSON text). Later values are cast to the column's type when DuckDB
  can (2.5 into a BIGINT column is stored as 2, 3 into a VARCHAR column as "3"); otherwise the whole
  request is refused with 400. All-null columns are not created until a value arrives. Column names must
  match `^[A-Za-z_][A-Za-z0-9_-]*$` and are case-insensitive (DuckDB), so `Host` and `host` are one column.
- A request is one transaction: all of its batches are stored or none is.
- Delete API (`POST /api/v1/delete`, `GET /api/v1/delete/config`): same request, response, status codes,
  error texts and order of checks as Arc; off unless `--delete-enabled` (or `ARCLITE_DELETE_ENABLED=1`),
  thresholds from `--delete-confirmation-threshold` / `--delete-max-rows-per-delete` instead of arc.toml's
  `[delete]` (the error texts still name arc.toml, as Arc's do). Differences: Arc wants an *admin* token,
  arclite its one token. It runs DuckDB `DELETE` in one transaction instead of rewriting Parquet files, so
  `files_processed` is the database file, `affected_files`/`rewritten_files` are 0 or 1 and there is never
  a partial 207. `where` gets Arc's checks (`;`, `--`, `/*` and the words DROP, DELETE, SELECT, UNION, SET,
  ... outside string literals) on DuckDB's tokens, and is then admitted only as DuckDB parses it inside
  `SELECT count(*) FROM "<m>" WHERE (...)`: one boolean expression over the measurement's own columns, no
  subquery (not even `FROM`-first), table function or parameter. A `where` naming no column (`1=1`,
  `true`, `2>1`) is a full-table delete (Arc: only the exact texts `1=1`, `TRUE`, `1`). A `where` DuckDB
  cannot bind or evaluate (unknown column, bad cast) is a 400 with DuckDB's message (Arc skips the files
  it cannot count and answers 200 with `deleted_count` 0); one running past `--query-timeout-s` is
  interrupted and rolled back (504). `where` is at most 65,536 characters (about 2,000 quoted ids), the
  body at most 256 KiB (413 above). Like Arc's (which reads only its Parquet files), a delete ignores rows
  still in the ingest buffer; with `--delete-buffered` they are matched and deleted too, through the
  measurement's column types.
"""

__all__: list[str] = []  # used as a process (`python -m memtrace.arclite`); its modules are internal
