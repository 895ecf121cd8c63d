"""`memtrace dev` (what `make run` runs): the embedded Arc store + Memtrace, a demo org and a key.

For a laptop, not production: the demo key is kept in `<data_dir>/demo.key` (mode 0600) so every run can
print it again. The embedded store runs without a token on loopback, so no master key is needed.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from memtrace.config import Settings
from memtrace.keys import lookup_id
from memtrace.metadata.db import open_metadata
from memtrace.server.dbcheck import DamagedDatabase, check_metadata

DEMO_ORG_ID = "org_demo"
DEMO_DATABASE = "demo"


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the embedded Arc store exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310 - our own loopback URL
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    raise SystemExit(f"the embedded Arc store did not answer at {url} within {timeout:.0f}s")


async def ensure_demo(settings: Settings, arc_url: str) -> str:
    """Demo org bound to the embedded store, and a usable key (created on first run or if revoked)."""
    key_file = Path(settings.storage.data_dir) / "demo.key"
    metadata = await open_metadata(settings.metadata_path)
    try:
        orgs, keys = metadata.orgs, metadata.api_keys
        if await orgs.find(DEMO_ORG_ID) is None:
            await orgs.create("demo", id=DEMO_ORG_ID)
        await metadata.arc_instances.upsert(DEMO_ORG_ID, arc_url, DEMO_DATABASE)
        if key_file.is_file():
            key = key_file.read_text().strip()
            lid = lookup_id(key)
            record = await keys.get_by_lookup(lid) if lid else None
            if record is not None and record.revoked_at_us is None and record.expires_at_us is None:
                return key
        _, key = await keys.create(DEMO_ORG_ID, f"demo-{int(time.time())}", "read,write,admin")
        key_file.write_text(key + "\n")
        key_file.chmod(0o600)
        return key
    finally:
        await metadata.close()


def banner(key: str, base: str) -> str:
    return f"""
Memtrace is up on {base} (embedded Arc store, demo org '{DEMO_ORG_ID}').

  API key: {key}

Try it:
  curl -s -X POST {base}/api/v1/memories -H 'x-api-key: {key}' -H 'content-type: application/json' \\
       -d '{{"agent_id": "agent_1", "content": "User prefers dark mode", "tags": ["prefs"]}}'
  curl -s '{base}/api/v1/memories?agent_id=agent_1' -H 'x-api-key: {key}'

Console: {base}/console (sign in with the key)
API docs: {base}/docs    Metrics: {base}/metrics    Ctrl-C stops both servers.
"""


def announce_when_up(base: str, key: str, timeout: float = 300.0) -> None:
    """Print the key and the curl example only once the server answers, so they are never a dead end."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=1):  # noqa: S310 - our own loopback URL
                print(banner(key, base), flush=True)
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    print(f"memtrace: the server did not answer at {base}/health within {timeout:.0f}s", file=sys.stderr)


def run_dev(settings: Settings, arc_port: int) -> int:
    from memtrace.server.serve import serve

    try:
        check_metadata(settings.metadata_path)  # before ensure_demo could initialise a damaged file
    except DamagedDatabase as exc:
        print(f"memtrace: {exc}", file=sys.stderr)
        return 1
    data_dir = Path(settings.storage.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    arc_url = f"http://127.0.0.1:{arc_port}"
    host = "127.0.0.1" if settings.server.host in ("0.0.0.0", "::") else settings.server.host  # noqa: S104
    base = f"http://{host}:{settings.server.port}"
    print(f"Memtrace: starting on {base} (data in {data_dir}); embedded Arc store on {arc_url} ...", flush=True)
    arc = subprocess.Popen(
        [sys.executable, "-m", "memtrace.arclite", "--host", "127.0.0.1", "--port", str(arc_port),
         "--data-dir", str(data_dir / "arc"), "--log-format", settings.server.log_format,
         "--delete-enabled"],  # forgetting works in the dev stack
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        _wait_healthy(f"{arc_url}/health", arc)
        key = asyncio.run(ensure_demo(settings, arc_url))
        threading.Thread(target=announce_when_up, args=(base, key), daemon=True, name="announce").start()
        return serve(settings)
    finally:
        arc.terminate()
        try:
            arc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            arc.kill()
