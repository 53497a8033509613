"""The ``runtime`` key every workload section shares: which runtime profile its containers run.

Profiles live in ``runtime_profiles/<workload>/<name>/`` (see docs/runtime-profiles.md). The
key is validated against the profiles that exist for the workload, so a typo lists the choices.
"""
from __future__ import annotations

from typing import Any

from config.typed import setting
from runtime_profiles import DEFAULT_PROFILE, RuntimeProfile, load_profile, profile_names


def runtime_setting(workload: str) -> Any:
    """A ``runtime`` field: ``current`` by default, any profile of ``workload`` allowed."""
    return setting(
        DEFAULT_PROFILE,
        choices=profile_names(workload),
        doc=f"Runtime profile (runtime_profiles/{workload}/): current is supported; seed reproduces the "
        "documented stack and warns that it is end-of-life.",
    )


def profile_for(workload: str, name: str) -> RuntimeProfile:
    """The validated profile named by a section's ``runtime`` key."""
    return load_profile(workload, name)


def image_tag_problems(profile: RuntimeProfile, tag: str | None, key: str = "image_tag") -> list[tuple[str, str]]:
    """An explicit tag must be one whose contract the profile verified (None: the profile's default)."""
    problem = None if tag is None else profile.tag_problem(tag)
    return [(key, problem)] if problem else []
