"""The deploy jobs' AWS session and timeout against the worst-case deploy of dev and prod.

A session that ends before CloudFormation does fails `cdk deploy` with an expired token while the
stacks keep updating; a job timeout below the worst case kills the runner mid-deploy. The worst case
comes from the synthesized templates (scripts/deploy_budget.py, formula in docs/continuous-delivery.md).
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from scripts import deploy_budget
from tests.helpers import ROOT

WORKFLOW = ROOT / ".github" / "workflows" / "deploy.yml"
BOOTSTRAP = ROOT / "bootstrap" / "github.toml"


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_the_deploy_jobs_session_and_timeout_cover_the_worst_case(platform_synth, env):
    _, assembly = platform_synth(env)
    stacks = deploy_budget.assembly_budget(Path(assembly.directory))
    assert deploy_budget.check(stacks, env, WORKFLOW, BOOTSTRAP) == []
    need = deploy_budget.needs(stacks)
    assert need.session_seconds > 3600  # a default 1-hour session would expire mid-deploy
    assert need.timeout_minutes <= deploy_budget.GITHUB_JOB_LIMIT_MINUTES


def test_prod_multi_model_rolling_update_is_counted_batch_by_batch(platform_synth):
    _, assembly = platform_synth("prod")
    stacks = {s.name: s for s in deploy_budget.assembly_budget(Path(assembly.directory))}
    (update,) = stacks["MlAccel-prod-MultiModel"].updates
    # 25 % batches of 20 instances: 4 x (launch 600 + download 300 + startup 300 + bake 900), then a rollback
    # of 4 batches without bakes (prod.toml sets both timeouts to 300 s).
    assert (update.strategy, update.update, update.rollback) == ("rolling", 4 * 2100, 4 * 1200)
    (bloom, opt) = stacks["MlAccel-prod-Llm"].updates
    # Blue/green: launch + download 2400 + startup 2400 + bake 900 + termination wait 900; rollback shifts back.
    assert bloom.update == opt.update == 600 + 2400 + 2400 + 900 + 900


def write_workflow(tmp_path, session: int, timeout: int):
    text = WORKFLOW.read_text()
    text = re.sub(r"role-duration-seconds: \d+", f"role-duration-seconds: {session}", text)
    text = re.sub(r"timeout-minutes: \d+", f"timeout-minutes: {timeout}", text)
    path = tmp_path / "deploy.yml"
    path.write_text(text)
    return path


def test_a_session_or_timeout_below_the_worst_case_is_refused_naming_the_setting(platform_synth, tmp_path):
    _, assembly = platform_synth("prod")
    stacks = deploy_budget.assembly_budget(Path(assembly.directory))
    problems = deploy_budget.check(stacks, "prod", write_workflow(tmp_path, 3600, 180), BOOTSTRAP)
    assert len(problems) == 2
    assert "role-duration-seconds = 3600 is below the worst case" in problems[0]
    assert "timeout-minutes = 180 is below the worst case" in problems[1]
    assert "MlAccel-prod-MultiModel: multi_model's container_startup_health_check_timeout_seconds" in problems[1]


def test_a_session_longer_than_the_roles_maximum_is_refused(platform_synth, tmp_path):
    _, assembly = platform_synth("dev")
    stacks = deploy_budget.assembly_budget(Path(assembly.directory))
    bootstrap = tmp_path / "github.toml"
    bootstrap.write_text('repository = "a/b"\nmax_session_hours = 2\n')
    (problem,) = deploy_budget.check(stacks, "dev", WORKFLOW, bootstrap)
    assert "exceeds the deploy role's max_session_hours = 2" in problem and "at most 12" in problem


def test_a_configuration_whose_worst_case_exceeds_a_github_job_is_refused(platform_synth, tmp_path):
    _, assembly = platform_synth("prod", **{"multi_model.container_startup_health_check_timeout_seconds": "3600"})
    stacks = deploy_budget.assembly_budget(Path(assembly.directory))
    problems = deploy_budget.check(stacks, "prod", WORKFLOW, BOOTSTRAP)
    assert any("exceeds GitHub's 360-minute job limit" in p and "multi_model's container_startup" in p
               for p in problems), problems


def test_make_lint_templates_runs_the_budget_check_and_deploy_runs_stacks_side_by_side(platform_synth):
    makefile = (ROOT / "Makefile").read_text()
    assert "python scripts/deploy_budget.py cdk.out\n" in makefile
    concurrency = int(re.search(r"^DEPLOY_CONCURRENCY := (\d+)$", makefile, re.M).group(1))
    assert "--concurrency $(DEPLOY_CONCURRENCY)" in makefile
    _, assembly = platform_synth("prod")
    # The budget counts the longest chain of stacks, which holds only if every ready stack may start at once.
    assert concurrency >= len(assembly.stacks) - 1


def test_the_environment_comes_from_the_assembly_and_a_mismatch_is_refused(platform_synth, capsys):
    _, assembly = platform_synth("dev")
    assert deploy_budget.assembly_env(deploy_budget.assembly_budget(Path(assembly.directory))) == "dev"
    assert deploy_budget.main([assembly.directory]) == 0
    assert deploy_budget.main([assembly.directory, "--env", "prod"]) == 1
    assert "holds the stacks of dev; got --env prod" in capsys.readouterr().err


def test_a_rolling_component_update_is_counted_at_its_copy_ceiling():
    # 1 copy at deploy, autoscaled up to 4: an update while scaled out rolls 4 batches of one copy each.
    template = {"Resources": {
        "Comp": {"Type": "AWS::SageMaker::InferenceComponent", "Properties": {
            "RuntimeConfig": {"CopyCount": 1},
            "DeploymentConfig": {"RollingUpdatePolicy": {
                "MaximumBatchSize": {"Type": "COPY_COUNT", "Value": 1}, "WaitIntervalInSeconds": 300}}}},
        "CompCopyScaling": {"Type": "AWS::ApplicationAutoScaling::ScalableTarget", "Properties": {
            "MinCapacity": 0, "MaxCapacity": 4,
            "ResourceId": {"Fn::Join": ["", ["inference-component/", {"Fn::Select": [1, {"Fn::Split": [
                "/", {"Fn::GetAtt": ["Comp", "InferenceComponentArn"]}]}]}]]}}},
    }}
    (update,) = deploy_budget.stack_budget("MlAccel-dev-X", template, []).updates
    # each batch: launch 600 + download and startup unset (3600 each) + bake 300
    assert (update.strategy, update.update) == ("rolling", 4 * (600 + 3600 + 3600 + 300))
