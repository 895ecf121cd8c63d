"""Which granian.toml `memtrace serve` uses does not depend on the working directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from memtrace.config import ConfigError, Settings
from memtrace.server.granian_config import granian_options


def test_defaults_respawn_workers_and_bound_their_shutdown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "granian.toml").write_text("[granian]\nrespawn_failed_workers = false\n")
    monkeypatch.chdir(tmp_path)  # a granian.toml in the working directory alone is not picked up
    options = granian_options(Settings(), None, None)
    assert options["respawn_failed_workers"] is True
    assert options["workers_kill_timeout"] >= 30


def test_granian_toml_beside_memtrace_toml_applies(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "memtrace.toml").write_text("")
    (etc / "granian.toml").write_text("[granian]\nworkers_kill_timeout = 45\nlog_access = true\n")
    options = granian_options(Settings(), None, etc / "memtrace.toml")
    assert options == {"respawn_failed_workers": True, "workers_kill_timeout": 45, "log_access": True}


def test_explicit_granian_config_wins_and_must_exist(tmp_path: Path) -> None:
    explicit = tmp_path / "g.toml"
    explicit.write_text("[granian]\nrespawn_interval = 1.0\n")
    assert granian_options(Settings(), explicit, None)["respawn_interval"] == 1.0
    with pytest.raises(ConfigError, match="not found"):
        granian_options(Settings(), tmp_path / "missing.toml", None)


def test_connection_settings_cannot_come_from_granian_toml(tmp_path: Path) -> None:
    explicit = tmp_path / "g.toml"
    explicit.write_text("[granian]\nbacklog = 10\nhttp = \"auto\"\n")
    with pytest.raises(ConfigError, match=r"backlog, http come from memtrace settings"):
        granian_options(Settings(), explicit, None)
