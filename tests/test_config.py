"""``Config.from_environ``: every variable parsed, defaults, ``.env`` and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from omnichannel_core.config import Config
from omnichannel_core.errors import ConfigError


def config_of(environ: dict[str, str], dotenv: Path | None = None) -> Config:
    return Config.from_environ(environ, dotenv=dotenv)


def test_defaults_when_nothing_is_set():
    """With an empty environment every setting has its documented default."""
    config = config_of({})
    assert config.host == "127.0.0.1"
    assert config.port == 3000
    assert config.workers == 2
    assert config.data_dir == Path("omnichannel-data")
    assert config.store_url == "sqlite:///omnichannel-data/omnichannel.db"
    assert config.api_keys == ()
    assert config.log_level == "info"
    assert config.log_format == "auto"
    assert config.plugins_dir == Path("plugins")
    assert config.disabled_plugins == ()
    assert config.max_body_bytes == 1_048_576
    assert config.public_url is None
    assert config.rate_limit_per_minute == 600
    assert config.credential_rate_limit_per_minute == 1200
    assert config.login_rate_limit_per_minute == 10
    assert config.cors_origins == ()
    assert config.jwt_secret is None
    assert config.access_token_minutes == 15
    assert config.refresh_token_days == 30
    assert config.login_lockout_failures == 5
    assert config.login_lockout_minutes == 15
    assert config.job_lease_seconds == 30
    assert config.event_prune_seconds == 3600


def test_every_variable_is_read():
    """Each variable the core declares lands in its setting, parsed to its type."""
    config = config_of(
        {
            "OMNICHANNEL_HOST": "0.0.0.0",
            "PORT": "8080",
            "OMNICHANNEL_WORKERS": "4",
            "OMNICHANNEL_DATA_DIR": "/srv/omni",
            "OMNICHANNEL_STORE": "sqlite:////var/lib/omni.db",
            "OMNICHANNEL_API_KEY": "one",
            "OMNICHANNEL_LOG_LEVEL": "debug",
            "OMNICHANNEL_LOG_FORMAT": "console",
            "OMNICHANNEL_PLUGINS_DIR": "my-plugins",
            "OMNICHANNEL_DISABLE_PLUGINS": "audit",
            "OMNICHANNEL_MAX_BODY_BYTES": "4096",
            "OMNICHANNEL_PUBLIC_URL": "https://inbox.example.com",
            "OMNICHANNEL_RATE_LIMIT": "120",
            "OMNICHANNEL_CREDENTIAL_RATE_LIMIT": "300",
            "OMNICHANNEL_LOGIN_RATE_LIMIT": "3",
            "OMNICHANNEL_CORS_ORIGINS": "https://app.example.com",
            "OMNICHANNEL_JWT_SECRET": "s" * 32,
            "OMNICHANNEL_ACCESS_TOKEN_MINUTES": "5",
            "OMNICHANNEL_REFRESH_TOKEN_DAYS": "7",
            "OMNICHANNEL_LOGIN_LOCKOUT_FAILURES": "3",
            "OMNICHANNEL_LOGIN_LOCKOUT_MINUTES": "60",
            "OMNICHANNEL_JOB_LEASE_SECONDS": "5",
            "OMNICHANNEL_EVENT_PRUNE_SECONDS": "60",
        }
    )
    assert config.host == "0.0.0.0"
    assert config.port == 8080
    assert config.workers == 4
    assert config.data_dir == Path("/srv/omni")
    assert config.store_url == "sqlite:////var/lib/omni.db"
    assert config.api_keys == ("one",)
    assert config.log_level == "debug"
    assert config.log_format == "console"
    assert config.plugins_dir == Path("my-plugins")
    assert config.disabled_plugins == ("audit",)
    assert config.max_body_bytes == 4096
    assert config.public_url == "https://inbox.example.com"
    assert config.rate_limit_per_minute == 120
    assert config.credential_rate_limit_per_minute == 300
    assert config.login_rate_limit_per_minute == 3
    assert config.cors_origins == ("https://app.example.com",)
    assert config.jwt_secret == "s" * 32
    assert config.access_token_minutes == 5
    assert config.refresh_token_days == 7
    assert config.login_lockout_failures == 3
    assert config.login_lockout_minutes == 60
    assert config.job_lease_seconds == 5
    assert config.event_prune_seconds == 60


def test_default_store_lives_in_the_data_dir():
    """Without OMNICHANNEL_STORE the SQLite file is placed inside OMNICHANNEL_DATA_DIR."""
    config = config_of({"OMNICHANNEL_DATA_DIR": "/tmp/omni-data"})
    assert config.store_url == "sqlite:////tmp/omni-data/omnichannel.db"


def test_empty_value_means_default():
    """A variable set to the empty string counts as unset, not as a bad value."""
    config = config_of({"PORT": "", "OMNICHANNEL_WORKERS": "", "OMNICHANNEL_LOG_LEVEL": ""})
    assert (config.port, config.workers, config.log_level) == (3000, 2, "info")


def test_comma_separated_lists_are_trimmed():
    """API keys and disabled plugins are comma-separated; blanks and spaces are dropped."""
    config = config_of(
        {"OMNICHANNEL_API_KEY": " key-one , key-two,, ", "OMNICHANNEL_DISABLE_PLUGINS": "a, b"}
    )
    assert config.api_keys == ("key-one", "key-two")
    assert config.disabled_plugins == ("a", "b")


def test_choices_are_case_insensitive():
    """Log level and format accept any case and are stored in lower case."""
    config = config_of({"OMNICHANNEL_LOG_LEVEL": "WARNING", "OMNICHANNEL_LOG_FORMAT": "Json"})
    assert (config.log_level, config.log_format) == ("warning", "json")


def test_public_url_loses_its_trailing_slash():
    """OMNICHANNEL_PUBLIC_URL is stored without a trailing slash, ready to join paths to."""
    assert config_of({"OMNICHANNEL_PUBLIC_URL": "https://x.example/"}).public_url == (
        "https://x.example"
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PORT", "abc"),
        ("PORT", "0"),
        ("PORT", "65536"),
        ("OMNICHANNEL_WORKERS", "0"),
        ("OMNICHANNEL_WORKERS", "two"),
        ("OMNICHANNEL_LOG_LEVEL", "loud"),
        ("OMNICHANNEL_LOG_FORMAT", "xml"),
        ("OMNICHANNEL_MAX_BODY_BYTES", "10"),
        ("OMNICHANNEL_PUBLIC_URL", "ftp://example.com"),
        ("OMNICHANNEL_RATE_LIMIT", "-1"),
        ("OMNICHANNEL_RATE_LIMIT", "lots"),
        ("OMNICHANNEL_CREDENTIAL_RATE_LIMIT", "1.5"),
        ("OMNICHANNEL_LOGIN_RATE_LIMIT", "-5"),
        ("OMNICHANNEL_CORS_ORIGINS", "app.example.com"),
        ("OMNICHANNEL_CORS_ORIGINS", "https://app.example.com/login"),
        ("OMNICHANNEL_CORS_ORIGINS", "ftp://app.example.com"),
        ("OMNICHANNEL_ACCESS_TOKEN_MINUTES", "0"),
        ("OMNICHANNEL_ACCESS_TOKEN_MINUTES", "1441"),
        ("OMNICHANNEL_REFRESH_TOKEN_DAYS", "0"),
        ("OMNICHANNEL_REFRESH_TOKEN_DAYS", "366"),
        ("OMNICHANNEL_LOGIN_LOCKOUT_FAILURES", "0"),
        ("OMNICHANNEL_LOGIN_LOCKOUT_FAILURES", "101"),
        ("OMNICHANNEL_LOGIN_LOCKOUT_MINUTES", "0"),
        ("OMNICHANNEL_LOGIN_LOCKOUT_MINUTES", "1441"),
        ("OMNICHANNEL_JOB_LEASE_SECONDS", "2"),
        ("OMNICHANNEL_EVENT_PRUNE_SECONDS", "0"),
    ],
)
def test_bad_value_raises_one_line_naming_the_variable(variable, value):
    """A malformed value raises ConfigError with a one-line message that starts with the
    variable's name."""
    with pytest.raises(ConfigError) as raised:
        config_of({variable: value})
    message = raised.value.message
    assert message.startswith(f"{variable}: ")
    assert "\n" not in message
    assert raised.value.details["variable"] == variable


