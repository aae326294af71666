"""The DynamoDB table in moto, created from the definition in template.yaml so tests never drift from it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml  # type: ignore[import-untyped, unused-ignore]

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import TableDescriptionTypeDef

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_TEMPLATE = REPO_ROOT / "template.yaml"
TABLE_TYPE = "AWS::DynamoDB::Table"
DEFAULT_LOGICAL_ID = "CertificatesTable"


class CloudFormationLoader(yaml.SafeLoader):  # type: ignore[misc, unused-ignore]
    """SafeLoader that reads CloudFormation short tags (`!Ref X`, `!GetAtt A.B`, `!Sub ...`) as their long forms."""


def _construct_short_tag(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if tag_suffix == "GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    elif isinstance(node, yaml.MappingNode):
        value = loader.construct_mapping(node, deep=True)
    else:
        raise yaml.constructor.ConstructorError(None, None, f"unexpected node for !{tag_suffix}", node.start_mark)
    key = tag_suffix if tag_suffix in ("Ref", "Condition") else f"Fn::{tag_suffix}"
    return {key: value}


CloudFormationLoader.add_multi_constructor("!", _construct_short_tag)


def load_template(path: Path = DEFAULT_TEMPLATE) -> dict[str, Any]:
    with path.open() as stream:
        template: dict[str, Any] = yaml.load(stream, Loader=CloudFormationLoader)
    return template


def table_properties(template: dict[str, Any], logical_id: str | None = None) -> dict[str, Any]:
    """Properties of the template's DynamoDB table: `logical_id`, else the only one, else CertificatesTable."""
    tables = {
        name: resource for name, resource in template.get("Resources", {}).items() if resource.get("Type") == TABLE_TYPE
    }
    if logical_id is None:
        if len(tables) == 1:
            logical_id = next(iter(tables))
        elif DEFAULT_LOGICAL_ID in tables:
            logical_id = DEFAULT_LOGICAL_ID
        else:
            raise ValueError(f"template has {len(tables)} resources of type {TABLE_TYPE}; name one: {sorted(tables)}")
    if logical_id not in tables:
        raise ValueError(f"template has no {TABLE_TYPE} resource {logical_id!r}; found {sorted(tables)}")
    properties: dict[str, Any] = tables[logical_id].get("Properties", {})
    return properties


def create_table_request(properties: dict[str, Any], table_name: str) -> dict[str, Any]:
    """CreateTable arguments from CloudFormation table properties (the two share most field names)."""
    request: dict[str, Any] = {
        "TableName": table_name,
        "KeySchema": properties["KeySchema"],
        "AttributeDefinitions": properties["AttributeDefinitions"],
        "BillingMode": properties.get("BillingMode", "PROVISIONED"),
    }
    for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes", "ProvisionedThroughput"):
        if key in properties:
            request[key] = properties[key]
    if "StreamSpecification" in properties:
        # CloudFormation enables the stream by giving a view type; the API wants it said explicitly.
        request["StreamSpecification"] = {
            "StreamEnabled": True,
            "StreamViewType": properties["StreamSpecification"]["StreamViewType"],
        }
    _reject_intrinsics(request)
    return request


def create_table(
    client: DynamoDBClient,
    table_name: str,
    *,
    template_path: Path = DEFAULT_TEMPLATE,
    logical_id: str | None = None,
) -> TableDescriptionTypeDef:
    """Create `table_name` as the template defines its table, including TTL if the template enables it."""
    properties = table_properties(load_template(template_path), logical_id)
    description = client.create_table(**create_table_request(properties, table_name))["TableDescription"]
    ttl = properties.get("TimeToLiveSpecification")
    if ttl and ttl.get("Enabled"):
        client.update_time_to_live(
            TableName=table_name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]},
        )
    return description


def _reject_intrinsics(value: Any, path: str = "") -> None:
    """The local stack has no CloudFormation engine: say so plainly instead of sending `{'Ref': ...}` to moto."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "Ref" or key.startswith("Fn::"):
                raise ValueError(f"table property {path or '/'} uses {key}; the local stack cannot resolve it")
            _reject_intrinsics(item, f"{path}/{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _reject_intrinsics(item, f"{path}/{index}")


def write_item(client: DynamoDBClient, table_name: str, item: Mapping[str, Any]) -> None:
    """PutItem of the request fields of `item`, as an operator writes it; its renewer fields, if any, replace the
    certificate's status item (a test seeding a state, as one item of old held both)."""
    from boto3.dynamodb.types import TypeSerializer

    from acme_renewer.inventory.table import STATUS_OF, request_fields, state_fields, status_id

    serializer = TypeSerializer()
    request = {k: serializer.serialize(v) for k, v in request_fields(item).items()}
    client.put_item(TableName=table_name, Item=request)
    state = state_fields(item)
    if state:
        status = {**state, "id": status_id(str(item["id"])), STATUS_OF: item["id"]}
        client.put_item(TableName=table_name, Item={k: serializer.serialize(v) for k, v in status.items()})
