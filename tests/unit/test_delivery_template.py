"""template.yaml's delivery to instances: the SSM command document runs delivery/files.py itself, with parameters
that cannot break out of the script; the rule, the Automation and their roles exist only when asked for, pass the
event's id and secret, and may do no more than that."""

from __future__ import annotations

import ast
import json
import os
import re
import stat
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from acme_renewer.delivery import files
from acme_renewer.inventory.validation import _ID
from acme_renewer.report import events
from acme_renewer.report.outcomes import Outcome, Published, Result
from tests.stack.table import REPO_ROOT, load_template
from tests.unit.test_template import Stack, as_list

FILES_PY = Path(files.__file__)
MARKER = "ACME_RENEWER_FILES_PY"
# An SSM parameter reference as the agent substitutes it: {{ Name }} or {{Name}}.
REFERENCE = re.compile(r"\{\{ *([A-Za-z0-9_]+) *\}\}")
DELIVERY = ("DeliveryAutomation", "DeliveryRule", "DeliveryRuleRole", "DeliveryAutomationRole")
# What a parameter value must never carry into a shell script: quotes, expansions, a new line.
HOSTILE = ("'", '"', "$(id)", "`id`", "a\nb", "\\", "${HOME}")


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def command_document(template: dict[str, Any]) -> dict[str, Any]:
    content: dict[str, Any] = template["Resources"]["DeliveryCommandDocument"]["Properties"]["Content"]
    return content


def script_of(template: dict[str, Any]) -> str:
    (step,) = command_document(template)["mainSteps"]
    assert step["action"] == "aws:runShellScript"
    (script,) = step["inputs"]["runCommand"]
    return str(script)


def test_the_document_runs_files_py_itself(template: dict[str, Any]) -> None:
    """A copy that drifted from files.py would run untested code on every host: `make ssm-document` renews it."""
    script = script_of(template)
    body = script.split(f"<<'{MARKER}'\n", 1)[1].split(f"\n{MARKER}\n", 1)[0] + "\n"
    assert body == FILES_PY.read_text()


def test_files_py_runs_on_the_hosts_python_with_the_standard_library_only() -> None:
    source = FILES_PY.read_text()
    tree = ast.parse(source, feature_version=(3, 9))  # Amazon Linux 2023's python3
    imported = {
        alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    }
    imported |= {
        node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    }
    assert imported - {"__future__"} <= sys.stdlib_module_names, imported - set(sys.stdlib_module_names)
    assert "{{" not in source and MARKER not in source  # SSM would substitute it; the heredoc would end early


def test_every_parameter_is_declared_used_and_kept_inside_its_quotes(template: dict[str, Any]) -> None:
    document = command_document(template)
    parameters = document["parameters"]
    script = script_of(template)
    assert set(REFERENCE.findall(script)) == set(parameters)
    for name, spec in parameters.items():
        assert spec["type"] == "String" and spec["interpolationType"] == "ENV_VAR", name
        # The fallback for agents without ENV_VAR: the value inside single quotes, which no pattern allows.
        assert f"export SSM_{name}='{{{{ {name} }}}}'; fi" in script, name
        for value in HOSTILE:
            allowed = (
                value in spec["allowedValues"]
                if "allowedValues" in spec
                else re.fullmatch(spec["allowedPattern"], value)
            )
            assert not allowed, (name, value)


def test_the_deploy_parameters_are_what_the_document_accepts(template: dict[str, Any]) -> None:
    """A value the stack takes must not be refused by the document when the Automation passes it."""
    document = command_document(template)["parameters"]
    stack = template["Parameters"]
    for stack_name, name in (("DeliveryDirectory", "Directory"), ("DeliveryReloadCommand", "ReloadCommand"),
                             ("DeliveryOwner", "Owner")):  # fmt: skip
        assert stack[stack_name]["AllowedPattern"] == document[name]["allowedPattern"], name
        assert re.fullmatch(document[name]["allowedPattern"], str(stack[stack_name]["Default"])), name
    assert stack["DeliveryPfx"]["AllowedValues"] == document["Pfx"]["allowedValues"]
    assert stack["DeliveryBundle"]["AllowedValues"] == document["Bundle"]["allowedValues"]
    assert document["CertificateId"]["allowedPattern"] == _ID.pattern  # exactly the ids validation accepts


