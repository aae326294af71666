"""The alarms and the dashboard watch metrics the code really emits: same names, namespace and dimensions.

Both sides are derived: the metrics from template.yaml, the emitted ones from the EMF documents a scheduled run
prints. A renamed metric or a changed dimension on either side fails here instead of leaving an alarm on a silent
metric (which, with missing data treated as not breaching, never fires).
"""

from __future__ import annotations

from typing import Any

import pytest

from acme_renewer import SERVICE
from tests.integration.test_renewal import put_item, run, unique
from tests.stack import LocalStack
from tests.stack.handler import emf_documents
from tests.stack.table import load_template
from tests.unit.test_template import Stack, custom_metric_alarms, graphed_metrics, render_dashboard

# (namespace, metric name, dimensions as sorted (name, value) pairs)
MetricKey = tuple[str, str, tuple[tuple[str, str], ...]]


def deployed(template: dict[str, Any]) -> Stack:
    """The template as a stack resolves it, with parameters at their defaults. The stack is named after the
    service the package runs as in this process (`acme_renewer.SERVICE`, read once at import), because the
    stack sets POWERTOOLS_SERVICE_NAME to its name; tests/unit/test_template.py covers other names."""
    return Stack(template, SERVICE)


def emitted(output: str) -> set[MetricKey]:
    """Every metric in the EMF documents, once per dimension set it was published with."""
    found = set()
    for document in emf_documents(output):
        for directive in document["_aws"]["CloudWatchMetrics"]:
            for dimension_set in directive["Dimensions"]:
                dimensions = tuple(sorted((name, str(document[name])) for name in dimension_set))
                for metric in directive["Metrics"]:
                    found.add((directive["Namespace"], metric["Name"], dimensions))
    return found


@pytest.fixture
def scheduled_run_metrics(
    stack: LocalStack, env: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> set[MetricKey]:
    """The metrics of one scheduled run that issued a certificate, under the metric settings the stack deploys."""
    template = load_template()
    for name, value in deployed(template).environment("RenewalFunction").items():
        if name.startswith("POWERTOOLS_METRICS_") or name == "POWERTOOLS_SERVICE_NAME":
            monkeypatch.setenv(name, value)
    zone = unique("alarms") + ".test"
    stack.create_hosted_zone(zone)
    put_item(stack, env, {"id": "alarms", "domains": [zone]})
    capsys.readouterr()

    result = run()

    output = capsys.readouterr().out
    assert result["renewed"] == 1, result
    return emitted(output)


def test_every_custom_metric_alarm_watches_an_emitted_metric(scheduled_run_metrics: set[MetricKey]) -> None:
    template = load_template()
    namespace = template["Parameters"]["MetricsNamespace"]["Default"]
    expected = {
        alarm: (
            namespace,
            metric["MetricName"],
            tuple(sorted((d["Name"], str(deployed(template).resolve(d["Value"]))) for d in metric["Dimensions"])),
        )
        for alarm, metrics in custom_metric_alarms(template).items()
        for metric in metrics
        if metric["Namespace"] == {"Ref": "MetricsNamespace"}
    }
    assert expected
    missing = {alarm: key for alarm, key in expected.items() if key not in scheduled_run_metrics}
    assert not missing, f"alarms on metrics the scheduled run did not emit: {missing}; emitted: {scheduled_run_metrics}"


def test_every_dashboard_graph_of_ours_has_data(scheduled_run_metrics: set[MetricKey]) -> None:
    template = load_template()
    namespace = template["Parameters"]["MetricsNamespace"]["Default"]
    graphed = {key for key in graphed_metrics(render_dashboard(template, SERVICE)) if key[0] == namespace}
    assert graphed
    assert not graphed - scheduled_run_metrics, f"graphs with no data: {graphed - scheduled_run_metrics}"
