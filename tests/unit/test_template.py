"""template.yaml as data: the alarms reach the topic and watch the right metrics, and the policy stays least privilege.

`load_template` reads the short tags as their long forms: `!Ref X` is {"Ref": "X"}, `!Sub s` is {"Fn::Sub": s},
`!FindInMap [...]` is {"Fn::FindInMap": [...]}.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import botocore
import botocore.session
import pytest

from acme_renewer.inventory.table import DUE_INDEX, EXPIRY_INDEX
from acme_renewer.settings import CA_ALIASES, Settings
from tests.stack.handler import emf_documents
from tests.stack.table import REPO_ROOT, create_table_request, load_template, table_properties

ALARM_TYPE = "AWS::CloudWatch::Alarm"
FUNCTIONS = ("RenewalFunction", "StreamFunction", "WorkerFunction")
# The only actions allowed on Resource "*": reads that have no resource type to scope them to.
UNSCOPABLE_READS = {"route53:ListHostedZones", "acm:ListCertificates"}
PACKAGE = REPO_ROOT / "layers" / "acme_renewer" / "acme_renewer"
# Actions that no boto3 call names, granted because another call needs them: tags given on create or import.
IMPLIED_BY = {
    "secretsmanager:TagResource": "create_secret",  # CreateSecret with Tags
    "acm:AddTagsToCertificate": "import_certificate",  # ImportCertificate with Tags
    "kms:GenerateDataKey": "create_secret",  # Secrets Manager uses the key on the caller's behalf
    "kms:Decrypt": "get_secret_value",
    # SendMessage grants SendMessageBatch, which has no action of its own
    # (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-batch-api-actions.html).
    "sqs:SendMessage": "send_message_batch",
}
# The services the functions call, by IAM prefix (boto3 names them the same).
SERVICES_CALLED = ("dynamodb", "route53", "acm", "secretsmanager", "events", "lambda", "sts", "sqs")
# The IAM action of an API whose name differs.
ACTION_OF = {"lambda:Invoke": "lambda:InvokeFunction", "sqs:SendMessageBatch": "sqs:SendMessage"}
# Methods of other libraries that share an operation's name: socket.create_connection (endpoints.py).
NOT_AWS_CALLS = {"events:CreateConnection"}
SCHEDULE_SECONDS = {"Fn::FindInMap": ["Schedule", {"Ref": "ScheduleEveryHours"}, "Seconds"]}
WEEK_SECONDS = 7 * 24 * 3600


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def resources_of_type(template: dict[str, Any], type_: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == type_}


def alarm_metrics(properties: dict[str, Any]) -> list[dict[str, Any]]:
    """The metrics an alarm reads ({Namespace, MetricName, Dimensions}), whether plain or inside metric math."""
    if "MetricName" in properties:
        return [{key: properties.get(key, []) for key in ("Namespace", "MetricName", "Dimensions")}]
    return [
        {key: query["MetricStat"]["Metric"].get(key, []) for key in ("Namespace", "MetricName", "Dimensions")}
        for query in properties["Metrics"]
        if "MetricStat" in query
    ]


def custom_metric_alarms(template: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Alarm name -> its metrics, for every alarm that reads a metric of ours (not an AWS/* namespace)."""
    found = {}
    for name, alarm in resources_of_type(template, ALARM_TYPE).items():
        metrics = [m for m in alarm_metrics(alarm["Properties"]) if not str(m["Namespace"]).startswith("AWS/")]
        if metrics:
            found[name] = metrics
    return found


def function_environment(template: dict[str, Any], function: str) -> dict[str, Any]:
    """The variables a function gets: Globals, then its own (SAM merges the two maps)."""
    merged = dict(template["Globals"]["Function"]["Environment"]["Variables"])
    own = template["Resources"][function]["Properties"].get("Environment", {}).get("Variables", {})
    return {**merged, **own}


def policy_statements(template: dict[str, Any]) -> list[dict[str, Any]]:
    """Every statement of both functions' inline policies; a conditional one (`!If [C, S, NoValue]`) as S."""
    statements = []
    for function in FUNCTIONS:
        for policy in template["Resources"][function]["Properties"]["Policies"]:
            if isinstance(policy, dict) and "Statement" in policy:
                statements.extend(unwrap_if(s) for s in policy["Statement"])
    return statements


def unwrap_if(statement: dict[str, Any]) -> dict[str, Any]:
    if "Fn::If" in statement:
        _, when_true, when_false = statement["Fn::If"]
        assert when_false == {"Ref": "AWS::NoValue"}, statement
        return {**when_true, "_condition": statement["Fn::If"][0]}
    return statement


