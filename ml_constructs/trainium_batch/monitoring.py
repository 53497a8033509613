"""Operations for the Trainium cluster: a hang alarm, a failed-job alarm and a dashboard."""
from __future__ import annotations

from typing import Sequence

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_events as events
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from ml_constructs.trainium_batch.job_definitions import METRICS_NAMESPACE
from ml_constructs.trainium_batch.runtime.heartbeat import METRIC_NAME

HEARTBEAT_PERIOD = cdk.Duration.minutes(5)
# Batch publishes no queue metrics of its own: the dashboard counts state changes instead.
QUEUE_STATES = ("RUNNABLE", "RUNNING", "SUCCEEDED")


class TrainingMonitoring(Construct):
    """Alarms and a dashboard for training jobs (alarm actions are the app's to add).

    Creates:
      - ``hang_alarm``: training steps completed (the runtime's heartbeat in
        ``MlAccel/Training``) stayed 0 for ``hang_after``; no data (no training running)
        is not a hang. Compiling at the start of a run also publishes 0: keep
        ``hang_after`` above the longest first-step compile;
      - ``failed_jobs_rule``: an EventBridge rule matching ``Batch Job State Change`` to
        ``FAILED`` for jobs of ``job_queue_arns``, and ``failed_jobs_alarm`` when it matched;
      - ``state_rules``: one EventBridge rule per job state in ``QUEUE_STATES`` (Batch has no
        queue metrics; these rules' ``MatchedEvents`` count jobs entering each state);
      - ``dashboard``: heartbeat, jobs entering RUNNABLE/RUNNING/SUCCEEDED/FAILED, pipeline
        executions, and the newest error lines of the jobs' log group (where a failed node's
        log stream is named).

    Attributes: ``hang_alarm``, ``failed_jobs_rule``, ``failed_jobs_alarm``, ``state_rules``, ``dashboard``.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        job_queue_arns: Sequence[str],
        job_log_group: logs.ILogGroup,
        state_machine: sfn.IStateMachine,
        hang_after: cdk.Duration = cdk.Duration.hours(1),
    ) -> None:
        super().__init__(scope, construct_id)
        periods = max(1, int(hang_after.to_minutes() // HEARTBEAT_PERIOD.to_minutes()))
        steps = cloudwatch.Metric(
            namespace=METRICS_NAMESPACE, metric_name=METRIC_NAME, statistic="Sum", period=HEARTBEAT_PERIOD,
        )
        self.hang_alarm = steps.create_alarm(
            self,
            "HangAlarm",
            alarm_description=f"No training step completed for {hang_after.to_minutes():g} min while a job runs: "
            "a hung collective or a stalled node (docs/training.md, Operations).",
            comparison_operator=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
            threshold=1,
            evaluation_periods=periods,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.failed_jobs_rule = self._state_rule("FailedJobs", "FAILED", job_queue_arns)
        failed = self._matched(self.failed_jobs_rule)
        self.state_rules = {state: self._state_rule(f"{state.title()}Jobs", state, job_queue_arns) for state in QUEUE_STATES}
        self.failed_jobs_alarm = failed.create_alarm(
            self,
            "FailedJobsAlarm",
            alarm_description="A Trainium job failed for good (no retry rule matched or attempts ran out).",
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            threshold=1,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.dashboard = cloudwatch.Dashboard(self, "Dashboard")
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(title="Training heartbeat (steps / 5 min)", left=[steps], width=12),
            cloudwatch.GraphWidget(
                title="Jobs entering each state (both queues)",
                left=[self._matched(rule).with_(label=state) for state, rule in self.state_rules.items()]
                + [failed.with_(label="FAILED")],
                width=12,
            ),
        )
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Pipeline executions",
                left=[
                    state_machine.metric_started(),
                    state_machine.metric_succeeded(),
                    state_machine.metric_failed(),
                    state_machine.metric_timed_out(),
                ],
                width=12,
            ),
            cloudwatch.LogQueryWidget(
                title="Newest job errors (log stream = job and node)",
                log_group_names=[job_log_group.log_group_name],
                query_lines=[
                    "fields @timestamp, @logStream, @message",
                    "filter @message like /ERROR|retryable failure|pre-flight/",
                    "sort @timestamp desc",
                    "limit 50",
                ],
                width=12,
            ),
        )

    def _state_rule(self, id: str, state: str, job_queue_arns: Sequence[str]) -> events.Rule:
        return events.Rule(
            self,
            id,
            description=f"Trainium jobs entering {state}",
            event_pattern=events.EventPattern(
                source=["aws.batch"],
                detail_type=["Batch Job State Change"],
                detail={"status": [state], "jobQueue": list(job_queue_arns)},
            ),
        )

    @staticmethod
    def _matched(rule: events.Rule) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace="AWS/Events", metric_name="MatchedEvents", statistic="Sum", period=cdk.Duration.minutes(5),
            dimensions_map={"RuleName": rule.rule_name},
        )
