"""Settings: the embedded default keeps its database where every earlier release kept it."""

from __future__ import annotations

from gateway.config import load_settings


def test_the_embedded_database_file_is_gateway_db_in_the_data_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("GATEWAY_DATABASE_URL", raising=False)
    settings = load_settings(tmp_path)
    assert settings.effective_database_url == f"sqlite:///{tmp_path.resolve() / 'gateway.db'}"
