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
    (tmp_path / "qa.toml").write_text("base = 'defaults'\nretain_data = 'yes'\n")
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


# ---------------------------------------------------------------- environments and their bases


@pytest.fixture
def environments(tmp_path: Path, project_root: Path) -> Path:
    """A copy of the project's environment files, to add new ones beside them."""
    for path in (project_root / "config" / "environments").glob("*.toml"):
        (tmp_path / path.name).write_text(path.read_text())
    return tmp_path


def test_dev_and_prod_are_the_roots_and_start_from_the_documented_defaults(project_root: Path):
    import tomllib

    for env in known_environments():
        data = tomllib.loads((project_root / "config" / "environments" / f"{env}.toml").read_text())
        assert data["base"] == "defaults", env


def test_an_environment_without_a_base_is_refused_so_an_empty_file_cannot_deploy_production_sizes(environments):
    (environments / "qa.toml").write_text("")
    with pytest.raises(ConfigError) as exc:
        load_config("qa", environments_dir=environments)
    [problem] = exc.value.problems
    assert problem.path == "base" and problem.source.endswith("qa.toml")
    assert 'base = "<environment>"' in problem.message and "dev, prod" in problem.message
    assert "base = 'defaults'" in problem.message


def test_a_new_environment_starts_from_its_base_and_names_the_file_of_each_value(environments):
    (environments / "qa.toml").write_text('base = "dev"\n[storage]\ncompile_cache_expiration_days = 3\n')
    qa = load_config("qa", environments_dir=environments)
    dev = load_config("dev", environments_dir=environments)
    assert qa.environment == "qa"
    assert qa.storage.compile_cache_expiration_days == 3
    # everything else is dev's, not the production-sized defaults
    assert (qa.retain_data, qa.llm.enabled, qa.training.enabled) == (False, False, False)
    assert qa.multi_model == dev.multi_model and qa.storage.encryption == "s3"
    with pytest.raises(ConfigError) as exc:
        load_config("qa", environments_dir=environments,
                    overrides={"storage.noncurrent_version_expiration_days": "0", "storage.encryption": "x"})
    sources = {p.path: p.source for p in exc.value.problems}
    assert sources["storage.noncurrent_version_expiration_days"] == "-c set:storage.noncurrent_version_expiration_days"
    (environments / "qa.toml").write_text('base = "dev"\n[storage]\nencryption = "none"\n')
    (environments / "qa2.toml").write_text('base = "qa"\nretain_data = 1\n')
    with pytest.raises(ConfigError) as exc:
        load_config("qa2", environments_dir=environments)
    sources = {p.path: p.source for p in exc.value.problems}
    assert sources["storage.encryption"].endswith("qa.toml")
    assert sources["retain_data"].endswith("qa2.toml")


def test_bases_resolve_recursively_and_the_nearest_file_wins(environments):
    (environments / "a.toml").write_text('base = "prod"\n[storage]\ncompile_cache_expiration_days = 10\n')
    (environments / "b.toml").write_text('base = "a"\n[storage]\ncompile_cache_expiration_days = 20\n')
    b = load_config("b", environments_dir=environments)
    assert b.storage.compile_cache_expiration_days == 20
    assert b.retain_data is True and b.storage.encryption == "kms"  # from prod, two levels down


def test_a_cycle_of_bases_is_refused(environments):
    (environments / "a.toml").write_text('base = "b"\n')
    (environments / "b.toml").write_text('base = "a"\n')
    with pytest.raises(ConfigError) as exc:
        load_config("a", environments_dir=environments)
    [problem] = exc.value.problems
    assert problem.path == "base" and "cycle (a -> b -> a)" in problem.message and problem.source.endswith("b.toml")


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        ('"staging"', "unknown environment 'staging'; known environments: a, dev, prod, or 'defaults'"),
        ("1", "got 1, allowed: 1-32 letters, digits and '-'"),
        ('"my_env"', "got 'my_env', allowed: 1-32 letters"),
    ],
)
def test_a_base_that_names_no_environment_is_refused(environments, base, expected):
    (environments / "a.toml").write_text(f"base = {base}\n")
    with pytest.raises(ConfigError) as exc:
        load_config("a", environments_dir=environments)
    [problem] = exc.value.problems
    assert problem.path == "base" and expected in problem.message and problem.source.endswith("a.toml")


@pytest.mark.parametrize("name", ["my_env", "-qa", "qa-", "q" * 33, "qa.prod", "defaults"])
def test_environment_names_that_cannot_be_part_of_a_stack_name_are_refused(environments, name):
    (environments / f"{name}.toml").write_text('base = "dev"\n')
    with pytest.raises(ConfigError) as exc:
        load_config(name, environments_dir=environments)
    [problem] = exc.value.problems
    assert (problem.path, problem.source) == ("env", "-c env")
    assert f"got {name!r}, allowed: 1-32 letters, digits and '-'" in problem.message