def statements_granting(template: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
    return [s for s in policy_statements(template) if any(a.startswith(prefix) for a in as_list(s["Action"]))]


def boto3_method(action: str) -> str:
    """The boto3 method of an IAM action: `route53:ChangeResourceRecordSets` -> `change_resource_record_sets`."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", action.split(":", 1)[1]).lower()


def package_sources() -> str:
    return "\n".join(path.read_text() for path in sorted(Path(PACKAGE).rglob("*.py")))


def render_dashboard(template: dict[str, Any], stack_name: str = "acme-renewer") -> dict[str, Any]:
    """The dashboard body as the stack `stack_name` would render it: parameters at their defaults,
    `${Resource.Attr}` as the resource's logical id (so `${ExpiryAlarm.Arn}` reads `ExpiryAlarm`)."""
    dashboard: dict[str, Any] = json.loads(
        Stack(template, stack_name).resolve(template["Resources"]["Dashboard"]["Properties"]["DashboardBody"])
    )
    return dashboard


NO_VALUE = object()


class Stack:
    """The template's values as CloudFormation resolves them in one stack: `Ref` of a parameter is its value
    (given, else its default), of a pseudo parameter the stack's; a resource's `Ref`, `Fn::GetAtt` or `${A.B}` is
    its logical id; conditions, `Fn::If`, `Fn::Sub` (both forms), `Fn::Join` and `Fn::FindInMap` are evaluated
    (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/intrinsic-function-reference.html)."""

    def __init__(self, template: dict[str, Any], name: str, **parameters: str) -> None:
        self.template = template
        self.values: dict[str, Any] = {
            key: parameters.get(key, spec.get("Default", "")) for key, spec in template["Parameters"].items()
        }
        for key, spec in template["Parameters"].items():
            if spec["Type"] == "CommaDelimitedList":
                self.values[key] = [v for v in str(self.values[key]).split(",") if v]
        self.values |= {
            "AWS::StackName": name,
            "AWS::Region": "us-east-1",
            "AWS::AccountId": "123456789012",
            "AWS::Partition": "aws",
        }

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.template["Conditions"][name]))

    def resolve(self, node: Any) -> Any:
        """`node` resolved; what resolves to `AWS::NoValue` is left out of its list or mapping."""
        if isinstance(node, list):
            return [item for item in (self.resolve(item) for item in node) if item is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) != 1:
            resolved = {key: self.resolve(value) for key, value in node.items()}
            return {key: value for key, value in resolved.items() if value is not NO_VALUE}
        ((function, argument),) = node.items()
        if function == "Ref":
            return NO_VALUE if argument == "AWS::NoValue" else self.values.get(argument, argument)
        if function == "Condition":
            return self.condition(argument)
        if function == "Fn::GetAtt":
            return argument[0]
        if function == "Fn::If":
            condition, when_true, when_false = argument
            return self.resolve(when_true if self.condition(condition) else when_false)
        if function == "Fn::Equals":
            left, right = self.resolve(argument)
            return left == right
        if function == "Fn::Not":
            return not self.resolve(argument[0])
        if function == "Fn::And":
            return all(self.resolve(argument))
        if function == "Fn::Or":
            return any(self.resolve(argument))
        if function == "Fn::Join":
            separator, items = argument
            return separator.join(self.resolve(items))
        if function == "Fn::FindInMap":
            table, key, field = self.resolve(argument)
            return self.template["Mappings"][table][key][field]
        if function == "Fn::Sub":
            text, variables = (argument, {}) if isinstance(argument, str) else argument
            variables = {key: self.resolve(value) for key, value in variables.items()}

            def substitute(match: re.Match[str]) -> str:
                name = match.group(1)
                if name in variables:
                    return str(variables[name])
                return str(self.values[name]) if name in self.values else name.split(".")[0]

            return re.sub(r"\$\{([^}!]+)\}", substitute, text)
        return {function: self.resolve(argument)}

    def environment(self, function: str) -> dict[str, str]:
        """The function's variables as Lambda sets them (strings)."""
        return {key: str(self.resolve(v)) for key, v in function_environment(self.template, function).items()}

    def resources(self) -> dict[str, dict[str, Any]]:
        """The resources this stack creates (their conditions hold), resolved."""
        return {
            name: self.resolve(resource)
            for name, resource in self.template["Resources"].items()
            if "Condition" not in resource or self.condition(resource["Condition"])
        }


def graphed_metrics(dashboard: dict[str, Any]) -> set[tuple[str, str, tuple[tuple[str, str], ...]]]:
    """(namespace, metric name, sorted dimension pairs) of every metric row in the dashboard's graphs."""
    graphed = set()
    for widget in dashboard["widgets"]:
        for row in widget["properties"].get("metrics", []):
            namespace, metric, *dimensions = [part for part in row if isinstance(part, str)]
            graphed.add((namespace, metric, tuple(sorted(zip(dimensions[::2], dimensions[1::2], strict=True)))))
    return graphed


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_every_alarm_notifies_the_topic_on_alarm_and_on_ok(template: dict[str, Any]) -> None:
    alarms = resources_of_type(template, ALARM_TYPE)
    assert len(alarms) >= 8
    for name, alarm in alarms.items():
        properties = alarm["Properties"]
        assert {"Ref": "AlarmTopic"} in properties.get("AlarmActions", []), name
        assert {"Ref": "AlarmTopic"} in properties.get("OKActions", []), name
        assert properties.get("AlarmDescription"), name


def test_cloudwatch_may_use_the_topic_key(template: dict[str, Any]) -> None:
    """An alarm cannot publish to a topic under the AWS managed key alias/aws/sns: its policy never lets CloudWatch."""
    key_ref = template["Resources"]["AlarmTopic"]["Properties"]["KmsMasterKeyId"]
    assert key_ref == {"Ref": "AlarmTopicKey"}
    statements = template["Resources"]["AlarmTopicKey"]["Properties"]["KeyPolicy"]["Statement"]
    granted = {
        action
        for s in statements
        if s["Effect"] == "Allow" and s.get("Principal", {}).get("Service") == "cloudwatch.amazonaws.com"
        for action in as_list(s["Action"])
    }
    assert {"kms:Decrypt", "kms:GenerateDataKey*"} <= granted


def test_the_email_subscription_exists_only_with_an_address(template: dict[str, Any]) -> None:
    subscription = template["Resources"]["AlarmEmailSubscription"]
    assert subscription["Condition"] == "HasAlarmEmail"
    assert template["Conditions"]["HasAlarmEmail"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]}
    assert template["Parameters"]["AlarmEmail"]["Default"] == ""


def test_the_dead_mans_switch_breaches_on_silence_over_two_schedule_periods(template: dict[str, Any]) -> None:
    alarm = template["Resources"]["DeadMansSwitchAlarm"]["Properties"]
    assert alarm["TreatMissingData"] == "breaching"
    assert alarm["Period"] == SCHEDULE_SECONDS
    assert alarm["EvaluationPeriods"] == alarm["DatapointsToAlarm"] == 2
    # Every scheduled run publishes ManagedCertificates once, so the sample count counts runs.
    assert alarm["Statistic"] == "SampleCount"
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("LessThanThreshold", 1)
    longest = max(row["Seconds"] for row in template["Mappings"]["Schedule"].values())
    # CloudWatch caps period x evaluation periods at 7 days for periods of an hour or more.
    assert longest * alarm["EvaluationPeriods"] <= WEEK_SECONDS


def test_schedule_and_alarm_periods_come_from_one_table(template: dict[str, Any]) -> None:
    parameter = template["Parameters"]["ScheduleEveryHours"]
    table = template["Mappings"]["Schedule"]
    assert sorted(parameter["AllowedValues"], key=int) == sorted(table, key=int)
    assert parameter["Default"] in table
    for hours, row in table.items():
        rate = re.fullmatch(r"rate\((\d+) (hours?)\)", row["Expression"])
        assert rate and int(rate[1]) == int(hours) and rate[2] == ("hour" if hours == "1" else "hours"), row
        assert row["Seconds"] == int(hours) * 3600, row
    schedule = template["Resources"]["RenewalFunction"]["Properties"]["Events"]["RenewalSchedule"]["Properties"]
    assert schedule["ScheduleExpression"] == {
        "Fn::FindInMap": ["Schedule", {"Ref": "ScheduleEveryHours"}, "Expression"]
    }
    for name in ("ExpiryAlarm", "UnmanagedExpiringAlarm", "StaleEndpointsAlarm"):
        assert template["Resources"][name]["Properties"]["Period"] == SCHEDULE_SECONDS, name


