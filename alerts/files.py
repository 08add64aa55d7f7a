"""Where the alerting configuration lives, in a checkout and in an installed wheel alike.

The rule files, `prometheus.yml` and `alertmanager.yml` ship inside the `alerts` package (package
data), so `market-stack` finds them wherever it was installed. They are located through
`importlib.resources`, never relative to a source tree. Prometheus, Alertmanager, promtool and
amtool read them by path, so the package must be installed as plain files, which pip always does.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Final


def package_dir() -> Path:
    """The directory of the installed `alerts` package."""
    root = files(__package__ or "alerts")
    if not isinstance(root, Path):
        raise RuntimeError(
            f"the alerts package is not installed as plain files ({root!r}): Prometheus and "
            "Alertmanager need paths to its configuration"
        )
    return root


ALERTS_DIR: Final = package_dir()
PROMETHEUS_CONFIG: Final = ALERTS_DIR / "prometheus.yml"
ALERTMANAGER_CONFIG: Final = ALERTS_DIR / "alertmanager.yml"
RULES_DIR: Final = ALERTS_DIR / "rules"
RULES_FILE: Final = RULES_DIR / "market-api.rules.yml"
FLEET_RULES_FILE: Final = RULES_DIR / "market-api-fleet.rules.yml"
