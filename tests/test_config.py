"""Settings: file < env < flags, and loud, named failures, through the library and `memtrace serve`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from memtrace.config import ConfigError, Settings, StorageSettings, load_settings
from tests.procs import REPO, Proc, free_port


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_defaults() -> None:
    s = Settings()
    assert (s.server.host, s.server.port, s.storage.data_dir) == ("0.0.0.0", 9100, "./data")
    assert s.metadata_path == Path("data/memtrace.db")
    assert s.dedup.window_s == 24 * 3600
    assert (s.limits.max_body_bytes, s.limits.max_content_bytes) == (8 * 1024 * 1024, 64 * 1024)


def test_shipped_file_states_the_defaults() -> None:
    # Only the relative data dir differs: it is resolved against the config file's directory.
    expected = msgspec.structs.replace(Settings(), storage=StorageSettings(data_dir=str(REPO / "data")))
    assert load_settings(str(REPO / "memtrace.toml"), environ={}) == expected


def test_precedence_file_then_env_then_flags(tmp_path: Path) -> None:
    cfg = write(tmp_path / "m.toml", "[server]\nport = 9200\nworkers = 3\n[arc]\nbatch_size = 10\n")
    s = load_settings(str(cfg), environ={})
    assert (s.server.port, s.server.workers, s.arc.batch_size) == (9200, 3, 10)
    s = load_settings(str(cfg), environ={"MEMTRACE_SERVER_PORT": "9300"})
    assert (s.server.port, s.server.workers) == (9300, 3)
    s = load_settings(str(cfg), {"server": {"port": 9400, "workers": None}}, environ={"MEMTRACE_SERVER_PORT": "9300"})
    assert (s.server.port, s.server.workers) == (9400, 3)
    assert load_settings(str(cfg), environ={"MEMTRACE_STORAGE_DATA_DIR": "/x"}).metadata_path == Path("/x/memtrace.db")


@pytest.mark.parametrize(("toml", "env", "named"), [
    ("[server]\nprot = 1\n", {}, "prot"),
    ("[srever]\nport = 1\n", {}, "srever"),
    ("[server]\nport = 'many'\n", {}, "server.port"),
    ("[server]\nport = 70000\n", {}, "server.port"),
    ("[arc]\nflush_interval_ms = 0\n", {}, "arc.flush_interval_ms"),
    ("[arc]\nmax_in_flight = 0\n", {}, "arc.max_in_flight"),
    ("", {"MEMTRACE_ARC_MAX_IN_FLIGHT": "17"}, "arc.max_in_flight"),
    ("", {"MEMTRACE_SERVER_PROT": "1"}, "MEMTRACE_SERVER_PROT"),
    ("", {"MEMTRACE_LIMITS_MAX_BODY_BYTES": "lots"}, "limits.max_body_bytes"),
    ("[server\n", {}, "invalid TOML"),
])
def test_bad_settings_name_the_key(tmp_path: Path, toml: str, env: dict[str, str], named: str) -> None:
    cfg = write(tmp_path / "m.toml", toml)
    with pytest.raises(ConfigError) as info:
        load_settings(str(cfg), environ=env)
    assert named in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(str(tmp_path / "nope.toml"), environ={})


def test_serve_refuses_bad_settings_with_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "MEMTRACE_SERVER_WORKERS": "zero", "MEMTRACE_STORAGE_DATA_DIR": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "memtrace", "serve", "--port", str(free_port())],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert "server.workers" in result.stderr


@pytest.mark.parametrize(("env", "named"), [
    ({"MEMTRACE_SERVER_LOG_LEVEL": "verbose"}, "server.log_level"),
    ({"MEMTRACE_SERVER_LOG_FORMAT": "xml"}, "server.log_format"),
])
def test_serve_refuses_unknown_log_level_or_format_naming_the_key(tmp_path: Path, env: dict[str, str],
                                                                  named: str) -> None:
    """Used to crash start-up with a Granian traceback; now one line naming the key and the choices."""
    full = {**os.environ, "MEMTRACE_STORAGE_DATA_DIR": str(tmp_path), **env}
    result = subprocess.run([sys.executable, "-m", "memtrace", "serve", "--port", str(free_port())],
                            cwd=tmp_path, env=full, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert named in result.stderr and "expected one of" in result.stderr
    assert "Traceback" not in result.stderr


def test_relative_storage_paths_follow_the_config_file_not_the_cwd(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    cfg = write(etc / "memtrace.toml", '[storage]\ndata_dir = "state"\njournal_db = "j/journal.db"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    s = load_settings(str(cfg), environ={})
    assert s.metadata_path == etc / "state" / "memtrace.db"
    assert s.journal_path == etc / "j" / "journal.db"
    home = tmp_path / "home"
    s = load_settings(str(cfg), environ={"MEMTRACE_HOME": str(home)})
    assert s.metadata_path == home / "state" / "memtrace.db"
    assert load_settings(None, environ={}).metadata_path == elsewhere / "data" / "memtrace.db"
    assert load_settings(str(cfg), environ={"MEMTRACE_STORAGE_DATA_DIR": "/abs"}).metadata_path == Path(
        "/abs/memtrace.db")


def test_admin_and_serve_from_different_directories_share_the_databases(tmp_path: Path) -> None:
    """`memtrace admin` run from one directory and `memtrace serve` from another find the same DBs."""
    cfg = write(tmp_path / "memtrace.toml", '[storage]\ndata_dir = "data"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMTRACE_")}
    env["MEMTRACE_CONFIG"] = str(cfg)
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    created = subprocess.run([sys.executable, "-m", "memtrace", "admin", "org", "create", "acme"], cwd=one, env=env,
                             capture_output=True, text=True, timeout=60)
    assert created.returncode == 0, created.stderr
    assert (tmp_path / "data" / "memtrace.db").is_file()
    port = free_port()
    server = Proc([sys.executable, "-m", "memtrace", "serve", "--host", "127.0.0.1", "--port", str(port)],
                  env={**env, "MEMTRACE_SERVER_LOG_LEVEL": "info"}, cwd=two)
    try:
        server.start_or_stop(f"http://127.0.0.1:{port}/health")
    finally:
        server.stop()
    out = server.log_path.read_text()
    assert f"config file: {cfg}" in out
    assert f"data dir: {tmp_path / 'data'}" in out
    assert str(tmp_path / "data" / "journal.db") in out
    assert not (two / "data").exists()
