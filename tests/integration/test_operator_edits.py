"""Operators edit the table the ordinary way; none of it may lose what the renewer knows, and every change is
issued at once. The writes are shaped like the AWS CLI's (`aws dynamodb put-item --item file://x.json`,
`update-item`, `delete-item`) and the console's edit (a GetItem, then a PutItem of the whole item); the stream
records reach the stream function only through the template's own FilterCriteria, as Lambda delivers them."""

from __future__ import annotations

from typing import Any

import pytest

from acme_renewer.inventory.table import CertificateTable, status_id
from acme_renewer.runtime import build_renewer
from acme_renewer.settings import Settings
from tests.integration.conftest import Calls
from tests.integration.invariants import acm_certificates_for, assert_nothing_lost, read_item
from tests.integration.test_certificate_secret import crash_after_finalize
from tests.integration.test_lifecycle import FILTERS, deliver
from tests.integration.test_renewal import check_certificate, unique
from tests.stack import LocalStack
from tests.stack.handler import invoke_with
from tests.stack.streams import StreamReader, lambda_event, passes_filter


def cli_item(item_id: str, *domains: str, **fields: Any) -> dict[str, Any]:
    """The README's item, in the DynamoDB JSON that `aws dynamodb put-item --item` takes."""
    item: dict[str, Any] = {"id": {"S": item_id}, "domains": {"L": [{"S": d} for d in domains]}}
    for name, value in fields.items():
        item[name] = {"S": value} if isinstance(value, str) else {"L": [{"S": v} for v in value]}
    return item


def put_item(stack: LocalStack, env: dict[str, str], item: dict[str, Any]) -> None:
    stack.client("dynamodb").put_item(TableName=env["TABLE_NAME"], Item=item)


def issued(stack: LocalStack, env: dict[str, str], reader: StreamReader, item_id: str) -> dict[str, Any]:
    """Deliver what the stream holds; the item must come out ISSUED, and nothing lost."""
    _, response = deliver(reader)
    assert response == {"batchItemFailures": []}
    item = read_item(stack, env["TABLE_NAME"], item_id)
    assert item.get("status") == "ISSUED", item.get("last_error")
    return item


@pytest.fixture
def zone(stack: LocalStack) -> tuple[str, str]:
    name = unique("edits") + ".test"
    return name, stack.create_hosted_zone(name)


def test_put_item_again_with_one_more_name_renews_into_the_same_arn(
    stack: LocalStack, env: dict[str, str], zone: tuple[str, str], calls: Calls
) -> None:
    name, zone_id = zone
    item_id = unique("put")
    reader = StreamReader(stack, env["TABLE_NAME"])
    put_item(stack, env, cli_item(item_id, name))
    first = issued(stack, env, reader, item_id)

    # The same command again, with one more name: the whole item is replaced.
    put_item(stack, env, cli_item(item_id, name, f"www.{name}"))
    second = issued(stack, env, reader, item_id)

    check_certificate(stack, second, [name, f"www.{name}"])
    assert (second["acm_arns"], second["secret_arn"]) == (first["acm_arns"], first["secret_arn"])
    assert acm_certificates_for(stack, name, stack.region) == [first["acm_arns"][stack.region]]
    assert_nothing_lost(stack, env["TABLE_NAME"], item_id, [zone_id], previous_serial=first["serial"])
    assert len(calls.new_orders) == 2


def test_update_item_of_the_domains_is_issued_at_once(
    stack: LocalStack, env: dict[str, str], zone: tuple[str, str]
) -> None:
    name, zone_id = zone
    item_id = unique("update")
    reader = StreamReader(stack, env["TABLE_NAME"])
    put_item(stack, env, cli_item(item_id, name))
    first = issued(stack, env, reader, item_id)

    # aws dynamodb update-item --key '{"id": {"S": "..."}}' --update-expression "SET domains = :d" ...
    stack.client("dynamodb").update_item(
        TableName=env["TABLE_NAME"],
        Key={"id": {"S": item_id}},
        UpdateExpression="SET domains = :d",
        ExpressionAttributeValues={":d": {"L": [{"S": name}, {"S": f"api.{name}"}]}},
    )
    second = issued(stack, env, reader, item_id)  # from the stream, not a day later from the full run

    check_certificate(stack, second, [name, f"api.{name}"])
    assert second["acm_arns"] == first["acm_arns"]
    assert_nothing_lost(stack, env["TABLE_NAME"], item_id, [zone_id], previous_serial=first["serial"])


def test_the_consoles_edit_of_the_whole_item_keeps_the_state(
    stack: LocalStack, env: dict[str, str], zone: tuple[str, str]
) -> None:
    """The console's "edit item" reads the item and writes it back whole, with the operator's change."""
    name, zone_id = zone
    item_id = unique("console")
    reader = StreamReader(stack, env["TABLE_NAME"])
    put_item(stack, env, cli_item(item_id, name))
    first = issued(stack, env, reader, item_id)

    shown = stack.client("dynamodb").get_item(TableName=env["TABLE_NAME"], Key={"id": {"S": item_id}})["Item"]
    assert "acm_arns" not in shown  # the request is all the operator edits
    put_item(stack, env, {**shown, "key_type": {"S": "ec-p384"}})
    second = issued(stack, env, reader, item_id)

    assert second["serial"] != first["serial"] and second["secret_arn"] == first["secret_arn"]
    assert_nothing_lost(stack, env["TABLE_NAME"], item_id, [zone_id], previous_serial=first["serial"])


