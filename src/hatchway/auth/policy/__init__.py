"""Access rules: compiled at load (load.py), matched purely per request (engine.py)."""

from hatchway.auth.policy.engine import CATALOG_RESOURCE, Decision, Grant, Policy, granted
from hatchway.auth.policy.load import load_rule, load_rules
from hatchway.auth.policy.rules import DEFAULT_RULES, PolicyError, Rule, build_rule

__all__ = [
    "CATALOG_RESOURCE",
    "DEFAULT_RULES",
    "Decision",
    "Grant",
    "Policy",
    "PolicyError",
    "Rule",
    "build_rule",
    "granted",
    "load_rule",
    "load_rules",
]
