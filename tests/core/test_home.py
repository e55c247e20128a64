"""Home directory resolution: flag, then environment, then the XDG data dir."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from focusflow.core.home import keys_dir, open_private, resolve_home


def test_explicit_home_wins(monkeypatch, tmp_path):
    monkeypatch.setenv("FOCUSFLOW_HOME", str(tmp_path / "env"))
    assert resolve_home(str(tmp_path / "flag")) == tmp_path / "flag"


def test_env_then_xdg_then_home(monkeypatch, tmp_path):
    monkeypatch.setenv("FOCUSFLOW_HOME", str(tmp_path / "env"))
    assert resolve_home(None) == tmp_path / "env"
    monkeypatch.setenv("FOCUSFLOW_HOME", "")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert resolve_home(None) == tmp_path / "xdg" / "focusflow" / "devnet"
    monkeypatch.setenv("XDG_DATA_HOME", "relative/ignored")  # the XDG spec says so
    monkeypatch.setenv("HOME", str(tmp_path / "u"))
    assert resolve_home(None) == tmp_path / "u" / ".local" / "share" / "focusflow" / "devnet"


def test_tilde_expanded_and_keys_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_home("~/n") == tmp_path / "n"
    assert keys_dir(Path("/h")) == Path("/h/keys")


def test_open_private_creates_owner_only_files(tmp_path):
    """Created 0600 whatever the umask; 'w' truncates, 'a' appends; reading
    and odd modes are refused before anything is created."""
    old = os.umask(0o022)
    try:
        path = tmp_path / "secret"
        with open_private(path, "wb") as f:
            f.write(b"one")
        with open_private(path, "ab") as f:
            f.write(b"two")
        assert path.read_bytes() == b"onetwo"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        with open_private(path) as f:
            f.write("three")
        assert path.read_text() == "three"
        for mode in ("r", "rb", "w+", "x"):
            with pytest.raises(ValueError):
                open_private(tmp_path / "never", mode)
        assert not (tmp_path / "never").exists()
    finally:
        os.umask(old)
