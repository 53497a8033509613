"""Validate ``neuronx-cc`` flags before a job spends hours failing on a typo.

``neuronx-cc`` rejects unknown options and bad values only when the first graph
compiles: inside a running multi-node training job, or minutes into a compile
job during a deploy. Checking the flags at synth time turns that into a clear
error naming the flag. One implementation for every place that takes flags
(``NEURON_CC_FLAGS`` of training jobs, the compile custom resource's
``compiler_args``). Pure Python: ``config`` uses it without importing CDK.

Facts (docs/aws-limits.md, "Neuron compiler"): ``--optlevel {1,2,3}`` or ``-O1|-O2|-O3``
(``--optlevel O1`` is invalid); ``--target``, ``--model-type``, ``--auto-cast`` and
``--auto-cast-type`` take the values listed below.
"""
from __future__ import annotations

import shlex

# Options taking a value, with the values neuronx-cc accepts (None: any non-empty value).
VALUE_OPTIONS: dict[str, tuple[str, ...] | None] = {
    "--target": ("inf2", "trn1", "trn1n", "trn2"),
    "--model-type": ("generic", "transformer", "unet-inference"),
    "--auto-cast": ("none", "matmult", "all"),
    "--auto-cast-type": ("bf16", "fp16", "tf32", "fp8_e4m3"),
    "--optlevel": ("1", "2", "3"),
    "--distribution-strategy": ("llm-training",),
    "--cache_dir": None,
    "--logfile": None,
    "--verbose": ("debug", "info", "warning", "error", "critical"),
}
# Options without a value.
SWITCHES: tuple[str, ...] = (
    "-O1",
    "-O2",
    "-O3",
    "--enable-mixed-precision-accumulation",
    "--enable-saturate-infinity",
    "--enable-fast-loading-neuron-binaries",
    "--retry_failed_compilation",
)
TRAINIUM_TARGETS = ("trn1", "trn1n")
INFERENTIA2_TARGETS = ("inf2",)


def parse_neuron_cc_flags(flags: str) -> tuple[dict[str, str], list[str]]:
    """Parse ``flags`` into ``({option: value or ""}, problems)``.

    ``--opt value`` and ``--opt=value`` are both accepted; ``-O1`` and
    ``--optlevel 1`` are the same setting (stored as ``--optlevel``) and may
    not both be given.
    """
    try:
        words = shlex.split(flags)
    except ValueError as exc:
        return {}, [f"cannot split {flags!r} into flags: {exc}"]
    parsed: dict[str, str] = {}
    given_as: dict[str, str] = {}
    problems: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        name, has_inline, inline = word.partition("=")
        if name in VALUE_OPTIONS:
            allowed = VALUE_OPTIONS[name]
            if has_inline:
                value = inline
            elif i + 1 < len(words) and not words[i + 1].startswith("-"):
                i += 1
                value = words[i]
            else:
                value = ""
            if not value:
                problems.append(f"{name} needs a value" + (f", one of: {', '.join(allowed)}" if allowed else ""))
            elif allowed is not None and value not in allowed:
                problems.append(f"{name} got {value!r}, allowed: {', '.join(allowed)}")
            else:
                _store(parsed, given_as, problems, name, value, word)
        elif word in SWITCHES:
            key, value = ("--optlevel", word[2:]) if word.startswith("-O") else (word, "")
            _store(parsed, given_as, problems, key, value, word)
        else:
            known = ", ".join(sorted(VALUE_OPTIONS) + list(SWITCHES))
            problems.append(f"unknown neuronx-cc option {word!r}; known options: {known}")
        i += 1
    return parsed, problems


def _store(parsed: dict[str, str], given_as: dict[str, str], problems: list[str], key: str, value: str, word: str) -> None:
    if key in parsed:
        what = "the optimisation level" if key == "--optlevel" else key
        problems.append(f"{word!r} repeats {what} (already given as {given_as[key]!r})")
        return
    parsed[key] = value
    given_as[key] = word


def neuron_cc_flag_problems(flags: str, *, allowed_targets: tuple[str, ...] | None = None) -> list[str]:
    """Every problem in ``flags``; ``allowed_targets`` restricts ``--target`` when it is given."""
    parsed, problems = parse_neuron_cc_flags(flags)
    target = parsed.get("--target")
    if allowed_targets is not None and target is not None and target not in allowed_targets:
        problems.append(f"--target got {target!r}, allowed here: {', '.join(allowed_targets)} (where the graphs will run)")
    return problems


def validate_neuron_cc_flags(
    flags: str, *, setting: str = "neuron_cc_flags", allowed_targets: tuple[str, ...] | None = None
) -> str:
    """Return ``flags`` unchanged, or raise ``ValueError`` naming the setting and each problem."""
    problems = neuron_cc_flag_problems(flags, allowed_targets=allowed_targets)
    if problems:
        raise ValueError(f"{setting}: {flags!r} is invalid: " + "; ".join(problems))
    return flags
