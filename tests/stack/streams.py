"""DynamoDB stream records from moto, shaped as Lambda receives them, and the template's event filter.

moto keeps a table's stream; Lambda's event source mapping is what the local stack lacks, so this module
plays its part: read new records, drop those the template's FilterCriteria would drop, hand the rest over.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from moto.events.models import EventPattern

from tests.stack import LocalStack
from tests.stack.table import load_template


class StreamReader:
    """Reads a table's stream from where it was when the reader was made (like StartingPosition LATEST)."""

    def __init__(self, stack: LocalStack, table_name: str) -> None:
        self._streams = stack.client("dynamodbstreams")
        self._arn = stack.client("dynamodb").describe_table(TableName=table_name)["Table"]["LatestStreamArn"]
        self._iterators: dict[str, str] = {}
        for shard in self._streams.describe_stream(StreamArn=self._arn)["StreamDescription"]["Shards"]:
            self._iterators[shard["ShardId"]] = self._streams.get_shard_iterator(
                StreamArn=self._arn, ShardId=shard["ShardId"], ShardIteratorType="LATEST"
            )["ShardIterator"]

    def read(self) -> list[dict[str, Any]]:
        """New records since the last read, in the Lambda event format."""
        records = []
        for shard_id, iterator in list(self._iterators.items()):
            response = self._streams.get_records(ShardIterator=iterator)
            self._iterators[shard_id] = response["NextShardIterator"]
            records.extend(_as_lambda_record(r, self._arn) for r in response["Records"])
        return without_upsert_artifacts(records)


def without_upsert_artifacts(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """moto's UpdateItem of a new key first puts an item of the key alone, then updates it, and streams both
    as INSERTs; DynamoDB streams one record per modification, the INSERT of the whole new item
    (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Streams.html). Drop moto's extra one: a
    key-only INSERT followed by an INSERT of the same key."""
    kept = []
    for index, record in enumerate(records):
        stream = record.get("dynamodb", {})
        following = records[index + 1] if index + 1 < len(records) else None
        if (
            record.get("eventName") == "INSERT"
            and stream.get("NewImage") == stream.get("Keys")
            and following is not None
            and following.get("eventName") == "INSERT"
            and following.get("dynamodb", {}).get("Keys") == stream.get("Keys")
        ):
            continue
        kept.append(record)
    return kept


def _as_lambda_record(record: Any, stream_arn: str) -> dict[str, Any]:
    lambda_record: dict[str, Any] = json.loads(json.dumps(record, default=_epoch))
    lambda_record["eventSourceARN"] = stream_arn
    return lambda_record


def _epoch(value: Any) -> Any:
    if isinstance(value, datetime):
        return int(value.timestamp())
    raise TypeError(f"cannot encode {type(value).__name__}")


def stream_filters(function: str = "StreamFunction", event: str = "TableChanges") -> list[EventPattern]:
    """The FilterCriteria patterns of the function's DynamoDB event, as template.yaml declares them."""
    properties = load_template()["Resources"][function]["Properties"]["Events"][event]["Properties"]
    return [EventPattern.load(f["Pattern"]) for f in properties["FilterCriteria"]["Filters"]]


def passes_filter(record: dict[str, Any], filters: list[EventPattern]) -> bool:
    """Lambda delivers a record when any one pattern matches it."""
    return any(pattern.matches_event(record) for pattern in filters)


def lambda_event(records: list[dict[str, Any]]) -> dict[str, Any]:
    return {"Records": records}