def test_custom_metric_alarms_read_the_functions_namespace_and_service(template: dict[str, Any]) -> None:
    globals_env = template["Globals"]["Function"]["Environment"]["Variables"]
    assert globals_env["POWERTOOLS_METRICS_NAMESPACE"] == {"Ref": "MetricsNamespace"}
    service = globals_env["POWERTOOLS_SERVICE_NAME"]
    alarms = custom_metric_alarms(template)
    assert len(alarms) >= 5
    for name, metrics in alarms.items():
        for metric in metrics:
            assert metric["Namespace"] == {"Ref": "MetricsNamespace"}, name
            assert metric["Dimensions"] == [{"Name": "service", "Value": service}], name


def test_the_expiry_alarm_and_the_functions_share_one_threshold(template: dict[str, Any]) -> None:
    threshold = {"Ref": "ExpiryAlarmThresholdDays"}
    assert template["Resources"]["ExpiryAlarm"]["Properties"]["Threshold"] == threshold
    for function in FUNCTIONS:
        environment = function_environment(template, function)
        assert environment["EXPIRY_WARNING_DAYS"] == threshold, function
        assert environment["EVENT_BUS_NAME"] == {"Ref": "EventBusName"}, function


@pytest.mark.parametrize(
    ("alarm", "metric", "quota", "default"),
    [
        ("AcmImportedCertificatesAlarm", "AcmImportedCertificates", "AcmImportedCertificatesQuota", 2500),
        ("AcmImportsAlarm", "AcmImportsLast365Days", "AcmImportsPerYearQuota", 5000),
    ],
)
def test_the_acm_quota_alarms_fire_at_80_percent_of_the_quota_the_stack_is_given(
    template: dict[str, Any], alarm: str, metric: str, quota: str, default: int
) -> None:
    """ACM's quotas per account and region (https://docs.aws.amazon.com/acm/latest/userguide/acm-limits.html), as
    parameters defaulting to AWS's; the alarm reads the region with the most (the metric without Region) daily."""
    assert template["Parameters"][quota]["Default"] == default
    for given in (default, 40000):  # AWS's, and a raised quota
        properties = Stack(template, "acme-renewer", **{quota: str(given)}).resolve(
            template["Resources"][alarm]["Properties"]
        )
        (read,) = [q for q in properties["Metrics"] if "MetricStat" in q]
        (expression,) = [q for q in properties["Metrics"] if "Expression" in q]
        assert read["MetricStat"]["Metric"]["MetricName"] == metric and not read["ReturnData"]
        assert (read["MetricStat"]["Period"], read["MetricStat"]["Stat"]) == (86400, "Maximum")
        assert properties["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"

        at = given * 8 // 10
        percent = [
            eval(expression["Expression"], {"__builtins__": {}}, {read["Id"]: value}) for value in (at - 1, at)
        ]  # the expression is "100 * <id> / <quota>": arithmetic only
        assert percent[0] < properties["Threshold"] <= percent[1], (alarm, given)


def test_challenge_records_are_limited_to_acme_challenge_txt(template: dict[str, Any]) -> None:
    statements = [s for s in policy_statements(template) if "route53:ChangeResourceRecordSets" in as_list(s["Action"])]
    assert statements
    for statement in statements:
        condition = statement["Condition"]
        assert condition["ForAllValues:StringEquals"]["route53:ChangeResourceRecordSetsRecordTypes"] == ["TXT"]
        assert condition["ForAllValues:StringLike"]["route53:ChangeResourceRecordSetsNormalizedRecordNames"] == [
            "_acme-challenge.*"
        ]


def test_only_unscopable_reads_have_a_wildcard_resource(template: dict[str, Any]) -> None:
    for statement in policy_statements(template):
        actions = as_list(statement["Action"])
        assert not [a for a in actions if "*" in a], statement["Sid"]
        if "*" in as_list(statement["Resource"]):
            assert set(actions) <= UNSCOPABLE_READS, statement["Sid"]


def test_events_go_only_to_the_configured_bus(template: dict[str, Any]) -> None:
    statements = [s for s in policy_statements(template) if "events:PutEvents" in as_list(s["Action"])]
    assert statements
    for statement in statements:
        assert statement["Resource"] == {
            "Fn::Sub": "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/${EventBusName}"
        }


def test_every_function_gets_the_same_renewer_policy(template: dict[str, Any]) -> None:
    renewal, stream, worker = (template["Resources"][f]["Properties"]["Policies"][0] for f in FUNCTIONS)
    assert renewal == stream == worker
    sids = {unwrap_if(s)["Sid"] for s in renewal["Statement"]}
    assert {"CertificatesTable", "AcmListForDriftReport", "CertificateEvents"} <= sids


def test_the_dashboard_is_json_and_shows_every_alarm_and_alarmed_metric(template: dict[str, Any]) -> None:
    dashboard = render_dashboard(template)
    shown_alarms = {a for w in dashboard["widgets"] for a in w["properties"].get("alarms", [])}
    assert shown_alarms == set(resources_of_type(template, ALARM_TYPE))
    namespace = template["Parameters"]["MetricsNamespace"]["Default"]
    graphed = {(ns, metric) for ns, metric, _ in graphed_metrics(dashboard)}
    for name, metrics in custom_metric_alarms(template).items():
        for metric in metrics:
            assert (namespace, metric["MetricName"]) in graphed, name


def test_challenge_changes_are_exactly_the_actions_the_adapter_sends(template: dict[str, Any]) -> None:
    statements = statements_granting(template, "route53:ChangeResourceRecordSets")
    assert statements
    # The Route53 adapter sends these actions, and the policy allows no others.
    sent = set(re.findall(r'"Action": "([A-Z]+)"', (PACKAGE / "dns" / "route53.py").read_text()))
    assert sent == {"CREATE", "UPSERT", "DELETE"}
    for statement in statements:
        allowed = statement["Condition"]["ForAllValues:StringEquals"]["route53:ChangeResourceRecordSetsActions"]
        assert set(allowed) == sent


def test_write_actions_never_have_a_wildcard_resource(template: dict[str, Any]) -> None:
    for statement in policy_statements(template):
        actions = as_list(statement["Action"])
        writes = [a for a in actions if not re.match(r"^[a-z0-9]+:(List|Get|Describe)", a)]
        if writes:
            resources = as_list(statement["Resource"])
            assert "*" not in resources, statement["Sid"]
            assert all(isinstance(r, dict) for r in resources), statement["Sid"]  # built from the stack's ARNs


def test_secrets_are_reachable_only_under_the_prefix(template: dict[str, Any]) -> None:
    statements = statements_granting(template, "secretsmanager:")
    assert statements
    prefix = template["Globals"]["Function"]["Environment"]["Variables"]["SECRET_PREFIX"]
    secret_arn = "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:${Prefix}"
    deletes = [s for s in statements if "secretsmanager:DeleteSecret" in s["Action"]]
    for statement in statements:
        # The very prefix the functions get, whether given or derived from the stack name.
        if statement in deletes:
            # Deleting only the legacy `.pending` secrets (stores/secrets.py), never a certificate's own.
            assert set(statement["Action"]) == {"secretsmanager:DeleteSecret"}
            assert statement["Resource"] == {"Fn::Sub": [f"{secret_arn}*.pending-??????", {"Prefix": prefix}]}
            continue
        assert statement["Resource"] == {"Fn::Sub": [f"{secret_arn}*", {"Prefix": prefix}]}
        assert set(statement["Action"]) == {
            "secretsmanager:CreateSecret",
            "secretsmanager:PutSecretValue",
            "secretsmanager:GetSecretValue",
            "secretsmanager:RestoreSecret",
            "secretsmanager:TagResource",
            "secretsmanager:DescribeSecret",
            "secretsmanager:UpdateSecretVersionStage",
            "secretsmanager:ReplicateSecretToRegions",
            "secretsmanager:RemoveRegionsFromReplication",
        }
    assert deletes


def test_acm_may_import_and_tag_certificates_of_this_account_only(template: dict[str, Any]) -> None:
    writes = [s for s in statements_granting(template, "acm:") if "acm:ImportCertificate" in s["Action"]]
    assert writes
    for statement in writes:
        assert set(statement["Action"]) == {"acm:ImportCertificate", "acm:AddTagsToCertificate"}
        assert statement["Resource"] == {"Fn::Sub": "arn:${AWS::Partition}:acm:*:${AWS::AccountId}:certificate/*"}


def test_acm_certificates_are_described_in_this_account_only(template: dict[str, Any]) -> None:
    """DescribeCertificate tells what a re-import would change, and whether a superseded certificate is in use."""
    statements = [s for s in statements_granting(template, "acm:") if "acm:DescribeCertificate" in s["Action"]]
    assert [s["Action"] for s in statements] == [["acm:DescribeCertificate"]] * len(FUNCTIONS)
    for statement in statements:
        assert statement["Resource"] == {"Fn::Sub": "arn:${AWS::Partition}:acm:*:${AWS::AccountId}:certificate/*"}


def test_every_acm_call_of_the_code_is_granted(template: dict[str, Any]) -> None:
    """The other way round for ACM: every client method the package calls on ACM has its action granted."""
    granted = {a for s in statements_granting(template, "acm:") for a in as_list(s["Action"])}
    called = set(re.findall(r"client\.(import_certificate|describe_certificate|list_certificates|get_certificate)\(",
                            package_sources())) | {"list_certificates"}  # fmt: skip
    assert {f"acm:{''.join(part.title() for part in name.split('_'))}" for name in called} <= granted


def test_every_granted_action_is_one_the_code_calls(template: dict[str, Any]) -> None:
    """Least privilege the other way round: a permission nobody calls any more is taken away."""
    sources = package_sources()
    for statement in policy_statements(template):
        for action in as_list(statement["Action"]):
            method = IMPLIED_BY.get(action, boto3_method(action))
            assert re.search(rf"""\.{method}\(|get_paginator\(["']{method}["']\)""", sources), (
                f"{action} ({statement['Sid']}) is granted but the package never calls {method}"
            )


def test_the_functions_write_only_status_items_and_read_requests(template: dict[str, Any]) -> None:
    """The renewer puts only `<id>#status` items (dynamodb:LeadingKeys, fine-grained access control:
    https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/specifying-conditions.html), so an
    operator's request is never replaced by the function."""
    puts = statements_granting(template, "dynamodb:PutItem")
    assert puts  # one per function: they share the policy
    for put in puts:
        assert as_list(put["Action"]) == ["dynamodb:PutItem"]
        assert put["Condition"] == {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["*#status"]}}