def test_a_put_item_while_an_order_is_pending_makes_no_second_order(
    stack: LocalStack, env: dict[str, str], zone: tuple[str, str], calls: Calls, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run died after the CA issued; the operator then writes the same request again (a deploy script, say):
    the journal and the pending order survive, and the next run stores what the CA issued."""

    name, zone_id = zone
    item_id = unique("pending")
    put_item(stack, env, cli_item(item_id, name))
    crash_after_finalize(monkeypatch)
    assert "pending_order" in read_item(stack, env["TABLE_NAME"], item_id)

    put_item(stack, env, cli_item(item_id, name))  # the whole item, written again
    table = CertificateTable(stack.client("dynamodb"), env["TABLE_NAME"])
    status = table.get_status(item_id)
    assert status is not None and "pending_order" in status and "lease_owner" in status
    # The dead run's lease runs out.
    stack.client("dynamodb").update_item(
        TableName=env["TABLE_NAME"],
        Key={"id": {"S": status_id(item_id)}},
        UpdateExpression="SET lease_until = :past",
        ExpressionAttributeValues={":past": {"S": "2000-01-01T00:00:00Z"}},
    )
    build_renewer(Settings.from_env()).run()

    assert len(calls.new_orders) == 1
    item, _ = assert_nothing_lost(stack, env["TABLE_NAME"], item_id, [zone_id])
    assert item["status"] == "ISSUED" and "pending_order" not in item


def test_the_cli_replace_renews_in_place_from_the_stream(
    stack: LocalStack, env: dict[str, str], zone: tuple[str, str]
) -> None:
    from acme_renewer import cli

    name = zone[0]
    item_id = unique("cli")
    reader = StreamReader(stack, env["TABLE_NAME"])
    assert cli.main(["add", item_id, name]) == 0
    first = issued(stack, env, reader, item_id)
    assert cli.main(["add", "--replace", item_id, name, f"cli.{name}"]) == 0
    second = issued(stack, env, reader, item_id)
    check_certificate(stack, second, [name, f"cli.{name}"])
    assert second["acm_arns"] == first["acm_arns"]


def test_delete_item_retires_the_certificate_and_it_is_not_drift(
    stack: LocalStack, env: dict[str, str], zone: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deleted on purpose: no renewal, no expiry alarm, and its ACM certificate, still there, is known as ours
    (retired) rather than reported as unmanaged and expiring. Adding it back renews the same ARN."""
    name, _ = zone
    item_id = unique("gone")
    reader = StreamReader(stack, env["TABLE_NAME"])
    put_item(stack, env, cli_item(item_id, name))
    first = issued(stack, env, reader, item_id)
    arn = first["acm_arns"][stack.region]

    stack.client("dynamodb").delete_item(TableName=env["TABLE_NAME"], Key={"id": {"S": item_id}})
    records = reader.read()
    assert [r["eventName"] for r in records if passes_filter(r, FILTERS)] == ["REMOVE"]
    assert invoke_with("stream", lambda_event(records)) == {"batchItemFailures": []}
    status = CertificateTable(stack.client("dynamodb"), env["TABLE_NAME"]).get_status(item_id)
    assert status is not None and "retired_at" in status and "due_at" not in status and "schedule" not in status

    # Expiring "soon" by the drift report's measure: it would be reported, were it not known as retired.
    monkeypatch.setenv("EXPIRY_WARNING_DAYS", "3650")
    report = build_renewer(Settings.from_env()).run()
    assert arn not in [u.arn for u in report.unmanaged_expiring or []]
    # Out of the expiry index: the soonest-expiry metric (and its alarm) no longer counts it.
    assert build_renewer(Settings.from_env()).run(due_only=True).soonest_not_after is None

    put_item(stack, env, cli_item(item_id, name))
    again = issued(stack, env, reader, item_id)
    assert again["acm_arns"] == first["acm_arns"] and "retired_at" not in again


def test_an_item_of_a_version_before_status_items_keeps_its_state_through_a_put(
    stack: LocalStack, env: dict[str, str], zone: tuple[str, str]
) -> None:
    """An item whose state is still on it (written by a version before status items), overwritten with put-item
    before any run read it: the stream's old image hands the state over, so the ARN is kept."""
    name, zone_id = zone
    item_id = unique("legacy")
    reader = StreamReader(stack, env["TABLE_NAME"])
    put_item(stack, env, cli_item(item_id, name))
    first = issued(stack, env, reader, item_id)
    # Back to the old shape: one item holding request and state, marked as the renewer's.
    dynamodb = stack.client("dynamodb")
    status = dynamodb.get_item(TableName=env["TABLE_NAME"], Key={"id": {"S": status_id(item_id)}})["Item"]
    dynamodb.delete_item(TableName=env["TABLE_NAME"], Key={"id": {"S": status_id(item_id)}})
    legacy = {**{k: v for k, v in status.items() if k not in ("id", "status_of")}, **cli_item(item_id, name)}
    put_item(stack, env, {**legacy, "written_by": {"S": "renewer"}})
    reader.read()  # that write was the old version's own

    put_item(stack, env, cli_item(item_id, name, f"old.{name}"))
    second = issued(stack, env, reader, item_id)
    assert second["acm_arns"] == first["acm_arns"]
    assert_nothing_lost(stack, env["TABLE_NAME"], item_id, [zone_id], previous_serial=first["serial"])