def test_dotenv_file_is_read(tmp_path):
    """Values in the .env file are used when the environment does not set them."""
    dotenv = tmp_path / ".env"
    dotenv.write_text("PORT=4321\nOMNICHANNEL_API_KEY=from-dotenv\nWEBHOOK_SECRET=s\n")
    config = config_of({}, dotenv=dotenv)
    assert config.port == 4321
    assert config.api_keys == ("from-dotenv",)
    assert config.environ["WEBHOOK_SECRET"] == "s"  # channels read their own variables


def test_environment_wins_over_dotenv(tmp_path):
    """A variable set in the real environment overrides the same one in .env."""
    dotenv = tmp_path / ".env"
    dotenv.write_text("PORT=4321\nOMNICHANNEL_WORKERS=3\n")
    config = config_of({"PORT": "5555"}, dotenv=dotenv)
    assert config.port == 5555
    assert config.workers == 3


def test_bad_value_in_dotenv_is_reported_by_name(tmp_path):
    """A malformed value coming from .env is reported like one from the environment."""
    dotenv = tmp_path / ".env"
    dotenv.write_text("OMNICHANNEL_WORKERS=many\n")
    with pytest.raises(ConfigError, match=r"^OMNICHANNEL_WORKERS: "):
        config_of({}, dotenv=dotenv)


