"""Operator CLI, the certificates table as the operator edits it: requests written whole, read merged with status."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from boto3.dynamodb.types import TypeSerializer

from acme_renewer.inventory.table import STATUS_OF, CertificateTable, deserialize, merged, status_id

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

# The optional request fields `add` can set (show lists their defaults).
OPTIONAL_REQUEST_FIELDS = (
    "key_type", "acm_regions", "secret_name", "renew_before_days", "enabled", "preferred_chain", "hosted_zone_id",
    "challenge_alias",
)  # fmt: skip


class OperatorTable:
    """The certificates table for the CLI: reads through the renewer's adapter (one merged view per certificate),
    writes request items whole, as `aws dynamodb put-item` does; the renewer's status items are never written
    here, but for the place in the due index that makes a new request due at once."""

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name
        self._reader = CertificateTable(client, table_name)
        self._serializer = TypeSerializer()

    def items(self) -> list[dict[str, Any]]:
        return list(self._reader.items())

    def get(self, item_id: str) -> dict[str, Any] | None:
        return self._reader.get(item_id)

    def count(self) -> int:
        """Certificates (request items); status items are not counted."""
        pages = self._client.get_paginator("scan").paginate(
            TableName=self._table,
            Select="COUNT",
            FilterExpression="attribute_not_exists(#of)",
            ExpressionAttributeNames={"#of": STATUS_OF},
        )
        return sum(page["Count"] for page in pages)

    def create(self, item: Mapping[str, Any]) -> bool:
        """PutItem only when the id is new; False when it exists."""
        return self._put(item, "attribute_not_exists(id)")

    def replace_request(self, item: Mapping[str, Any]) -> bool:
        """PutItem of the whole request over an existing one; False when there was none.

        What the renewer knows (ACM ARNs, secret, expiry, journal, lease) lives on the status item, which a
        request's put never touches: the next renewal re-imports into the same ARNs.
        """
        return self._put(item, "attribute_exists(id)")

    def delete(self, item_id: str) -> dict[str, Any] | None:
        """Delete the request and retire its certificate; return it as it was (status included), or None."""
        try:
            response = self._client.delete_item(
                TableName=self._table,
                Key={"id": {"S": item_id}},
                ConditionExpression="attribute_exists(id)",
                ReturnValues="ALL_OLD",
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return None
        # The stream function retires it too; doing it here does not depend on the stream.
        self._reader.retire(item_id, datetime.now(UTC))
        return merged(deserialize(response.get("Attributes", {})), self._reader.get_status(item_id))

    def forget(self, item_id: str) -> None:
        """Delete the status item of a certificate that was never issued (a place in the due index at most)."""
        self._client.delete_item(TableName=self._table, Key={"id": {"S": status_id(item_id)}})

    def _put(self, item: Mapping[str, Any], condition: str) -> bool:
        try:
            self._client.put_item(
                TableName=self._table,
                Item={k: self._serializer.serialize(v) for k, v in item.items()},
                ConditionExpression=condition,
            )
        except self._client.exceptions.ConditionalCheckFailedException:
            return False
        # Due at once in the `due` index, so that a due-only scheduled run acts on it even without the stream.
        now = datetime.now(UTC)
        self._reader.set_schedule(str(item["id"]), now, scheduled=True, now=now)
        return True
