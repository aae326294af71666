"""The README finds its way: every in-page link lands on a heading, the table of contents names every section, the
everyday tasks come before the reference, and the Costs section counts what template.yaml really creates."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.stack.table import REPO_ROOT, load_template

README = (REPO_ROOT / "README.md").read_text()
EVERYDAY_TASKS = (
    "Add a certificate",
    "Change its names, or any field",
    "Remove a certificate",
    "Renew now",
    "See the status",
    "Get the certificate onto a server",
    "Silence a retired certificate",
)


def headings(text: str) -> list[tuple[int, str]]:
    """(level, title) of every Markdown heading outside fenced code blocks."""
    found, fenced = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (match := re.match(r"(#{1,6}) (.+)", line)):
            found.append((len(match.group(1)), match.group(2).strip()))
    return found


def anchor(title: str) -> str:
    """GitHub's anchor of a heading: lowercase, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


def section(title: str) -> str:
    return README.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_every_in_page_link_lands_on_a_heading() -> None:
    anchors = {anchor(title) for _, title in headings(README)}
    links = set(re.findall(r"\]\(#([^)]+)\)", README))
    assert links - anchors == set()


def test_the_contents_link_every_section_and_subsection() -> None:
    contents = set(re.findall(r"\]\(#([^)]+)\)", section("Contents")))
    missing = [title for level, title in headings(README) if level in (2, 3) and title != "Contents"]
    assert [title for title in missing if anchor(title) not in contents] == []


def test_the_everyday_tasks_come_first_each_its_own_subsection() -> None:
    titles = [title for _, title in headings(README)]
    assert titles.index("Quick start") < titles.index("Deploy in five minutes") < titles.index("Everyday tasks")
    tasks = section("Everyday tasks")
    assert [title for level, title in headings(tasks) if level == 3] == list(EVERYDAY_TASKS)
    assert titles.index("Silence a retired certificate") < titles.index("The item")


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def test_the_costs_count_the_alarms_and_the_memory_of_the_template(template: dict[str, Any]) -> None:
    costs = section("Costs")
    alarms = [r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::CloudWatch::Alarm"]
    alarm_metrics = sum(
        1 if "MetricName" in alarm else sum(1 for query in alarm["Metrics"] if "MetricStat" in query)
        for alarm in alarms
    )
    assert f"`template.yaml` has {len(alarms)} alarms" in costs
    assert f"{alarm_metrics} alarm metrics" in costs
    memory = {r["Properties"]["MemorySize"] for r in template["Resources"].values() if "MemorySize" in r["Properties"]}
    assert memory == {512} and "512 MB" in costs
    default_hours = template["Parameters"]["ScheduleEveryHours"]["Default"]
    assert f"`ScheduleEveryHours` = {default_hours} gives" in costs
    for size in ("10 certificates", "100 certificates", "1,000 certificates"):
        assert f"**{size}**" in costs
    assert "2026-12-01" in costs and "us-east-1" in costs