def fake_python(directory: Path) -> Path:
    """A `python3` that keeps the script it is given and its arguments, instead of running them."""
    directory.mkdir(parents=True)
    fake = directory / "python3"
    fake.write_text(
        f"#!{sys.executable}\n"
        "import json, pathlib, shutil, sys\n"
        "here = pathlib.Path(__file__).parent\n"
        "shutil.copy(sys.argv[1], here / 'script.py')\n"
        "(here / 'argv.json').write_text(json.dumps(sys.argv[2:]))\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    return directory


def run_as_ssm(template: dict[str, Any], values: dict[str, str], tmp_path: Path, *, env_var: bool) -> list[str]:
    """The script as the agent runs it: {{ }} substituted, defaults filled in, and, with ENV_VAR, SSM_<name> set."""
    parameters = command_document(template)["parameters"]
    given = {name: values.get(name, spec.get("default", "")) for name, spec in parameters.items()}
    for name, value in given.items():
        spec = parameters[name]
        assert (
            value in spec["allowedValues"] if "allowedValues" in spec else re.fullmatch(spec["allowedPattern"], value)
        )
    script = REFERENCE.sub(lambda match: given[match.group(1)], script_of(template))
    bin_dir = fake_python(tmp_path / ("env" if env_var else "text"))
    environment = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    if env_var:
        environment |= {f"SSM_{name}": value for name, value in given.items()}
    subprocess.run(["bash", "-c", script], env=environment, check=True, cwd=tmp_path)
    assert (bin_dir / "script.py").read_text() == FILES_PY.read_text()
    argv: list[str] = json.loads((bin_dir / "argv.json").read_text())
    return argv


@pytest.mark.parametrize("env_var", [True, False], ids=["ENV_VAR", "old agent"])
def test_the_script_hands_each_value_to_files_py_as_one_argument(
    template: dict[str, Any], tmp_path: Path, env_var: bool
) -> None:
    values = {
        "SecretId": "arn:aws:secretsmanager:eu-west-1:111122223333:secret:acme-renewer/certificates/www-AbCdEf",
        "CertificateId": "www",
        "ReloadCommand": "nginx -t && systemctl reload nginx; touch /run/reloaded",
        "Owner": "www-data:33",
        "Pfx": "true",
        "Bundle": "true",
        "Region": "eu-west-1",
    }
    argv = run_as_ssm(template, values, tmp_path, env_var=env_var)
    assert argv == [
        "--secret", values["SecretId"], "--id", "www", "--dir", "/etc/acme-renewer/www",
        "--reload", values["ReloadCommand"], "--owner", "www-data:33", "--pfx", "--bundle",
        "--region", "eu-west-1",
    ]  # fmt: skip
    assert run_as_ssm(template, {"SecretId": "s", "CertificateId": "api"}, tmp_path / "defaults", env_var=env_var) == [
        "--secret", "s", "--id", "api", "--dir", "/etc/acme-renewer/api",
    ]  # fmt: skip


def resolved(**parameters: str) -> dict[str, dict[str, Any]]:
    return Stack(load_template(), "acme-renewer", **parameters).resources()


def test_delivery_on_renewal_exists_only_when_asked_for() -> None:
    off, on = resolved(), resolved(DeliverToInstances="true")
    assert not set(DELIVERY) & set(off)
    assert set(DELIVERY) <= set(on)
    assert "DeliveryCommandDocument" in off  # for Run Command or State Manager by hand


def transform(input_transformer: dict[str, Any], event: dict[str, Any]) -> Any:
    """EventBridge's input transformer: a placeholder outside quotes becomes the JSON value of its path
    (https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_InputTransformer.html)."""
    values = {}
    for name, path in input_transformer["InputPathsMap"].items():
        value: Any = event
        for part in path.removeprefix("$.").split("."):
            value = value[part]
        values[name] = value
    return json.loads(
        re.sub(r"<([A-Za-z0-9]+)>", lambda m: json.dumps(values[m.group(1)]), input_transformer["InputTemplate"])
    )


def test_the_rule_sends_the_events_id_and_secret_to_the_automation() -> None:
    resources = resolved(DeliverToInstances="true")
    rule = resources["DeliveryRule"]["Properties"]
    assert rule["EventPattern"] == {"source": [events.SOURCE], "detail-type": [events.ISSUED, events.RENEWED]}
    assert rule["EventBusName"] == "default"
    (target,) = rule["Targets"]
    assert target["Arn"] == "arn:aws:ssm:us-east-1:123456789012:automation-definition/DeliveryAutomation"
    assert target["RoleArn"] == "DeliveryRuleRole"
    # A real event of the renewer (report/events.py), as EventBridge delivers it.
    published = Published(
        domains=("www.example.com",),
        serial="4b1d",
        not_after=datetime(2027, 3, 1, tzinfo=UTC),
        acm_arns={},
        secret_arn="arn:aws:secretsmanager:us-east-1:123456789012:secret:acme-renewer/certificates/www-AbCdEf",
        first_issuance=False,
    )
    outcome = Outcome(
        "www", Result.RENEWED, "due", published.not_after, published=published, domains=("www.example.com",)
    )
    found = events.outcome_event(outcome)
    assert found is not None
    detail_type, detail = found
    sent = transform(
        target["InputTransformer"], {"source": events.SOURCE, "detail-type": detail_type, "detail": detail}
    )
    assert sent == {"CertificateId": [detail["id"]], "SecretId": [detail["secret_arn"]]}
    automation = resources["DeliveryAutomation"]["Properties"]["Content"]
    assert set(sent) == set(automation["parameters"])
    for name, (value,) in sent.items():
        assert re.fullmatch(automation["parameters"][name]["allowedPattern"], value), name


def test_the_automation_runs_the_document_on_the_instances_tagged_with_the_id() -> None:
    resources = resolved(DeliverToInstances="true", DeliveryReloadCommand="nginx -t && nginx -s reload")
    automation = resources["DeliveryAutomation"]["Properties"]["Content"]
    assert automation["assumeRole"] == "DeliveryAutomationRole"
    (step,) = automation["mainSteps"]
    assert step["action"] == "aws:runCommand"
    inputs = step["inputs"]
    assert inputs["DocumentName"] == "DeliveryCommandDocument"
    assert inputs["Targets"] == [{"Key": "tag:acme-renewer:certificate", "Values": ["{{ CertificateId }}"]}]
    assert inputs["MaxErrors"] == "0"
    command = resources["DeliveryCommandDocument"]["Properties"]["Content"]["parameters"]
    assert set(inputs["Parameters"]) == set(command)
    assert inputs["Parameters"]["ReloadCommand"] == ["nginx -t && nginx -s reload"]
    assert inputs["Parameters"]["CertificateId"] == ["{{ CertificateId }}"]


def statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for policy in role["Properties"]["Policies"] for s in policy["PolicyDocument"]["Statement"]]


