"""The certificates a grid point renews: two names each (apex and wildcard), spread over K hosted zones.

Each tool and each N gets names of its own, so that no run can renew, validate or clean up another's.
"""

from __future__ import annotations

ZONE_TEMPLATE = "bench{index}.test"


def zone_names(count: int) -> list[str]:
    if count < 1:
        raise ValueError(f"at least one hosted zone is needed, got {count}")
    return [ZONE_TEMPLATE.format(index=i + 1) for i in range(count)]


def certificate_names(tool: str, n: int, zones: list[str]) -> list[str]:
    """`n` apex names for `tool` (`ours`, `certbot`), round-robin over `zones`: `ours-n10-003.bench1.test`."""
    return [f"{tool}-n{n}-{i:03d}.{zones[i % len(zones)]}" for i in range(n)]


def domains(apex: str) -> list[str]:
    """The two names of one certificate, apex first (pebble takes the CN from the first SAN)."""
    return [apex, f"*.{apex}"]
