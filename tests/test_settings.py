"""Settings refuse unusable secrets; development keeps one generated key."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr, ValidationError

from app.crypto import encode_key, new_key
from app.settings import Environment, Settings, SettingsError

MASTER = SecretStr(encode_key(new_key()))


def test_production_requires_a_signing_key(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="SIGNING_KEY"):
        Settings(app_env=Environment.PRODUCTION, database_url="sqlite://", data_dir=tmp_path)


@pytest.mark.parametrize("value", ["change-me", "placeholder", "secret", "", "not a key"])
def test_placeholder_or_garbage_keys_are_refused(tmp_path: Path, value: str) -> None:
    s = Settings(
        app_env=Environment.PRODUCTION,
        database_url="sqlite://",
        signing_key=SecretStr(value),
        master_key=MASTER,
        data_dir=tmp_path,
    )
    with pytest.raises(SettingsError):
        s.signing_key_pem()


def test_weak_rsa_key_is_refused(tmp_path: Path) -> None:
    weak = (
        rsa.generate_private_key(public_exponent=65537, key_size=1024)
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    s = Settings(
        app_env=Environment.PRODUCTION,
        database_url="sqlite://",
        signing_key=SecretStr(weak),
        master_key=MASTER,
        data_dir=tmp_path,
    )
    with pytest.raises(SettingsError, match="2048"):
        s.signing_key_pem()


def test_production_requires_a_master_key(tmp_path: Path, signing_pem: str) -> None:
    with pytest.raises(ValidationError, match="MASTER_KEY"):
        Settings(
            app_env=Environment.PRODUCTION,
            database_url="sqlite://",
            signing_key=SecretStr(signing_pem),
            data_dir=tmp_path,
        )


@pytest.mark.parametrize(
    "value",
    ["", "change-me", "c2hvcnQ=", "A" * 43, encode_key(new_key())[:-4], "not base64 at all!"],
)
def test_short_placeholder_or_non_random_master_keys_are_refused(
    tmp_path: Path, value: str
) -> None:
    s = Settings(master_key=SecretStr(value), data_dir=tmp_path)
    with pytest.raises(SettingsError, match="MASTER_KEY"):
        s.master_key_bytes()


def test_a_configured_master_key_is_used_as_given(tmp_path: Path) -> None:
    key = new_key()
    assert (
        Settings(master_key=SecretStr(encode_key(key)), data_dir=tmp_path).master_key_bytes() == key
    )
    path = tmp_path / "mk"
    path.write_text(encode_key(key) + "\n", encoding="ascii")
    assert Settings(master_key_file=path, data_dir=tmp_path).master_key_bytes() == key
    assert not (tmp_path / "master-key").exists()  # nothing generated when one is configured


def test_development_generates_one_master_key_with_mode_0600(tmp_path: Path) -> None:
    first = Settings(app_env=Environment.DEVELOPMENT, data_dir=tmp_path).master_key_bytes()
    second = Settings(app_env=Environment.DEVELOPMENT, data_dir=tmp_path).master_key_bytes()
    assert first == second
    assert len(first) == 32
    assert stat.S_IMODE((tmp_path / "master-key").stat().st_mode) == 0o600


def test_development_generates_one_key_with_mode_0600(tmp_path: Path) -> None:
    s = Settings(app_env=Environment.DEVELOPMENT, data_dir=tmp_path)
    first = s.signing_key_pem()
    second = Settings(app_env=Environment.DEVELOPMENT, data_dir=tmp_path).signing_key_pem()
    assert first == second
    mode = stat.S_IMODE((tmp_path / "signing-key.pem").stat().st_mode)
    assert mode == 0o600


def test_default_database_is_sqlite_under_the_data_dir(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path)
    assert s.effective_database_url == f"sqlite:///{tmp_path.as_posix()}/screening.db"


def test_environment_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORS_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("MAX_BODY_BYTES", "2048")
    monkeypatch.setenv("TOKEN_TTL_SECONDS", "300")
    s = Settings()
    assert s.cors_origins == ["https://a.example", "https://b.example"]
    assert s.max_body_bytes == 2048
    assert s.token_ttl_seconds == 300
    monkeypatch.setenv("TOKEN_TTL_SECONDS", "86400")
    with pytest.raises(ValidationError):
        Settings()