def test_the_rules_role_may_start_this_automation_and_pass_it_its_role_only() -> None:
    role = resolved(DeliverToInstances="true")["DeliveryRuleRole"]
    (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "events.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceAccount": "123456789012"}}
    granted = {(a, r) for s in statements(role) for a in as_list(s["Action"]) for r in as_list(s["Resource"])}
    definition = "arn:aws:ssm:us-east-1:123456789012:automation-definition/DeliveryAutomation"
    assert granted == {
        ("ssm:StartAutomationExecution", definition),
        ("ssm:StartAutomationExecution", f"{definition}:*"),
        ("iam:PassRole", "DeliveryAutomationRole"),
    }
    (pass_role,) = [s for s in statements(role) if s["Action"] == "iam:PassRole"]
    assert pass_role["Condition"] == {"StringEquals": {"iam:PassedToService": "ssm.amazonaws.com"}}


def test_the_automations_role_may_send_this_document_to_tagged_instances_only() -> None:
    role = resolved(DeliverToInstances="true")["DeliveryAutomationRole"]
    (trust,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "ssm.amazonaws.com"}
    assert trust["Condition"]["ArnLike"] == {
        "aws:SourceArn": "arn:aws:ssm:us-east-1:123456789012:automation-execution/*"
    }
    by_sid = {s["Sid"]: s for s in statements(role)}
    assert by_sid["SendTheDeliveryDocument"]["Resource"] == (
        "arn:aws:ssm:us-east-1:123456789012:document/DeliveryCommandDocument"
    )
    instances = by_sid["SendToTaggedInstances"]
    assert instances["Resource"] == "arn:aws:ec2:us-east-1:123456789012:instance/*"
    assert instances["Condition"] == {"StringLike": {"ssm:resourceTag/acme-renewer:certificate": "*"}}
    for statement in by_sid.values():
        actions = as_list(statement["Action"])
        assert set(actions) <= {"ssm:SendCommand", "ssm:ListCommands", "ssm:ListCommandInvocations"}
        if statement["Resource"] == "*":
            assert set(actions) <= {"ssm:ListCommands", "ssm:ListCommandInvocations"}, statement["Sid"]
    assert "ManagedPolicyArns" not in role["Properties"]


def test_the_make_target_regenerates_the_embedded_copy(tmp_path: Path) -> None:
    generator = REPO_ROOT / ".ci" / "embed-delivery-script.py"
    namespace: dict[str, Any] = {"__name__": "embed", "__file__": str(generator)}
    exec(compile(generator.read_text(), str(generator), "exec"), namespace)
    template = (REPO_ROOT / "template.yaml").read_text()
    assert namespace["embedded"](template, FILES_PY.read_text()) == template  # already up to date
    changed = namespace["embedded"](template, "print('new')\n")
    assert "                  print('new')\n                  ACME_RENEWER_FILES_PY\n" in changed
    assert "def deliver(" not in changed
    assert "\nssm-document:\n\t$(PYTHON) .ci/embed-delivery-script.py\n" in (REPO_ROOT / "Makefile").read_text()