def test_a_tool_names_its_own_option_as_the_source_of_the_environment():
    with pytest.raises(ConfigError) as exc:
        load_config("qa", env_source="--env")
    assert "(from --env)" in str(exc.value) and "-c env" not in str(exc.value)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"environment": "prod"}, "environment: got 'prod'; cannot be set with -c set:, it is chosen with -c env=NAME"),
        ({"base": "prod"}, "base: got 'prod'; cannot be set with -c set:, only at the top of an environment file"),
    ],
)
def test_keys_that_exist_but_cannot_be_set_from_the_command_line_say_so(overrides, expected):
    with pytest.raises(ConfigError) as exc:
        load_config("dev", overrides=overrides)
    assert expected in str(exc.value)


def test_environment_and_base_in_files_say_where_they_belong(environments, tmp_path: Path):
    (environments / "qa.toml").write_text('base = "dev"\nenvironment = "prod"\n')
    with pytest.raises(ConfigError) as exc:
        load_config("qa", environments_dir=environments)
    assert "environment: got 'prod'; cannot be set in a file, it is chosen with -c env=NAME" in str(exc.value)
    overlay = tmp_path / "overlay.toml"
    overlay.write_text('base = "prod"\n')
    with pytest.raises(ConfigError) as exc:
        load_config("dev", overlay_file=str(overlay))
    [problem] = exc.value.problems
    assert (problem.path, problem.source) == ("base", str(overlay))
    assert "got 'prod'; only environment files have a base" in problem.message


# ---------------------------------------------------------------- where a value came from


def test_a_default_inside_a_table_the_environment_file_gives_is_reported_as_a_default():
    """dev.toml has a [stable_diffusion] table, but volume_size_gb in it is the schema's default."""
    with pytest.raises(ConfigError) as exc:
        load_config("dev", overrides={"stable_diffusion.instance_type": "ml.g5.2xlarge"})
    sources = {p.path: p.source for p in exc.value.problems}
    assert sources["stable_diffusion.volume_size_gb"] == "defaults"
    assert sources["stable_diffusion.tensor_parallel_degree"] == "defaults"


def test_nested_keys_name_the_layer_that_set_them(tmp_path: Path):
    overlay = tmp_path / "scaling.toml"
    overlay.write_text("[multi_model.autoscaling]\nmin_capacity = 3\n")
    with pytest.raises(ConfigError) as exc:
        load_config("dev", overlay_file=str(overlay))  # dev.toml sets max_capacity = 2 and instance_count = 1
    sources = {p.path: p.source for p in exc.value.problems}
    assert sources == {"multi_model.autoscaling.min_capacity": str(overlay),
                       "multi_model.instance_count": "config/environments/dev.toml"}


def test_list_items_name_the_layer_that_set_the_list(tmp_path: Path):
    overlay = tmp_path / "tags.json"
    overlay.write_text(json.dumps({"tags": {"team": 5}}))
    with pytest.raises(ConfigError) as exc:
        load_config("dev", overlay_file=str(overlay))
    assert f"tags.team: expected a string, got 5 (from {overlay})" in str(exc.value)


@pytest.mark.parametrize("layer", ["flag", "file"])
def test_a_boolean_is_not_accepted_where_an_integer_is_expected(environments, layer):
    if layer == "flag":
        with pytest.raises(ConfigError) as exc:
            load_config("dev", overrides={"multi_model.instance_count": "true"})
    else:
        (environments / "qa.toml").write_text('base = "dev"\n[multi_model]\ninstance_count = true\n')
        with pytest.raises(ConfigError) as exc:
            load_config("qa", environments_dir=environments)
    assert "multi_model.instance_count: expected an integer, got True" in str(exc.value)


def test_the_new_environment_example_in_the_docs_loads(environments, project_root: Path):
    import re

    page = (project_root / "docs" / "configuration.md").read_text()
    [example] = re.findall(r"```toml\n# config/environments/(\w+)\.toml\n(.*?)```", page, re.S)
    name, body = example
    (environments / f"{name}.toml").write_text(body)
    cfg = load_config(name, environments_dir=environments)
    assert cfg.environment == name and cfg.retain_data is True  # from its base, prod
    assert cfg.multi_model.instance_count == 4


def test_an_unreadable_environment_file_is_reported_once(environments):
    (environments / "qa.toml").write_text("base = [\n")
    with pytest.raises(ConfigError) as exc:
        load_config("qa", environments_dir=environments)
    [problem] = exc.value.problems
    assert problem.path == "(file)" and "not valid TOML" in problem.message and problem.source.endswith("qa.toml")
