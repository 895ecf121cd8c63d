"""`python -m memtrace.admin`."""

from memtrace.admin.cli import main

raise SystemExit(main())
