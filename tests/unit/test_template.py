"""template.yaml as data: the alarms reach the topic and watch the right metrics, and the policy stays least privilege.

`load_template` reads the short tags as their long forms: `!Ref X` is {"Ref": "X"}, `!Sub s` is {"Fn::Sub": s},
`!FindInMap [...]` is {"Fn::FindInMap": [...]}.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import botocore
import botocore.session
import pytest

from acme_renewer.inventory.table import DUE_INDEX, EXPIRY_INDEX
from acme_renewer.report.handoff import Continuation
from acme_renewer.settings import CA_ALIASES
from tests.stack.table import REPO_ROOT, create_table_request, load_template, table_properties

ALARM_TYPE = "AWS::CloudWatch::Alarm"
FUNCTIONS = ("RenewalFunction", "StreamFunction")
# The only actions allowed on Resource "*": reads that have no resource type to scope them to.
UNSCOPABLE_READS = {"route53:ListHostedZones", "acm:ListCertificates"}
PACKAGE = REPO_ROOT / "layers" / "acme_renewer" / "acme_renewer"
# Actions that no boto3 call names, granted because another call needs them: tags given on create or import.
IMPLIED_BY = {
    "secretsmanager:TagResource": "create_secret",  # CreateSecret with Tags
    "acm:AddTagsToCertificate": "import_certificate",  # ImportCertificate with Tags
    "kms:GenerateDataKey": "create_secret",  # Secrets Manager uses the key on the caller's behalf
    "kms:Decrypt": "get_secret_value",
    "lambda:InvokeFunction": "invoke",  # the API is Invoke; the IAM action is InvokeFunction
}
# The services the functions call, by IAM prefix (boto3 names them the same).
SERVICES_CALLED = ("dynamodb", "route53", "acm", "secretsmanager", "events", "lambda", "sts")
# The IAM action of an API whose name differs.
ACTION_OF = {"lambda:Invoke": "lambda:InvokeFunction"}
# Methods of other libraries that share an operation's name: socket.create_connection (endpoints.py).
NOT_AWS_CALLS = {"events:CreateConnection"}
# Invocations in one request chain after which Lambda's recursive loop detection acts ("approximately").
LAMBDA_RECURSION_LIMIT = 16
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


def render_dashboard(template: dict[str, Any]) -> dict[str, Any]:
    """The dashboard body as the stack would render it: parameters at their defaults, `${Resource.Attr}` as the
    resource's logical id (so `${ExpiryAlarm.Arn}` reads `ExpiryAlarm`)."""
    parameters = template["Parameters"]

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        return str(parameters[name]["Default"]) if name in parameters else name.split(".")[0]

    body = template["Resources"]["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    dashboard: dict[str, Any] = json.loads(re.sub(r"\$\{([^}]+)\}", substitute, body))
    return dashboard


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


def test_both_functions_get_the_same_renewer_policy(template: dict[str, Any]) -> None:
    renewal, stream = (template["Resources"][f]["Properties"]["Policies"][0] for f in FUNCTIONS)
    assert renewal == stream
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


def test_challenge_changes_are_only_upserts_and_deletes(template: dict[str, Any]) -> None:
    statements = statements_granting(template, "route53:ChangeResourceRecordSets")
    assert statements
    for statement in statements:
        allowed = statement["Condition"]["ForAllValues:StringEquals"]["route53:ChangeResourceRecordSetsActions"]
        assert sorted(allowed) == ["DELETE", "UPSERT"]
    # ...because the Route53 adapter sends no other action.
    sent = set(re.findall(r'"Action": "([A-Z]+)"', (PACKAGE / "dns" / "route53.py").read_text()))
    assert sent == {"UPSERT", "DELETE"}


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
    for statement in statements:
        assert statement["Resource"] == {
            "Fn::Sub": "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:${SecretPrefix}*"
        }
        assert set(statement["Action"]) == {
            "secretsmanager:CreateSecret",
            "secretsmanager:PutSecretValue",
            "secretsmanager:GetSecretValue",
            "secretsmanager:RestoreSecret",
            "secretsmanager:TagResource",
        }


