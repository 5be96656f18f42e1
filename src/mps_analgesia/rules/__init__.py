"""Clinical rules: one module per clinical area, collected into the default registry.

See :mod:`mps_analgesia.rules._engine` for how a rule is declared and what a check returns.
"""

from ._engine import (
    PASSED,
    RULE_MODULES,
    Context,
    Missing,
    NoLimit,
    Rule,
    RuleRegistry,
    default_rules,
    finding,
    rule,
    validate,
)

__all__ = [
    "PASSED",
    "RULE_MODULES",
    "Context",
    "Missing",
    "NoLimit",
    "Rule",
    "RuleRegistry",
    "default_rules",
    "finding",
    "rule",
    "validate",
]
