"""Turn the ``access:`` list (from config.yml, or rows from any store) into compiled rules.

Everything is checked here, once, so a typo stops the start instead of silently denying
(or allowing) requests later. The accepted shape, one mapping per rule::

    - {name: anonymous, type: registry, action: pull}        # everyone may pull anything
    - {name: [alice, bob], type: registry, action: [pull, push]}
    - {group: "ci-*", repository: "team/*", action: "*"}
    - {repository: "${account}/*", action: [pull, push, delete]}   # no name: every account
    - {group: ops, type: registry, action: catalog}           # may list the catalog

Keys: ``name`` (account glob such as ``"*"``, which never matches anonymous; or
``anonymous``, which means everyone), ``group`` (group glob), ``type``
(``registry`` = every repository; ``repository``, the default when ``repository:`` is given),
``repository`` (glob, may use ``${account}``), ``action``/``actions`` (``pull``, ``push``,
``delete``, ``*``, ``catalog``; a list or ``pull,push``), ``comment``. Strings or lists of
strings; ``name`` and ``group`` both given must both match. Quote ``"*"`` in YAML, where a
bare ``*`` starts an alias.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from hatchway.auth.policy.rules import (
    ACCOUNT,
    ANONYMOUS_NAME,
    CATALOG,
    REPOSITORY_ACTIONS,
    PolicyError,
    Rule,
    build_rule,
)

KEYS = ("name", "group", "type", "repository", "action", "actions", "comment")
ACTIONS = (*REPOSITORY_ACTIONS, CATALOG, "*")
# Repository names are [a-z0-9._/-] (plus host:port); a pattern outside that never matches.
_REPOSITORY_GLOB = re.compile(r"[A-Za-z0-9._/:*?-]+")
_VARIABLE = re.compile(r"\$\{[^}]*\}?")


def load_rules(raw: Iterable[Mapping[str, Any]] | None, *, prefix: str = "rule") -> list[Rule]:
    """Compile rules in order, labelled ``"{prefix} {n}"`` (1-based) for decisions and errors.

    Raises :class:`PolicyError` naming the first bad rule and key.
    """
    if raw is None:
        return []
    if isinstance(raw, Mapping | str | bytes):
        raise PolicyError("access: expected a list of rules")
    return [_rule(f"{prefix} {n}", item) for n, item in enumerate(raw, start=1)]


def load_rule(label: str, item: object) -> Rule:
    """Compile one rule (say, one kept in the database) under its own ``label``."""
    return _rule(label, item)


def _rule(label: str, item: object) -> Rule:
    where = f"access {label}"
    if not isinstance(item, Mapping):
        raise PolicyError(f"{where}: expected a mapping such as {{name: alice, action: pull}}")
    unknown = sorted(str(k) for k in item if k not in KEYS)
    if unknown:
        raise PolicyError(f"{where}: unknown key {unknown[0]!r}; expected one of {', '.join(KEYS)}")
    if "action" in item and "actions" in item:
        raise PolicyError(f"{where}: give either 'action' or 'actions', not both")
    if "comment" in item and not isinstance(item["comment"], str):
        raise PolicyError(f"{where}: 'comment' must be a string")
    names = _strings(where, "name", item.get("name"))
    groups = _strings(where, "group", item.get("group"))
    for key, values in (("name", names), ("group", groups)):
        for value in values or ():
            if "${" in value:
                raise PolicyError(f"{where}: {key} {value!r}: variables only work in repository")
    if names is not None and ANONYMOUS_NAME in names and groups is not None:
        raise PolicyError(f"{where}: 'group' cannot be combined with name 'anonymous'")
    repository = _repository(where, item)
    action_key = "actions" if "actions" in item else "action"
    actions = _strings(where, action_key, item.get(action_key), split=True)
    if actions is None:
        raise PolicyError(f"{where}: missing 'action' (pull, push, delete, catalog or *)")
    for action in actions:
        if action not in ACTIONS:
            raise PolicyError(
                f"{where}: {action_key} {action!r} is not one of {', '.join(ACTIONS)}"
            )
        if action == CATALOG and repository is not None:
            raise PolicyError(f"{where}: {action_key} 'catalog' needs type: registry")
    return build_rule(label, names=names, groups=groups, repository=repository, actions=actions)


def _repository(where: str, item: Mapping[str, Any]) -> str | None:
    """The repository glob, or ``None`` for the whole registry."""
    kind = item.get("type")
    pattern = item.get("repository")
    if kind is None and pattern is None:
        raise PolicyError(
            f"{where}: missing 'type' (registry: every repository) or 'repository' (a glob)"
        )
    if kind is not None and kind not in ("registry", "repository"):
        raise PolicyError(f"{where}: type {kind!r} is not 'registry' or 'repository'")
    if kind == "registry":
        if pattern is not None:
            raise PolicyError(f"{where}: 'repository' needs type: repository, not registry")
        return None
    if pattern is None:
        raise PolicyError(f"{where}: type: repository needs a 'repository' glob")
    if not isinstance(pattern, str):
        raise PolicyError(f"{where}: repository must be a string glob")
    for variable in _VARIABLE.findall(pattern):
        if variable != ACCOUNT:
            raise PolicyError(f"{where}: repository {pattern!r}: unknown variable {variable!r}")
    if not _REPOSITORY_GLOB.fullmatch(pattern.replace(ACCOUNT, "x")):
        raise PolicyError(
            f"{where}: repository {pattern!r} is not a valid glob: use repository-name "
            "characters (a-z 0-9 . _ - /) with * and ?"
        )
    return pattern


def _strings(where: str, key: str, value: object, *, split: bool = False) -> list[str] | None:
    if value is None:
        return None
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values:
        raise PolicyError(f"{where}: {key} must be a string or a non-empty list of strings")
    out: list[str] = []
    for entry in values:
        if not isinstance(entry, str) or not entry.strip() or entry != entry.strip():
            raise PolicyError(f"{where}: {key} {entry!r} must be a non-empty string")
        if split:
            out.extend(part.strip() for part in entry.split(","))
        else:
            out.append(entry)
    if split and not all(out):
        raise PolicyError(f"{where}: {key} has an empty entry")
    return out