def test_every_call_the_functions_make_is_granted(template: dict[str, Any]) -> None:
    """The other way round: moto evaluates no policy, so a call the code makes without its permission fails only on
    AWS. Every operation of these services that the functions' code (not the CLI's, which runs with the operator's
    credentials) calls must be granted."""
    granted = {action for statement in policy_statements(template) for action in as_list(statement["Action"])}
    sources = "\n".join(
        path.read_text() for path in sorted(Path(PACKAGE).rglob("*.py")) if "cli" not in path.relative_to(PACKAGE).parts
    )
    session = botocore.session.get_session()
    called = set()
    for prefix in SERVICES_CALLED:
        for operation in session.get_service_model(prefix).operation_names:
            method = botocore.xform_name(operation)
            if re.search(rf"""\.{method}\(|get_paginator\(["']{method}["']\)""", sources):
                called.add(ACTION_OF.get(f"{prefix}:{operation}", f"{prefix}:{operation}"))
    assert "secretsmanager:RestoreSecret" in called
    assert called - NOT_AWS_CALLS <= granted, sorted(called - NOT_AWS_CALLS - granted)


def test_a_failed_run_is_retried_by_the_next_tick_not_by_lambda(template: dict[str, Any]) -> None:
    """Lambda retries a failed asynchronous invocation twice unless EventInvokeConfig says MaximumRetryAttempts 0
    (https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-error-handling.html,
    https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-configuring.html; SAM's EventInvokeConfig:
    https://docs.aws.amazon.com/serverless-application-model/latest/developerguide/sam-property-function-eventinvokeconfiguration.html).
    EventBridge Scheduler invokes asynchronously."""
    properties = template["Resources"]["RenewalFunction"]["Properties"]
    assert properties["EventInvokeConfig"] == {"MaximumRetryAttempts": 0}
    schedules = [e["Properties"] for e in properties["Events"].values() if e["Type"] == "ScheduleV2"]
    assert len(schedules) == 2
    for schedule in schedules:
        assert schedule["RetryPolicy"]["MaximumRetryAttempts"] == 0  # nor does Scheduler retry


def test_a_secrets_key_of_your_own_is_usable_only_through_secrets_manager(template: dict[str, Any]) -> None:
    parameter = template["Parameters"]["SecretsKmsKeyArn"]
    assert parameter["Default"] == ""
    assert re.match(
        parameter["AllowedPattern"], "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    )
    assert not re.match(parameter["AllowedPattern"], "arn:aws:kms:eu-west-1:123456789012:alias/mine")
    assert template["Conditions"]["HasSecretsKmsKey"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "SecretsKmsKeyArn"}, ""]}]
    }
    statements = statements_granting(template, "kms:")
    assert statements
    for statement in statements:
        assert statement["_condition"] == "HasSecretsKmsKey"  # no key of your own, no KMS permission at all
        assert set(statement["Action"]) <= {"kms:GenerateDataKey", "kms:Decrypt"}
        assert statement["Resource"] == {"Ref": "SecretsKmsKeyArn"}
        condition = statement["Condition"]
        assert condition["StringEquals"]["kms:ViaService"] == {"Fn::Sub": "secretsmanager.${AWS::Region}.amazonaws.com"}
        secret_arns, variables = condition["StringLike"]["kms:EncryptionContext:SecretARN"]["Fn::Sub"]
        assert secret_arns.endswith(":secret:${Prefix}*")
        assert variables == {"Prefix": function_environment(template, FUNCTIONS[0])["SECRET_PREFIX"]}
    for function in FUNCTIONS:
        assert function_environment(template, function)["SECRETS_KMS_KEY_ID"] == {"Ref": "SecretsKmsKeyArn"}


