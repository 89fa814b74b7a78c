"""A demo hospital: the data its node serves and the ``node.toml`` it runs with."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal


@dataclass
class DemoHospital:
    """A hospital of the demo network and the data its node serves."""

    name: str
    display_name: str
    omop_url: str | None = None
    tabular: dict[str, Path] = field(default_factory=dict)
    approval: Literal["auto", "manual"] = "auto"
    country: str = "GB"
    min_cell_count: int = 5


def node_toml(
    hospital: DemoHospital,
    hub_url: str,
    network_keys: dict[str, str] | None = None,
    ca_bundle: Path | None = None,
) -> str:
    """The ``node.toml`` of a demo hospital: its data, a policy with its approval mode, the network
    trust keys it pins (so it runs only studies signed by an attested requester) and, for an HTTPS hub,
    the certificate to check it against."""
    lines = [
        "[node]",
        f'name = "{hospital.name}"',
        f'hub_url = "{hub_url}"',
        'credential_file = "node.credential"',
        'state_dir = "state"',
        'environment = "development"',
    ]
    if ca_bundle is not None:
        lines.append(f'ca_bundle = "{ca_bundle.resolve()}"')
    lines.append("")
    if hospital.omop_url:
        lines += ["[[sources.omop]]", 'name = "cdm"', f'url = "{hospital.omop_url}"', ""]
    for name, path in hospital.tabular.items():
        lines += ["[[sources.tabular]]", f'name = "{name}"', f'path = "{path.resolve()}"', ""]
    if network_keys:
        pinned = ", ".join(f'"{kid}" = "{key}"' for kid, key in sorted(network_keys.items()))
        lines += ["[trust]", f"network_keys = {{ {pinned} }}", ""]
    lines += [
        "[policy]",
        f"min_cell_count = {hospital.min_cell_count}",
        "",
        "[[policy.rules]]",
        'name = "feasibility counts"',
        'analyses = ["feasibility.*"]',
        f'approval = "{hospital.approval}"',
        "",
        "[[policy.rules]]",
        'name = "statistics and platform checks"',
        'analyses = ["stats.*", "survival.*", "system.*"]',
        f'approval = "{hospital.approval}"',
        "",
        "[[policy.rules]]",
        'name = "benchmarking indicators"',
        'analyses = ["benchmarking.*"]',
        f'approval = "{hospital.approval}"',
        "",
        "[[policy.rules]]",
        'name = "federated learning"',
        'analyses = ["learning.*"]',
        f'approval = "{hospital.approval}"',
        "",
        "[[policy.rules]]",
        'name = "synthetic datasets"',
        'analyses = ["synthetic.*"]',
        'service_types = ["synthetic_dataset"]',
        f'approval = "{hospital.approval}"',
        "",
    ]
    return "\n".join(lines)
