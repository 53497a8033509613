"""Configuration: layering, typing, and one clear message per bad value."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from config import ConfigError, known_environments, load_config, load_config_from_context


def problems_of(excinfo: pytest.ExceptionInfo[ConfigError]) -> list[str]:
    return [str(p) for p in excinfo.value.problems]


def test_known_environments_include_dev_and_prod():
    assert {"dev", "prod"} <= set(known_environments())


def test_default_environment_is_dev():
    assert load_config_from_context({}).environment == "dev"


def test_dev_is_cheap_and_disposable_and_prod_retains():
    dev, prod = load_config("dev"), load_config("prod")
    assert dev.retain_data is False and prod.retain_data is True
    assert dev.llm.enabled is False and dev.training.enabled is False
    assert prod.llm.enabled and prod.training.enabled and prod.stable_diffusion.enabled and prod.multi_model.enabled
    assert prod.storage.encryption == "kms"


def test_unknown_environment_lists_known_ones():
    with pytest.raises(ConfigError) as exc:
        load_config("qa")
    assert "unknown environment 'qa'; known environments: dev, prod" in str(exc.value)


def test_layers_apply_in_order_file_overlay_flag(tmp_path: Path):
    overlay = tmp_path / "overlay.toml"
    overlay.write_text("[storage]\ncompile_cache_expiration_days = 90\nnoncurrent_version_expiration_days = 60\n")
    cfg = load_config("dev", overlay_file=str(overlay), overrides={"storage.noncurrent_version_expiration_days": "5"})
    assert cfg.storage.compile_cache_expiration_days == 90  # overlay beats dev.toml's 14
    assert cfg.storage.noncurrent_version_expiration_days == 5  # flag beats overlay
    assert cfg.storage.encryption == "s3"  # untouched dev.toml value


def test_json_overlay_is_accepted(tmp_path: Path):
    overlay = tmp_path / "o.json"
    overlay.write_text(json.dumps({"tags": {"team": "ml"}}))
    assert dict(load_config("prod", overlay_file=str(overlay)).tags) == {"environment": "prod", "team": "ml"}


def test_flag_values_are_parsed_by_schema_type():
    cfg = load_config(
        "dev",
        overrides={"account": "012345678901", "region": "eu-west-1", "retain_data": "true", "storage.encryption": "kms"},
    )
    assert cfg.account == "012345678901"  # stays a string, leading zero kept
    assert cfg.retain_data is True
    assert cfg.storage.encryption == "kms"


def test_context_from_cli_reads_env_config_and_set_keys(tmp_path: Path):
    overlay = tmp_path / "o.toml"
    overlay.write_text("stack_prefix = 'Team'\n")
    cfg = load_config_from_context({"env": "prod", "config": str(overlay), "set:storage.access_logs_expiration_days": "90"})
    assert (cfg.environment, cfg.stack_prefix, cfg.storage.access_logs_expiration_days) == ("prod", "Team", 90)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"storage.bogus": "1"}, "storage.bogus: unknown key 'bogus'; allowed keys: abort_incomplete_multipart_upload_days"),
        ({"retain_data": "perhaps"}, "retain_data: expected a boolean, got 'perhaps' (from -c set:retain_data)"),
        ({"storage.compile_cache_expiration_days": "ten"}, "expected an integer, got 'ten'"),
        ({"storage.compile_cache_expiration_days": "1.5"}, "expected an integer, got 1.5"),
        ({"storage.compile_cache_expiration_days": "0"}, "got 0, allowed range: 1 to 3650"),
        ({"storage.noncurrent_version_expiration_days": "3651"}, "got 3651, allowed range: 1 to 3650"),
        ({"storage.abort_incomplete_multipart_upload_days": "366"}, "got 366, allowed range: 1 to 365"),
        ({"storage.access_logs_expiration_days": "-1"}, "got -1, allowed range: 1 to 3650"),
        ({"storage.encryption": "aes"}, "storage.encryption: got 'aes', allowed: 'kms', 's3'"),
        ({"account": "12345", "region": "us-east-1"}, r"account: got '12345', which does not match \d{12}"),
        ({"account": "123456789012", "region": "mars-1"}, "region: got 'mars-1', which does not match"),
        ({"account": "123456789012"}, "account and region must be set together"),
        ({"stack_prefix": "1bad"}, "stack_prefix: got '1bad', which does not match"),
        ({"tags.aws:owner": "x"}, "tags.aws:owner: tag keys are 1-128 characters and must not start with 'aws:'"),
        ({"tags." + "k" * 129: "x"}, "tag keys are 1-128 characters"),
        ({"tags": "x"}, "tags: expected a table of a string, got 'x'"),
        ({"storage": "x"}, "storage: expected a table, got 'x'"),
        ({"stable_diffusion.enabled": "yes"}, "stable_diffusion.enabled: expected a boolean, got 'yes'"),
        ({"multi_model.enabled": "1"}, "multi_model.enabled: expected a boolean, got 1"),
        ({"llm.enabled": "no"}, "llm.enabled: expected a boolean"),
        ({"training.enabled": "0"}, "training.enabled: expected a boolean, got 0"),
        ({"storage..x": "1"}, "not a dotted key path"),
        ({"nonsense": "1"}, "nonsense: unknown key 'nonsense'; allowed keys: account, "),
    ],
)
def test_each_bad_value_fails_with_path_value_and_allowed(overrides, expected):
    with pytest.raises(ConfigError) as exc:
        load_config("dev", overrides=overrides)
    assert expected in str(exc.value)
    assert "-c set:" in str(exc.value)  # names the flag it came from


def test_every_problem_is_reported_at_once_with_its_source(tmp_path: Path):
    overlay = tmp_path / "bad.toml"
    overlay.write_text("[storage]\nencryption = 'none'\nunknown = 1\n")
    with pytest.raises(ConfigError) as exc:
        load_config("prod", overlay_file=str(overlay), overrides={"retain_data": "maybe"})
    found = problems_of(exc)
    assert len(found) == 3
    assert any("storage.encryption" in p and f"from {overlay}" in p for p in found)
    assert any("storage.unknown" in p and f"from {overlay}" in p for p in found)
    assert any("retain_data" in p and "from -c set:retain_data" in p for p in found)


def test_environment_file_values_name_the_file(tmp_path: Path):
    (tmp_path / "qa.toml").write_text("retain_data = 'yes'\n")
    with pytest.raises(ConfigError) as exc:
        load_config("qa", environments_dir=tmp_path)
    assert "retain_data: expected a boolean, got 'yes' (from " in str(exc.value)
    assert "qa.toml" in str(exc.value)


def test_missing_overlay_file_is_reported(tmp_path: Path):
    with pytest.raises(ConfigError) as exc:
        load_config("dev", overlay_file=str(tmp_path / "nope.toml"))
    assert "cannot read configuration file" in str(exc.value) and "nope.toml" in str(exc.value)


def test_malformed_overlay_files_are_reported(tmp_path: Path):
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text("storage = [\n")
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{not json")
    list_json = tmp_path / "list.json"
    list_json.write_text("[1, 2]")
    for path, message in [(bad_toml, "not valid TOML"), (bad_json, "not valid JSON"), (list_json, "expected a table")]:
        with pytest.raises(ConfigError) as exc:
            load_config("dev", overlay_file=str(path))
        assert message in str(exc.value) and str(path) in str(exc.value)


def test_null_clears_an_optional_value():
    cfg = load_config("dev", overrides={"account": "null", "region": "null"})
    assert cfg.account is None and cfg.region is None