def test_acm_may_import_and_tag_certificates_of_this_account_only(template: dict[str, Any]) -> None:
    writes = [s for s in statements_granting(template, "acm:") if "acm:ImportCertificate" in s["Action"]]
    assert writes
    for statement in writes:
        assert set(statement["Action"]) == {"acm:ImportCertificate", "acm:AddTagsToCertificate"}
        assert statement["Resource"] == {"Fn::Sub": "arn:${AWS::Partition}:acm:*:${AWS::AccountId}:certificate/*"}


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
    EventBridge Scheduler invokes asynchronously, and so does the hand-on."""
    properties = template["Resources"]["RenewalFunction"]["Properties"]
    assert properties["EventInvokeConfig"] == {"MaximumRetryAttempts": 0}
    schedules = [e["Properties"] for e in properties["Events"].values() if e["Type"] == "ScheduleV2"]
    assert len(schedules) == 2
    for schedule in schedules:
        assert schedule["RetryPolicy"]["MaximumRetryAttempts"] == 0  # nor does Scheduler retry
    assert 'InvocationType="Event"' in (PACKAGE / "report" / "handoff.py").read_text()


def test_the_hand_on_chain_ends_before_lambdas_recursion_detection_would(template: dict[str, Any]) -> None:
    """Lambda's recursive loop detection stops a chain of invocations after about 16 and drops the event; a function
    invoking itself through the Invoke API is such a chain, and RecursiveLoop says what Lambda does
    (https://docs.aws.amazon.com/lambda/latest/dg/invocation-recursion.html). The scheduled run and its hand-ons
    stay clear of 16, and Terminate, Lambda's default, is kept as the guard, explicitly."""
    assert template["Resources"]["RenewalFunction"]["Properties"]["RecursiveLoop"] == "Terminate"
    runs_in_a_chain = Continuation(lambda payload: None).max_generations + 1
    assert runs_in_a_chain <= LAMBDA_RECURSION_LIMIT - 3  # "about" 16: a margin


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
        assert condition["StringLike"]["kms:EncryptionContext:SecretARN"]["Fn::Sub"].endswith(
            ":secret:${SecretPrefix}*"
        )
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


def test_the_renewal_function_may_invoke_itself_and_nothing_else(template: dict[str, Any]) -> None:
    function = template["Resources"]["RenewalFunction"]["Properties"]
    statements = [s for policy in function["Policies"] for s in policy["Statement"] if not isinstance(s, dict) or
                  any(str(a).startswith("lambda:") for a in as_list(s.get("Action", [])))]  # fmt: skip
    assert len(statements) == 1
    (name,) = function["FunctionName"].values()
    assert statements[0]["Resource"]["Fn::Sub"].endswith(":function:" + name)
    assert statements[0]["Action"] == ["lambda:InvokeFunction"]


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
    assert len(statements) == len(FUNCTIONS)
    for statement in statements:
        assert statement["Action"] == ["sts:AssumeRole"]
        assert statement["Resource"] == {"Ref": "ZoneRoleArns"}
        assert statement["_condition"] == "HasZoneRoleArns"
    assert template["Conditions"]["HasZoneRoleArns"] == {
        "Fn::Not": [{"Fn::Equals": [{"Fn::Join": ["", {"Ref": "ZoneRoleArns"}]}, ""]}]
    }
    parameters = template["Parameters"]
    assert parameters["ZoneRoleArns"]["Type"] == "CommaDelimitedList" and parameters["ZoneRoleArns"]["Default"] == ""
    assert parameters["ZoneRoles"]["Default"] == ""
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["ZONE_ROLES"] == {"Ref": "ZoneRoles"}


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
