"""Operations for the Trainium cluster: stopped hung runs, failed jobs, and a dashboard."""
from __future__ import annotations

from typing import Sequence

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_events as events
from aws_cdk import aws_logs as logs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from ml_constructs.trainium_batch.job_definitions import METRICS_NAMESPACE
from ml_constructs.trainium_batch.runtime.heartbeat import METRIC_NAME, RUN_DIMENSION, STALLED_MARKER

HEARTBEAT_PERIOD = cdk.Duration.minutes(5)
STOPPED_RUNS_METRIC = "TrainingRunsStoppedAsHung"
# Batch publishes no queue metrics of its own: the dashboard counts state changes instead.
QUEUE_STATES = ("RUNNABLE", "RUNNING", "SUCCEEDED")


class TrainingMonitoring(Construct):
    """Alarms and a dashboard for training jobs (alarm actions are the app's to add).

    Creates:
      - ``hang_alarm``: a run was stopped as hung. The stopping is the job's own (the main
        node's watchdog, ``trainium_runtime.heartbeat.Watchdog``, per run, on the job
        definition's ``HANG_AFTER_SECONDS``): an alarm over a metric summed across runs could
        not tell one hung run beside a healthy one, and an alarm action cannot know which
        job to stop. A metric filter on the jobs' log group counts the watchdog's
        ``TRAINING STALLED`` lines; the alarm fires on any;
      - ``failed_jobs_rule``: an EventBridge rule matching ``Batch Job State Change`` to
        ``FAILED`` for jobs of ``job_queue_arns``, and ``failed_jobs_alarm`` when it matched;
      - ``state_rules``: one EventBridge rule per job state in ``QUEUE_STATES`` (Batch has no
        queue metrics; these rules' ``MatchedEvents`` count jobs entering each state);
      - ``dashboard``: steps per run (one line per ``RunId``), jobs entering RUNNABLE/RUNNING/SUCCEEDED/FAILED, pipeline
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
    ) -> None:
        super().__init__(scope, construct_id)
        logs.MetricFilter(
            self,
            "StoppedRuns",
            log_group=job_log_group,
            metric_namespace=METRICS_NAMESPACE,
            metric_name=STOPPED_RUNS_METRIC,
            filter_pattern=logs.FilterPattern.literal(f'"{STALLED_MARKER}"'),
            metric_value="1",
        )
        stopped = cloudwatch.Metric(
            namespace=METRICS_NAMESPACE, metric_name=STOPPED_RUNS_METRIC, statistic="Sum", period=HEARTBEAT_PERIOD,
        )
        self.hang_alarm = stopped.create_alarm(
            self,
            "HangAlarm",
            alarm_description="A training run stopped making progress and was stopped for a retry on new hosts "
            "(the job's log names the run and its last step; docs/training.md, Hangs).",
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            threshold=1,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        steps = cloudwatch.MathExpression(
            expression=f"SEARCH('{{{METRICS_NAMESPACE},{RUN_DIMENSION}}} MetricName=\"{METRIC_NAME}\"', 'Sum', 300)",
            label="",
            period=HEARTBEAT_PERIOD,
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
            cloudwatch.GraphWidget(title="Training steps per run (steps / 5 min)", left=[steps, stopped], width=12),
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
