"""A Stable Diffusion model that loads but fails its requests raises an alarm and rolls a guarded update
back, on every runtime, although none of them answers such a failure with a 5XX that SageMaker counts
(the Hugging Face toolkit answers 400, DJL 0.24's built-in handler 424).

What reaches the alarm is a line in the endpoint's (or component's) log group, counted by a metric
filter: the templates must hold the filter with the exact line, and the alarm among the rollback alarms.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from ml_constructs.sagemaker.log_groups import MODEL_ERROR_NAMESPACE, MODEL_ERROR_TOKEN, filter_pattern_matches
from tests.helpers import resources_of_type

ROOT = Path(__file__).resolve().parent.parent
RUNTIMES = {  # (environment, overrides) -> the line its serving stack writes per failed request
    "current": ({}, MODEL_ERROR_TOKEN),
    "seed byo-script": ({"stable_diffusion__runtime": "seed", "stable_diffusion__serving_mode": "byo-script"},
                        MODEL_ERROR_TOKEN),
    "seed no-code": ({"stable_diffusion__runtime": "seed", "stable_diffusion__serving_mode": "no-code"},
                     "Neuron inference failed"),
}


def _filter_and_alarm(template: dict) -> tuple[dict, dict, list[dict]]:
    """The model-error metric filter, its alarm, and the DeploymentConfigs that name their rollback alarms."""
    (metric_filter,) = resources_of_type(template, "AWS::Logs::MetricFilter").values()
    (transformation,) = metric_filter["Properties"]["MetricTransformations"]
    alarms = [a["Properties"] for a in resources_of_type(template, "AWS::CloudWatch::Alarm").values()
              if a["Properties"].get("Namespace") == MODEL_ERROR_NAMESPACE]
    assert len(alarms) == 1 and alarms[0]["MetricName"] == transformation["MetricName"]
    configs = [r["Properties"]["DeploymentConfig"]
               for kind in ("AWS::SageMaker::Endpoint", "AWS::SageMaker::InferenceComponent")
               for r in resources_of_type(template, kind).values() if "DeploymentConfig" in r["Properties"]]
    return metric_filter["Properties"], alarms[0], configs


@pytest.mark.parametrize("env", ["dev", "prod"])
@pytest.mark.parametrize("runtime", sorted(RUNTIMES))
def test_each_runtime_alarms_and_rolls_back_on_its_model_error_line(platform_synth, env, runtime):
    overrides, line = RUNTIMES[runtime]
    _, assembly = platform_synth(env, **overrides)
    template = assembly.get_stack_by_name(f"MlAccel-{env}-StableDiffusion").template
    metric_filter, alarm, configs = _filter_and_alarm(template)
    assert metric_filter["FilterPattern"] == f'"{line}"'
    assert alarm["Threshold"] == 1 and alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    # The group SageMaker writes to: the endpoint's (instances) or the component's (inference components).
    group = template["Resources"][metric_filter["LogGroupName"]["Ref"]]["Properties"]["LogGroupName"]
    hosted_as = "InferenceComponents" if env == "dev" else "Endpoints"  # dev idles at zero with components
    assert group.startswith(f"/aws/sagemaker/{hosted_as}/")
    assert alarm["AlarmActions"] and alarm["OKActions"]  # the app's alert topic
    if env == "dev":
        # dev's component can scale to zero copies: it cannot roll (a batch is 5-50 % of 2 or more copies),
        # so its updates are SageMaker's own, with no rollback alarms at all (docs/sagemaker-endpoints.md).
        assert configs == []
        return
    (config,) = configs
    rollback = [a["AlarmName"] for a in config["AutoRollbackConfiguration"]["Alarms"]]
    assert alarm["AlarmName"] in rollback


ROLLING_COMPONENT = {"stable_diffusion__hosting__min_copies": "2", "stable_diffusion__hosting__copies": "2",
                     "stable_diffusion__hosting__max_copies": "2", "stable_diffusion__hosting__max_instances": "3"}


@pytest.mark.parametrize("runtime", sorted(RUNTIMES))
def test_a_component_that_rolls_rolls_back_on_its_model_errors(platform_synth, runtime):
    overrides, line = RUNTIMES[runtime]
    _, assembly = platform_synth("dev", **overrides, **ROLLING_COMPONENT)
    template = assembly.get_stack_by_name("MlAccel-dev-StableDiffusion").template
    metric_filter, alarm, configs = _filter_and_alarm(template)
    assert metric_filter["FilterPattern"] == f'"{line}"'
    (config,) = configs
    assert "RollingUpdatePolicy" in config
    assert alarm["AlarmName"] in [a["AlarmName"] for a in config["AutoRollbackConfiguration"]["Alarms"]]


@pytest.mark.parametrize(
    ("line", "pattern", "matches"),
    [
        # The Hugging Face toolkit's model server forwards the handler's stdout per line (MODEL_LOG).
        ("2026-12-05T00:01:02,345 [INFO ] W-9000-model-stdout MODEL_LOG - ml_platform.model_error "
         "RuntimeError: nrt_execute status=1", f'"{MODEL_ERROR_TOKEN}"', True),
        # DJL Serving 0.24 PyProcess forwards the Python worker's stdout as "<worker>-stdout: <line>".
        ("INFO  PyProcess W-233-model-stdout: ml_platform.model_error NRT error 1001", f'"{MODEL_ERROR_TOKEN}"', True),
        ("INFO  PyProcess W-233-model-stdout: Neuron inference failed", '"Neuron inference failed"', True),
        # A client error is a 400 with its reason and no token; the phrase is case-sensitive and exact.
        ("WARN  W-9000-model-stdout MODEL_LOG - 400 unknown parameters: seed", f'"{MODEL_ERROR_TOKEN}"', False),
        ("ML_PLATFORM.MODEL_ERROR", f'"{MODEL_ERROR_TOKEN}"', False),
        ("ml_platform model_error", f'"{MODEL_ERROR_TOKEN}"', False),
        ("neuron inference failed", '"Neuron inference failed"', False),
    ],
)
def test_a_log_line_is_counted_exactly_when_it_carries_the_runtime_line(line, pattern, matches):
    assert filter_pattern_matches(pattern, line) is matches


def test_the_filter_matcher_refuses_pattern_forms_it_does_not_implement():
    for pattern in ('{ $.level = "ERROR" }', "[ip, user]", "%err%", '?"a" ?"b"', '"a" -"b"', ""):
        with pytest.raises(ValueError):
            filter_pattern_matches(pattern, "anything")


@pytest.mark.parametrize(("runtime", "handler"), [
    ("current", "model_packages/stable_diffusion_compile/optimum_serving/code/inference.py"),
    ("seed byo-script", "model_packages/stable_diffusion_inf2_byo/model.py"),
])
def test_every_stable_diffusion_handler_writes_the_line_its_deployed_filter_counts(platform_synth, runtime, handler):
    """The handlers we ship (not DJL's built-in one) spell one token, no variant of it, and the synthesized
    metric filter of the endpoint that serves the handler counts exactly that token. That each logs it once
    on a model failure, and never on a bad request, is proven in the profiles' contract tests
    (contract_tests/stable_diffusion/*/)."""
    spelled = set(re.findall(r"ml_platform[._-]model[._-]?errors?", (ROOT / handler).read_text()))
    assert len(spelled) == 1, f"{handler}: {spelled}"
    overrides, _ = RUNTIMES[runtime]
    _, assembly = platform_synth("prod", **overrides)
    metric_filter, _, _ = _filter_and_alarm(assembly.get_stack_by_name("MlAccel-prod-StableDiffusion").template)
    assert metric_filter["FilterPattern"] == f'"{spelled.pop()}"'
