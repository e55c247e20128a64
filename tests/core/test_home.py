"""Home directory resolution: flag, then environment, then the XDG data dir."""

from __future__ import annotations

from pathlib import Path

from focusflow.core.home import keys_dir, resolve_home


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