def test_the_table_is_protected_and_recoverable(template: dict[str, Any]) -> None:
    table = template["Resources"]["CertificatesTable"]
    assert table["DeletionPolicy"] == table["UpdateReplacePolicy"] == "Retain"
    properties = table["Properties"]
    assert properties["DeletionProtectionEnabled"] is True
    assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert properties["SSESpecification"] == {"SSEEnabled": True}
    # The local stack builds the table from these properties, so they stay literal.
    request = create_table_request(table_properties(template), "certificates")
    assert request["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]


def test_the_regular_schedule_reads_what_is_due_and_a_daily_one_reads_everything(template: dict[str, Any]) -> None:
    events = template["Resources"]["RenewalFunction"]["Properties"]["Events"]
    scans = sorted(
        (json.loads(event["Properties"]["Input"])["scan"], event["Properties"]["ScheduleExpression"])
        for event in events.values()
        if event["Type"] == "ScheduleV2"
    )
    assert [scan for scan, _ in scans] == ["due", "full"]
    assert dict(scans)["full"] == "rate(1 day)"


def test_no_function_may_invoke_a_function(template: dict[str, Any]) -> None:
    """No hand-on chain: the planner queues batches, the workers take them; no role grants lambda:* at all."""
    for function in FUNCTIONS:
        assert "RecursiveLoop" not in template["Resources"][function]["Properties"]
    assert not statements_granting(template, "lambda:")
    assert not re.search(r"\.invoke\(|client\(\s*[\"']lambda[\"']", package_sources())


def queue_properties(template: dict[str, Any], name: str) -> dict[str, Any]:
    queue = template["Resources"][name]
    assert queue["Type"] == "AWS::SQS::Queue"
    properties: dict[str, Any] = queue["Properties"]
    return properties


def test_the_worker_takes_one_batch_at_a_time_from_the_queue_with_bounded_concurrency(
    template: dict[str, Any],
) -> None:
    """The event source mapping: one message (one batch) per invocation, partial batch responses, and at most
    WorkerMaxConcurrency workers (ScalingConfig's MaximumConcurrency is 2 to 1000:
    https://docs.aws.amazon.com/lambda/latest/dg/API_ScalingConfig.html)."""
    worker = template["Resources"]["WorkerFunction"]["Properties"]
    (source,) = [e["Properties"] for e in worker["Events"].values() if e["Type"] == "SQS"]
    assert source["Queue"] == {"Fn::GetAtt": ["RenewalQueue", "Arn"]}
    assert source["BatchSize"] == 1
    assert source["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert source["ScalingConfig"] == {"MaximumConcurrency": {"Ref": "WorkerMaxConcurrency"}}
    parameter = template["Parameters"]["WorkerMaxConcurrency"]
    limits = {key: parameter[key] for key in ("Type", "Default", "MinValue", "MaxValue")}
    assert limits == {"Type": "Number", "Default": 5, "MinValue": 2, "MaxValue": 1000}
    assert worker["CodeUri"] == "functions/worker/"
    assert (REPO_ROOT / "functions" / "worker" / "app.py").is_file()


def test_the_queue_hides_a_message_for_six_worker_timeouts_and_pages_through_its_dead_letter_queue(
    template: dict[str, Any],
) -> None:
    """Lambda asks for a visibility timeout of at least six times the function's timeout for an SQS event source
    (https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-configure.html); the worker's timeout is a
    parameter, so the queue's must hold for its largest value. A message that failed maxReceiveCount runs goes
    to the dead-letter queue, and its alarm reaches the topic."""
    queue = queue_properties(template, "RenewalQueue")
    timeout = template["Resources"]["WorkerFunction"]["Properties"]["Timeout"]
    assert timeout == {"Ref": "FunctionTimeoutSeconds"}
    assert queue["VisibilityTimeout"] >= 6 * template["Parameters"]["FunctionTimeoutSeconds"]["MaxValue"]
    assert queue["SqsManagedSseEnabled"] is True
    redrive = queue["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["RenewalDeadLetterQueue", "Arn"]}
    assert 1 < redrive["maxReceiveCount"] <= 5
    dead = queue_properties(template, "RenewalDeadLetterQueue")
    assert dead["SqsManagedSseEnabled"] is True
    assert dead["MessageRetentionPeriod"] > queue["MessageRetentionPeriod"]  # a dead letter outlives the queue's
    alarm = template["Resources"]["RenewalDeadLetterAlarm"]["Properties"]
    (dimension,) = alarm["Dimensions"]
    assert dimension == {"Name": "QueueName", "Value": {"Fn::GetAtt": ["RenewalDeadLetterQueue", "QueueName"]}}
    assert alarm["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanThreshold", 0)
    assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}]


def test_only_the_planner_may_send_to_the_queue_and_only_to_it(template: dict[str, Any]) -> None:
    renewal = template["Resources"]["RenewalFunction"]["Properties"]
    assert renewal["Environment"]["Variables"]["RENEWAL_QUEUE_URL"] == {"Ref": "RenewalQueue"}
    sends = [
        (function, statement)
        for function in FUNCTIONS
        for policy in template["Resources"][function]["Properties"]["Policies"]
        if isinstance(policy, dict) and "Statement" in policy
        for statement in policy["Statement"]
        if any(str(a).startswith("sqs:") for a in as_list(statement.get("Action", [])))
    ]
    # The worker may only count the messages in flight (its share of the budgets), never send.
    assert [(f, s["Action"], s["Resource"]) for f, s in sends] == [
        ("RenewalFunction", ["sqs:SendMessage"], {"Fn::GetAtt": ["RenewalQueue", "Arn"]}),
        ("WorkerFunction", ["sqs:GetQueueAttributes"], {"Fn::GetAtt": ["RenewalQueue", "Arn"]}),
    ]
    worker = template["Resources"]["WorkerFunction"]["Properties"]
    assert worker["Environment"]["Variables"]["RENEWAL_QUEUE_URL"] == {"Ref": "RenewalQueue"}


def test_the_indexes_are_keyed_as_the_code_queries_them(template: dict[str, Any]) -> None:
    properties = template["Resources"]["CertificatesTable"]["Properties"]
    indexes = {index["IndexName"]: index for index in properties["GlobalSecondaryIndexes"]}
    keys = {name: [k["AttributeName"] for k in index["KeySchema"]] for name, index in indexes.items()}
    assert keys == {DUE_INDEX: ["schedule", "due_at"], EXPIRY_INDEX: ["schedule", "not_after"]}
    assert indexes[DUE_INDEX]["Projection"]["ProjectionType"] == "ALL"  # the run works from the index's items


def test_the_ca_parameters_accept_what_the_settings_accept(template: dict[str, Any]) -> None:
    directory = template["Parameters"]["AcmeDirectoryUrl"]["AllowedPattern"]
    for alias in CA_ALIASES:
        assert re.match(directory, alias), alias
    assert re.match(directory, template["Parameters"]["AcmeDirectoryUrl"]["Default"])
    assert not re.match(directory, "http://ca.example/directory")
    assert not re.match(directory, "zerossl-staging")
    eab = template["Parameters"]["AcmeEabSecret"]
    assert eab["Default"] == "" and re.match(eab["AllowedPattern"], "acme-renewer/eab/zerossl")
    environment = function_environment(template, "RenewalFunction")
    assert environment["ACME_EAB_SECRET"] == {"Ref": "AcmeEabSecret"}


def test_roles_in_other_accounts_are_assumable_only_when_listed(template: dict[str, Any]) -> None:
    statements = statements_granting(template, "sts:")
    assert len(statements) == 2 * len(FUNCTIONS)  # hosted zones, ACM
    by_parameter = {"ZoneRoleArns": "HasZoneRoleArns", "AcmRoleArns": "HasAcmRoleArns"}
    for statement in statements:
        assert statement["Action"] == ["sts:AssumeRole"]
        parameter = statement["Resource"]["Ref"]
        assert statement["_condition"] == by_parameter[parameter]
    assert {s["Resource"]["Ref"] for s in statements} == set(by_parameter)
    parameters = template["Parameters"]
    for parameter, condition in by_parameter.items():
        assert template["Conditions"][condition] == {
            "Fn::Not": [{"Fn::Equals": [{"Fn::Join": ["", {"Ref": parameter}]}, ""]}]
        }
        assert parameters[parameter]["Type"] == "CommaDelimitedList" and parameters[parameter]["Default"] == ""
    assert parameters["ZoneRoles"]["Default"] == ""
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["ZONE_ROLES"] == {"Ref": "ZoneRoles"}


def assumable_roles(stack: Stack) -> list[list[str]]:
    """The resources of every sts:AssumeRole statement of the renewal function, as the stack resolves them."""
    policies = stack.resources()["RenewalFunction"]["Properties"]["Policies"]
    statements = [s for p in policies if isinstance(p, dict) and "Statement" in p for s in p["Statement"]]
    return [as_list(s["Resource"]) for s in statements if "sts:AssumeRole" in as_list(s["Action"])]


def test_acm_roles_are_assumable_only_when_given_and_the_function_knows_them(template: dict[str, Any]) -> None:
    """Without AcmRoleArns (and ZoneRoleArns) the functions may assume no role at all; with it, exactly those, and
    ACM_ROLE_ARNS tells the code the same list, so that an item naming another role is refused before trying."""
    assert assumable_roles(Stack(template, "acme-renewer")) == []
    assert Stack(template, "acme-renewer").environment("RenewalFunction")["ACM_ROLE_ARNS"] == ""
    roles = "arn:aws:iam::444455556666:role/acme-acm,arn:aws:iam::777788889999:role/acme-acm"
    given = Stack(template, "acme-renewer", AcmRoleArns=roles)
    assert assumable_roles(given) == [roles.split(",")]
    for function in FUNCTIONS:
        environment = given.environment(function)
        assert Settings.from_env({**environment, "AWS_REGION": "us-east-1"}).acm_role_arns == set(roles.split(","))


def schedule_inputs(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each ScheduleV2 event of the renewal function -> the JSON its Input sends."""
    events = template["Resources"]["RenewalFunction"]["Properties"]["Events"]
    return {name: json.loads(e["Properties"]["Input"]) for name, e in events.items() if e["Type"] == "ScheduleV2"}


@pytest.mark.parametrize(
    ("event_file", "schedule"), [("schedule.json", "RenewalSchedule"), ("schedule_full.json", "DailyFullScan")]
)
def test_the_sample_schedule_events_are_what_the_schedules_send(
    template: dict[str, Any], event_file: str, schedule: str
) -> None:
    """`sam local invoke -e events/<file>` and the tests run what Scheduler sends: the schedule's `Input`
    (https://docs.aws.amazon.com/serverless-application-model/latest/developerguide/sam-property-function-schedulev2.html)."""
    sent = json.loads((REPO_ROOT / "events" / event_file).read_text())
    assert sent == schedule_inputs(template)[schedule]


def test_every_schedule_has_its_sample_event(template: dict[str, Any]) -> None:
    samples = [json.loads(p.read_text()) for p in sorted((REPO_ROOT / "events").glob("schedule*.json"))]
    assert sorted(samples, key=json.dumps) == sorted(schedule_inputs(template).values(), key=json.dumps)


# --- Two stacks in one account; samconfig's environments; the guided deploy's questions; chat channels ----------

# Properties whose value must be unique in an account and region (CloudFormation fails the second stack's create).
UNIQUE_NAME_PROPERTIES = {
    "FunctionName", "LogGroupName", "ConfigurationName", "RoleName", "TopicName", "QueueName", "DashboardName",
    "AlarmName", "TableName", "ScheduleName", "AliasName",
}  # fmt: skip
CHAT_PARAMETERS = {
    "SlackWorkspaceId": "T012ABCDEFG",
    "SlackChannelId": "C0123ABCDEF",
    "TeamsTenantId": "1a2b3c4d-5e6f-1a2b-3c4d-1a2b3c4d5e6f",
    "TeamsTeamId": "0a1b2c3d-4e5f-1a2b-3c4d-0a1b2c3d4e5f",
    "TeamsChannelId": "19%3ab6ef35dc342d56ba5654e6fc6d25a071%40thread.tacv2",
}
SAMCONFIG = REPO_ROOT / "samconfig.toml"
LETS_ENCRYPT_STAGING = {"letsencrypt-staging", "https://acme-staging-v02.api.letsencrypt.org/directory"}
LETS_ENCRYPT_PRODUCTION = {"letsencrypt", "https://acme-v02.api.letsencrypt.org/directory"}
SECRET_ARN_PREFIX = "arn:aws:secretsmanager:us-east-1:123456789012:secret:"


def unique_names(resources: dict[str, Any]) -> set[str]:
    """The names the resources set on themselves (a reference to another resource's name is not one)."""
    found: set[str] = set()
    for resource in resources.values():
        properties = resource.get("Properties", {})
        found |= {v for k, v in properties.items() if k in UNIQUE_NAME_PROPERTIES and isinstance(v, str)}
        found |= {e["Properties"]["Name"] for e in properties.get("Events", {}).values() if "Name" in e["Properties"]}
    return found


def secret_patterns(stack: Stack) -> set[str]:
    """The secret names (glob patterns) the stack's policy grants, read from the resolved Secrets statements."""
    patterns = set()
    for function in FUNCTIONS:
        for policy in stack.resources()[function]["Properties"]["Policies"]:
            for statement in policy.get("Statement", []):
                if any(str(a).startswith("secretsmanager:") for a in as_list(statement.get("Action", []))):
                    (resource,) = as_list(statement["Resource"])
                    assert resource.startswith(SECRET_ARN_PREFIX), resource
                    patterns.add(resource.removeprefix(SECRET_ARN_PREFIX))
    return patterns


def settings_of(stack: Stack, function: str = "RenewalFunction") -> Settings:
    return Settings.from_env({**stack.environment(function), "TABLE_NAME": "certificates", "AWS_REGION": "us-east-1"})


def samconfig_environments() -> dict[str, dict[str, Any]]:
    """Environment -> {"stack_name": ..., "overrides": {parameter: value}} from samconfig.toml (a list of
    `Key=Value` strings, or one string as `sam deploy --guided` writes it)."""
    config = tomllib.loads(SAMCONFIG.read_text())
    environments = {}
    for name, commands in config.items():
        if not isinstance(commands, dict) or "deploy" not in commands:
            continue
        raw = commands["deploy"]["parameters"].get("parameter_overrides", [])
        pairs = raw if isinstance(raw, list) else shlex.split(raw)
        environments[name] = {
            "stack_name": commands["global"]["parameters"]["stack_name"],
            "overrides": dict(pair.split("=", 1) for pair in pairs),
        }
    return environments


@pytest.mark.parametrize("secret_prefix", ["", "shared/"])
def test_secret_prefix_is_the_stack_name_unless_given_and_policy_and_code_agree(
    template: dict[str, Any], secret_prefix: str
) -> None:
    stack = Stack(template, "acme-renewer-prod", SecretPrefix=secret_prefix)
    expected = secret_prefix or "acme-renewer-prod/"
    for function in FUNCTIONS:
        assert stack.environment(function)["SECRET_PREFIX"] == expected
    assert secret_patterns(stack) == {f"{expected}*", f"{expected}*.pending-??????"}
    # Every secret the code writes (certificates, the ACME account key) is one the policy grants.
    settings = settings_of(stack)
    for name in (settings.default_secret_name("www"), settings.account_secret_name):
        assert fnmatch.fnmatchcase(name, f"{expected}*"), name
    kms = Stack(template, "acme-renewer-prod", SecretPrefix=secret_prefix, SecretsKmsKeyArn="arn:aws:kms:x")
    (statement,) = [
        s
        for s in kms.resources()["RenewalFunction"]["Properties"]["Policies"][0]["Statement"]
        if isinstance(s, dict) and s.get("Sid") == "SecretsKmsKey"
    ]
    assert statement["Condition"]["StringLike"]["kms:EncryptionContext:SecretARN"] == f"{SECRET_ARN_PREFIX}{expected}*"
    assert stack.resolve(template["Outputs"]["SecretPrefix"]["Value"]) == expected


def test_two_stacks_in_one_account_share_no_secret_no_metric_and_no_name(template: dict[str, Any]) -> None:
    """Staging and production side by side, with every optional resource (chat channels) created."""
    staging, prod = (Stack(template, name, **CHAT_PARAMETERS) for name in ("acme-renewer-staging", "acme-renewer"))
    # Neither stack's policy reaches the other's secrets (acme-renewer/* must not match acme-renewer-staging/...).
    for one, other in ((staging, prod), (prod, staging)):
        others_secrets = [settings_of(other).default_secret_name("www"), settings_of(other).account_secret_name]
        for pattern in secret_patterns(one):
            assert not [name for name in others_secrets if fnmatch.fnmatchcase(name, pattern)], pattern
    # Their metrics differ by the service dimension, which is what the alarms and dashboard select on.
    services = {stack.environment(f)["POWERTOOLS_SERVICE_NAME"] for stack in (staging, prod) for f in FUNCTIONS}
    assert services == {"acme-renewer-staging", "acme-renewer"}
    # Names that must be unique in an account and region.
    staging_names, prod_names = unique_names(staging.resources()), unique_names(prod.resources())
    assert {"acme-renewer-staging-renewal", "acme-renewer-staging-alarms-slack"} <= staging_names
    assert staging_names.isdisjoint(prod_names), staging_names & prod_names
    # Schedules are named by CloudFormation, so they cannot collide either.
    events = template["Resources"]["RenewalFunction"]["Properties"]["Events"].values()
    assert all(e["Properties"]["OmitName"] is True for e in events if e["Type"] == "ScheduleV2")


@pytest.mark.parametrize("stack_name", ["acme-renewer", "acme-renewer-prod"])
def test_alarms_and_dashboard_read_the_metrics_the_functions_emit(template: dict[str, Any], stack_name: str) -> None:
    """The namespace and `service` the code puts on its metrics (the handlers' own Powertools Metrics, fed the
    stack's environment) are what every custom-metric alarm and dashboard graph of that stack select."""
    stack = Stack(template, stack_name)
    emitted = set()
    for function in FUNCTIONS:
        directory = "renewal" if function == "RenewalFunction" else "stream"
        environment = {**os.environ, **stack.environment(function), "TABLE_NAME": "t", "AWS_REGION": "us-east-1"}
        probe = (
            "from tests.stack.handler import load_function\n"
            f"metrics = load_function({directory!r}).metrics\n"
            "metrics.add_metric(name='Probe', unit='Count', value=1)\n"
            "metrics.flush_metrics()\n"
        )
        printed = subprocess.run(
            [sys.executable, "-c", probe], env=environment, cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout
        for document in emf_documents(printed):
            for directive in document["_aws"]["CloudWatchMetrics"]:
                dimensions = tuple((name, document[name]) for names in directive["Dimensions"] for name in names)
                emitted.add((directive["Namespace"], dimensions))
    assert emitted == {("AcmeRenewer", (("service", stack_name),))}
    (namespace, dimensions) = emitted.pop()

    for name, metrics in custom_metric_alarms(template).items():
        for metric in metrics:
            resolved = stack.resolve(metric)
            assert resolved["Namespace"] == namespace, name
            assert tuple((d["Name"], d["Value"]) for d in resolved["Dimensions"]) == dimensions, name
    custom_rows = [row for row in graphed_metrics(render_dashboard(template, stack_name)) if row[0] == namespace]
    assert custom_rows
    for _, metric, row_dimensions in custom_rows:
        assert row_dimensions == dimensions, metric


def test_samconfig_deploys_staging_by_default_and_production_with_prod(template: dict[str, Any]) -> None:
    environments = samconfig_environments()
    assert set(environments) == {"default", "prod"}  # [staging] is folded into [default]
    default, prod = environments["default"], environments["prod"]
    assert default["overrides"]["AcmeDirectoryUrl"] in LETS_ENCRYPT_STAGING
    assert prod["overrides"]["AcmeDirectoryUrl"] in LETS_ENCRYPT_PRODUCTION
    assert default["stack_name"] != prod["stack_name"]
    stacks = {}
    for name, environment in environments.items():
        for parameter, value in environment["overrides"].items():
            spec = template["Parameters"][parameter]  # only parameters the template has
            if "AllowedPattern" in spec:
                assert re.fullmatch(spec["AllowedPattern"], value), (name, parameter, value)
            if "AllowedValues" in spec:
                assert value in [str(v) for v in spec["AllowedValues"]], (name, parameter, value)
        stacks[name] = Stack(template, environment["stack_name"], **environment["overrides"])
    # Production keeps the prefix its secrets already live under; the two environments' secrets stay apart.
    assert stacks["prod"].environment("RenewalFunction")["SECRET_PREFIX"] == "acme-renewer/"
    assert secret_patterns(stacks["default"]).isdisjoint(secret_patterns(stacks["prod"]))
    for pattern in secret_patterns(stacks["default"]):
        assert not fnmatch.fnmatchcase(settings_of(stacks["prod"]).default_secret_name("www"), pattern)
    assert unique_names(stacks["default"].resources()).isdisjoint(unique_names(stacks["prod"].resources()))


def test_every_question_of_the_guided_deploy_says_what_to_type(template: dict[str, Any]) -> None:
    """`sam deploy --guided` asks every parameter; the console shows each Description and the Metadata's groups
    (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-cloudformation-interface.html)."""
    parameters = template["Parameters"]
    for name, spec in parameters.items():
        description = " ".join(spec["Description"].split())
        assert "e.g." in description, f"{name}: no example"
        if spec.get("Default") == "":
            assert "Empty" in description, f"{name}: does not say what empty means"
    groups = template["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
    grouped = [p for group in groups for p in group["Parameters"]]
    assert sorted(grouped) == sorted(parameters)  # each exactly once
    assert "notify nobody" in " ".join(parameters["AlarmEmail"]["Description"].split())


@pytest.mark.parametrize(
    ("given", "created"),
    [
        ({}, set()),
        ({"SlackWorkspaceId": "T012ABCDEFG"}, set()),  # a workspace without a channel is no channel
        ({k: CHAT_PARAMETERS[k] for k in ("SlackWorkspaceId", "SlackChannelId")}, {"Slack"}),
        ({k: CHAT_PARAMETERS[k] for k in ("TeamsTenantId", "TeamsTeamId")}, set()),
        ({k: CHAT_PARAMETERS[k] for k in ("TeamsTenantId", "TeamsTeamId", "TeamsChannelId")}, {"Teams"}),
        (CHAT_PARAMETERS, {"Slack", "Teams"}),
    ],
)
def test_chat_channels_exist_only_when_their_ids_are_given(
    template: dict[str, Any], given: dict[str, str], created: set[str]
) -> None:
    resources = Stack(template, "acme-renewer", **given).resources()
    kinds = {
        "AWS::Chatbot::SlackChannelConfiguration": "Slack",
        "AWS::Chatbot::MicrosoftTeamsChannelConfiguration": "Teams",
    }
    assert {kinds[r["Type"]] for r in resources.values() if r["Type"] in kinds} == created
    assert ("ChatbotChannelRole" in resources) == bool(created)
    for parameter, value in CHAT_PARAMETERS.items():
        assert re.fullmatch(template["Parameters"][parameter]["AllowedPattern"], value), parameter
        assert not re.fullmatch(template["Parameters"][parameter]["AllowedPattern"], "not an id!"), parameter


def test_chat_channels_get_the_alarm_topic_a_read_only_role_and_a_read_only_guardrail(
    template: dict[str, Any],
) -> None:
    resources = template["Resources"]
    channels = [r for r in resources.values() if r["Type"].startswith("AWS::Chatbot::")]
    assert len(channels) == 2
    for channel in channels:
        properties = channel["Properties"]
        assert properties["SnsTopicArns"] == [{"Ref": "AlarmTopic"}]
        assert properties["IamRoleArn"] == {"Fn::GetAtt": ["ChatbotChannelRole", "Arn"]}
        # Without guardrails Chatbot applies AdministratorAccess to whatever channel members ask for.
        assert properties["GuardrailPolicies"] == [
            {"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/CloudWatchReadOnlyAccess"}
        ]
        assert properties["UserRoleRequired"] is False
    role = resources["ChatbotChannelRole"]
    assert template["Conditions"]["HasChatChannel"] == {
        "Fn::Or": [{"Condition": "HasSlackChannel"}, {"Condition": "HasTeamsChannel"}]
    }
    properties = role["Properties"]
    assert role["Condition"] == "HasChatChannel"
    (trust,) = properties["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "chatbot.amazonaws.com"} and trust["Action"] == "sts:AssumeRole"
    assert "ManagedPolicyArns" not in properties
    statements = [s for policy in properties["Policies"] for s in policy["PolicyDocument"]["Statement"]]
    for statement in statements:
        actions = as_list(statement["Action"])
        assert all(re.fullmatch(r"cloudwatch:(Describe|Get)[A-Za-z]+", a) for a in actions), actions
        if "*" in as_list(statement["Resource"]):
            assert set(actions) <= {"cloudwatch:GetMetricData", "cloudwatch:GetMetricWidgetImage"}


def test_the_readme_parameter_table_lists_every_parameter(template: dict[str, Any]) -> None:
    section = (REPO_ROOT / "README.md").read_text().split("\n## Deploy to AWS\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    listed = {name for row in rows for name in re.findall(r"`([A-Za-z]+)`", row.split("|")[1])}
    assert set(template["Parameters"]) <= listed, set(template["Parameters"]) - listed