def test_missing_dotenv_is_fine(tmp_path):
    """No .env file at the given path is not an error: everything comes from the environment."""
    assert config_of({"PORT": "3001"}, dotenv=tmp_path / ".env").port == 3001


def test_api_keys_are_not_in_repr():
    """The API keys never appear in the config's repr, so logging a config leaks nothing."""
    config = config_of({"OMNICHANNEL_API_KEY": "very-secret-key", "WEBHOOK_SECRET": "hush"})
    assert "very-secret-key" not in repr(config)
    assert "hush" not in repr(config)


def test_rate_limits_of_zero_are_off():
    """0 is a valid rate limit: it turns that limit off."""
    config = config_of(
        {
            "OMNICHANNEL_RATE_LIMIT": "0",
            "OMNICHANNEL_CREDENTIAL_RATE_LIMIT": "0",
            "OMNICHANNEL_LOGIN_RATE_LIMIT": "0",
        }
    )
    assert config.rate_limit_per_minute == 0
    assert config.credential_rate_limit_per_minute == 0
    assert config.login_rate_limit_per_minute == 0


def test_cors_origins_are_stored_as_browsers_send_them():
    """CORS origins are a trimmed comma list, lower-cased and without a trailing slash, so
    they compare equal to a browser's Origin header."""
    config = config_of(
        {"OMNICHANNEL_CORS_ORIGINS": " https://App.Example.com/ , http://localhost:5173,, "}
    )
    assert config.cors_origins == ("https://app.example.com", "http://localhost:5173")


@pytest.mark.parametrize("value", ["*", "https://app.example.com,*", "https://*.example.com"])
def test_cors_wildcard_is_refused_and_the_error_says_so(value):
    """A wildcard origin is refused with a message that says '*' is not allowed."""
    with pytest.raises(ConfigError, match=r"^OMNICHANNEL_CORS_ORIGINS: '\*' is not allowed"):
        config_of({"OMNICHANNEL_CORS_ORIGINS": value})


def test_short_jwt_secret_is_refused_without_echoing_it():
    """A JWT secret under 32 characters is refused; the message gives its length, never the
    secret itself."""
    with pytest.raises(ConfigError, match=r"^OMNICHANNEL_JWT_SECRET: .*32") as raised:
        config_of({"OMNICHANNEL_JWT_SECRET": "short-secret-value"})
    assert "short-secret-value" not in raised.value.message


def test_jwt_secret_is_not_in_repr():
    """The JWT signing secret never appears in the config's repr."""
    secret = "a-very-long-signing-secret-0123456789"
    assert secret not in repr(config_of({"OMNICHANNEL_JWT_SECRET": secret}))


README = Path(__file__).resolve().parent.parent / "README.md"


def _readme_defaults() -> dict[str, str]:
    """Variable -> the default column of the README's configuration table."""
    rows = {}
    for line in README.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0].startswith("`") and cells[0].endswith("`"):
            rows[cells[0].strip("`")] = cells[1].strip("`")
    return rows


def test_the_readme_documents_every_setting_with_its_default():
    """Every variable the core reads has a row in the README's table, and where the default
    is a plain number, word or switch the row says the one ``config.py`` declares."""
    documented = _readme_defaults()
    for variable, default in Config.variables().items():
        assert variable in documented, f"README's Configuration has no row for {variable}"
        if isinstance(default, bool):
            assert documented[variable] == str(default).lower(), variable
        elif isinstance(default, int | str) and default != "":
            # a count that also takes true/false (OMNICHANNEL_TRUST_PROXY) shows 0 as false
            spelled = {str(default), "false"} if default == 0 else {str(default)}
            assert documented[variable] in spelled, variable


def test_retention_bound_below_the_retention_time_is_refused():
    """The bound for what subscribers have not read is an age in total, so one shorter than
    the retention time itself makes no sense: start-up stops, naming both variables."""
    with pytest.raises(ConfigError) as refused:
        config_of(
            {
                "OMNICHANNEL_EVENT_RETENTION_HOURS": "72",
                "OMNICHANNEL_EVENT_RETENTION_MAX_HOURS": "10",
            }
        )
    assert "OMNICHANNEL_EVENT_RETENTION_MAX_HOURS" in refused.value.message
    assert "OMNICHANNEL_EVENT_RETENTION_HOURS (72)" in refused.value.message
    config = config_of({"OMNICHANNEL_EVENT_RETENTION_MAX_HOURS": "72"})
    assert config.event_retention_max_hours == 72
