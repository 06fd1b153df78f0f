"""The default lab: what `lb-lab serve` started, as a lesson's setup, to go back to after one.

A lesson may leave pools, rules, extra backends and knobs behind; the `default_lab`
command puts the lab back to plain b1..bN with the algorithm, mode and traffic it
was started with, exactly as opening a lesson would (lab.web.lesson_setup).
"""

from __future__ import annotations

from typing import Any

from lab.lessons.settings import LabSetup, parse_setup


def default_setup(settings: Any) -> LabSetup:
    """The setup of the lab `settings` (a LabSettings) describe."""
    return parse_setup(
        {
            "backends": settings.backends,
            "balancer": {"algorithm": settings.algorithm, "mode": settings.mode},
            "traffic": {
                "rate": settings.rate,
                "clients": settings.clients,
                "paused": settings.paused,
            },
        }
    )
