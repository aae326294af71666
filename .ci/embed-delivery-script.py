"""Copy acme_renewer/delivery/files.py into template.yaml's DeliveryCommandDocument, between its heredoc markers.

`make ssm-document` runs it; tests/unit/test_delivery_template.py fails while the two differ. The script on the
hosts is then the very code the unit tests run.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "layers" / "acme_renewer" / "acme_renewer" / "delivery" / "files.py"
TEMPLATE = ROOT / "template.yaml"
MARKER = "ACME_RENEWER_FILES_PY"


def embedded(template: str, source: str) -> str:
    """The template with `source` between the line that opens the heredoc and the line that closes it."""
    if "{{" in source or MARKER in source:
        raise SystemExit(f"{SOURCE.name} must not contain '{{{{' (SSM parameters) or {MARKER}")
    opening = re.search(rf"^( *)cat > \"\$script\" <<'{MARKER}'\n", template, re.MULTILINE)
    if opening is None:
        raise SystemExit(f"template.yaml has no heredoc <<'{MARKER}'")
    indent = opening.group(1)
    closing = template.index(f"\n{indent}{MARKER}\n", opening.end() - 1)
    body = "".join(f"{indent}{line}" if line.strip() else "\n" for line in source.splitlines(keepends=True))
    return template[: opening.end()] + body + template[closing + 1 :]


def main() -> int:
    text = TEMPLATE.read_text()
    updated = embedded(text, SOURCE.read_text())
    if updated != text:
        TEMPLATE.write_text(updated)
        print(f"template.yaml: DeliveryCommandDocument now embeds {SOURCE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
