"""Which AWS operation a request to moto is, and how many DynamoDB items an answer carries.

Requests are the ones botocore serializes for each service, so a REST path maps back the way a real client sends it.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import pytest
from botocore.serialize import create_serializer
from werkzeug.test import EnvironBuilder

from tests.stack.aws_calls import AwsCall, CallCounts, dynamodb_items_read, identify, service_model

CHANGE_BATCH = {"Changes": [{"Action": "UPSERT", "ResourceRecordSet": {"Name": "a.test.", "Type": "TXT"}}]}


def signed_request(service: str, operation: str, params: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    """WSGI environ and body of the request boto3 would send, signed with a SigV4-shaped Authorization header."""
    model = service_model(service)
    assert model is not None
    request = create_serializer(model.protocol).serialize_to_request(params, model.operation_model(operation))
    body = request["body"]
    if isinstance(body, dict):  # query protocol: botocore form-encodes it later
        body = urlencode(body)
    body = body.encode() if isinstance(body, str) else body
    scope = f"testing/20240101/us-east-1/{model.signing_name}/aws4_request"
    headers = {**request["headers"], "Authorization": f"AWS4-HMAC-SHA256 Credential={scope}, Signature=0"}
    query = request["query_string"]
    builder = EnvironBuilder(
        method=request["method"],
        path=request["url_path"],
        query_string=urlencode(query, doseq=True) if isinstance(query, dict) else query,
        headers=list(headers.items()),
        data=body,
    )
    return builder.get_environ(), body


@pytest.mark.parametrize(
    ("service", "operation", "params", "labels"),
    [
        ("route53", "ChangeResourceRecordSets", {"HostedZoneId": "Z1", "ChangeBatch": CHANGE_BATCH}, {"Id": "Z1"}),
        ("route53", "GetChange", {"Id": "C1"}, {"Id": "C1"}),
        ("route53", "ListResourceRecordSets", {"HostedZoneId": "Z1", "StartRecordName": "a."}, {"Id": "Z1"}),
        ("route53", "ListHostedZones", {}, {}),
        ("route53", "ListHostedZonesByName", {"DNSName": "example.test"}, {}),
        ("route53", "GetHostedZone", {"Id": "Z1"}, {"Id": "Z1"}),
        ("route53", "GetHostedZoneCount", {}, {}),
        ("route53", "CreateHostedZone", {"Name": "example.test", "CallerReference": "r"}, {}),
        ("route53", "DeleteHostedZone", {"Id": "Z1"}, {"Id": "Z1"}),
        ("dynamodb", "Query", {"TableName": "t", "KeyConditionExpression": "pk = :p"}, {}),
        ("dynamodb", "UpdateItem", {"TableName": "t", "Key": {"pk": {"S": "a"}}}, {}),
        ("acm", "ImportCertificate", {"Certificate": b"c", "PrivateKey": b"k"}, {}),
        ("secretsmanager", "GetSecretValue", {"SecretId": "s"}, {}),
        ("sts", "GetCallerIdentity", {}, {}),  # query protocol: Action in the form body
    ],
)
def test_operation_is_identified_from_the_request_a_client_sends(
    service: str, operation: str, params: dict[str, Any], labels: dict[str, str]
) -> None:
    call = identify(*signed_request(service, operation, params))
    assert call == AwsCall(service, operation)
    assert call is not None and dict(call.labels) == labels


def test_dynamodb_streams_calls_are_kept_apart_from_the_table() -> None:
    environ, body = signed_request("dynamodbstreams", "GetRecords", {"ShardIterator": "i"})
    assert identify(environ, body) == AwsCall("dynamodbstreams", "GetRecords")


def test_a_trailing_slash_does_not_change_the_operation() -> None:
    environ, body = signed_request("route53", "GetChange", {"Id": "C1"})
    environ["PATH_INFO"] += "/"
    assert identify(environ, body) == AwsCall("route53", "GetChange")


def test_an_unknown_rest_path_is_counted_by_method_and_path() -> None:
    environ, body = signed_request("route53", "ListHostedZones", {})
    environ["PATH_INFO"] = "/2013-04-01/nowhere"
    assert identify(environ, body) == AwsCall("route53", "GET /2013-04-01/nowhere")


def test_unsigned_requests_are_not_aws_calls() -> None:
    environ = EnvironBuilder(path="/moto-api/").get_environ()
    assert identify(environ, b"") is None


@pytest.mark.parametrize(
    ("answer", "items"),
    [
        ({"Items": [{"pk": {"S": "a"}}, {"pk": {"S": "b"}}], "Count": 2}, 2),  # Scan, Query
        ({"Items": [], "Count": 0}, 0),
        ({"Count": 5, "ScannedCount": 5}, 0),  # Select=COUNT hands back no items
        ({"Item": {"pk": {"S": "a"}}}, 1),  # GetItem
        ({}, 0),  # GetItem of a missing key, PutItem without ReturnValues
        ({"Responses": {"t1": [{}, {}], "t2": [{}]}, "UnprocessedKeys": {}}, 3),  # BatchGetItem
        ({"Responses": [{"Item": {"pk": {"S": "a"}}}, {}]}, 1),  # TransactGetItems
        ({"Attributes": {"pk": {"S": "a"}}}, 1),  # UpdateItem/PutItem/DeleteItem with ReturnValues
        ({"Table": {"TableName": "t"}}, 0),  # DescribeTable
    ],
)
def test_dynamodb_items_read(answer: dict[str, Any], items: int) -> None:
    assert dynamodb_items_read(json.dumps(answer).encode()) == items


def test_a_body_that_is_not_json_reads_no_items() -> None:
    assert dynamodb_items_read(b"<html>") == 0


def test_call_counts_add_up_and_reset() -> None:
    counts = CallCounts()
    counts.record(AwsCall("route53", "GetChange"))
    counts.record(AwsCall("route53", "GetChange"))
    counts.record(AwsCall("dynamodb", "Scan"), items_read=4)
    assert counts.snapshot() == {
        "calls": {"route53": {"GetChange": 2}, "dynamodb": {"Scan": 1}},
        "dynamodb_items_read": 4,
    }
    counts.reset()
    assert counts.snapshot() == {"calls": {}, "dynamodb_items_read": 0}
