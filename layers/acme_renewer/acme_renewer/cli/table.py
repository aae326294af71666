"""Operator CLI, the certificates table as the operator edits it: reads through the renewer's adapter, writes marked."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from acme_renewer.inventory.table import CertificateTable

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

# Written on every item the CLI writes; the stream trigger tells operator edits from the renewer's own writes.
WRITTEN_BY = "operator"
# The optional request fields `add` can set; `add --replace` removes those not given, so defaults apply again.
OPTIONAL_REQUEST_FIELDS = (
    "key_type", "acm_regions", "secret_name", "renew_before_days", "enabled", "preferred_chain", "hosted_zone_id",
    "challenge_alias",
)  # fmt: skip


class OperatorTable:
    """The certificates table for the CLI: reads through the renewer's adapter, writes marked as the operator's."""

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name
        self._reader = CertificateTable(client, table_name)
        self._serializer = TypeSerializer()
        self._deserializer = TypeDeserializer()

    def items(self) -> list[dict[str, Any]]:
        return list(self._reader.items())

    def get(self, item_id: str) -> dict[str, Any] | None:
        return self._reader.get(item_id)

    def count(self) -> int:
        pages = self._client.get_paginator("scan").paginate(TableName=self._table, Select="COUNT")
        return sum(page["Count"] for page in pages)

    def create(self, item: Mapping[str, Any]) -> bool:
        """PutItem only when the id is new; False when it exists."""
        try:
            self._client.put_item(
                TableName=self._table,
                Item={k: self._serializer.serialize(v) for k, v in {**item, "written_by": WRITTEN_BY}.items()},
                ConditionExpression="attribute_not_exists(id)",
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def replace_request(self, item: Mapping[str, Any]) -> bool:
        """Set the request fields given and remove the others, keeping what the renewer wrote; True if it existed.

        A PutItem would drop `acm_arns`, and the next renewal would import a new ACM certificate
        instead of renewing the one that load balancers and distributions use. (CertificateTable's own
        update marks its writes as the renewer's, which the stream filter ignores, so it is not reused.)
        """
        fields = {k: v for k, v in item.items() if k != "id"} | {"written_by": WRITTEN_BY}
        names = {f"#f{i}": name for i, name in enumerate(fields)}
        values = {f":v{i}": self._serializer.serialize(value) for i, value in enumerate(fields.values())}
        expression = "SET " + ", ".join(f"#f{i} = :v{i}" for i in range(len(fields)))
        dropped = [name for name in OPTIONAL_REQUEST_FIELDS if name not in item]
        if dropped:
            names.update({f"#r{i}": name for i, name in enumerate(dropped)})
            expression += " REMOVE " + ", ".join(f"#r{i}" for i in range(len(dropped)))
        response = self._client.update_item(
            TableName=self._table,
            Key={"id": {"S": str(item["id"])}},
            UpdateExpression=expression,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ReturnValues="ALL_OLD",
        )
        return bool(response.get("Attributes"))

    def delete(self, item_id: str) -> dict[str, Any] | None:
        """Delete the item; return it as it was, or None when there was none."""
        try:
            response = self._client.delete_item(
                TableName=self._table,
                Key={"id": {"S": item_id}},
                ConditionExpression="attribute_exists(id)",
                ReturnValues="ALL_OLD",
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return None
        return {k: self._deserializer.deserialize(v) for k, v in response.get("Attributes", {}).items()}
