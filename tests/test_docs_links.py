"""The docs a user reads: every relative link resolves, and the generated reference is current."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens, repeats numbered."""
    seen: dict[str, int] = {}
    found = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*$", FENCE.sub("", page.read_text()), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        found.add(slug if count == 0 else f"{slug}-{count}")
        seen[slug] = count + 1
    return found


def links(page: Path) -> list[str]:
    return LINK.findall(FENCE.sub("", page.read_text()))


def test_the_link_finder_sees_links_and_anchors(tmp_path: Path):
    page = tmp_path / "p.md"
    page.write_text("# First deploy\n## Quotas: p4d & g5\n[a](x.md#first-deploy) ![img](i.png)\n"
                    "```\n[not](a-link.md)\n```\n")
    assert links(page) == ["x.md#first-deploy"]
    assert anchors(page) == {"first-deploy", "quotas-p4d--g5"}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves_to_a_file_and_anchor_in_the_repository(page: Path):
    broken = []
    for target in links(page):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...
            continue
        path_part, _, fragment = target.partition("#")
        resolved = (page.parent / unquote(path_part)).resolve() if path_part else page
        if not resolved.is_relative_to(ROOT) or not resolved.exists():
            broken.append(f"{target}: no such file in the repository")
        elif fragment and resolved.suffix == ".md" and fragment not in anchors(resolved):
            broken.append(f"{target}: no heading #{fragment} in {resolved.relative_to(ROOT)}")
    assert broken == []


def test_the_configuration_reference_is_generated_from_the_current_schema():
    generated = subprocess.run([sys.executable, "-m", "config.reference"], cwd=ROOT, capture_output=True, text=True,
                               check=True).stdout
    committed = (ROOT / "docs" / "configuration-reference.md").read_text()
    assert committed == generated, (
        "docs/configuration-reference.md is out of date: run `python -m config.reference > "
        "docs/configuration-reference.md`")


def test_the_reference_lists_every_key_a_user_can_set():
    from config.reference import sections

    keys = {row.key for _, _, rows in sections() for row in rows}
    assert {"retain_data", "storage.encryption", "multi_model.autoscaling.min_capacity",
            "stable_diffusion.compile.revision", "llm.models.<name>.instance_type", "training.shares"} <= keys
