"""Access rules: loading, defaults, anonymous, admin, groups, ${account}, least privilege, PATs."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from hatchway.auth.access import Access, Resource
from hatchway.auth.policy import (
    CATALOG_RESOURCE,
    DEFAULT_RULES,
    Policy,
    PolicyError,
    granted,
    load_rules,
)
from hatchway.auth.principal import ANONYMOUS, Principal

Rules = list[dict[str, Any]]
READ_ONLY_FOR_ALL: Rules = [{"name": "anonymous", "type": "registry", "action": "pull"}]
OWN_NAMESPACE: Rules = [{"repository": "${account}/*", "action": ["pull", "push", "delete"]}]
TEAM: Rules = [
    {"name": "alice", "repository": "alice/*", "action": ["pull", "push"]},
    {"group": "ci-*", "repository": "team/*", "action": ["pull", "push"]},
    {"name": "bob", "group": "ops", "type": "registry", "action": "delete"},
    {"name": ["carol", "d?ve"], "repository": "team/?", "action": "pull"},
    {"group": "ops", "type": "registry", "action": "catalog"},
    {"name": "root*", "type": "registry", "action": "*"},
]


def user(
    name: str, *groups: str, admin: bool = False, scopes: list[str] | None = None
) -> Principal:
    token = None if scopes is None else tuple(scope(s) for s in scopes)
    return Principal(subject=name, groups=frozenset(groups), admin=admin, token_scopes=token)


def scope(text: str) -> Access:
    kind, name, actions = text.split(":")  # glob names are not valid scope-grammar names
    return Access(Resource(kind, name), frozenset(actions.split(",")))


def repo(name: str) -> Resource:
    return Resource("repository", name)


ALICE, BOB, CI = user("alice"), user("bob", "ops"), user("ci", "ci-builders")

DECIDE = [
    # No rules: own namespace only, anonymous nothing.
    ("default-own", [], ALICE, "alice/app", "push", "default rule"),
    ("default-own-nested", [], ALICE, "alice/a/b", "delete", "default rule"),
    ("default-own-star", [], ALICE, "alice/app", "*", "default rule"),
    ("default-other", [], ALICE, "bob/app", "pull", None),
    ("default-bare-name", [], ALICE, "alice", "pull", None),
    ("default-prefix", [], user("ali"), "alice/app", "pull", None),
    ("default-anonymous", [], ANONYMOUS, "alice/app", "pull", None),
    # Anonymous rules apply to everyone; once rules exist the defaults are gone.
    ("anon-pull", READ_ONLY_FOR_ALL, ANONYMOUS, "x/y", "pull", "rule 1"),
    ("anon-push", READ_ONLY_FOR_ALL, ANONYMOUS, "x/y", "push", None),
    ("anon-extends", READ_ONLY_FOR_ALL, ALICE, "bob/app", "pull", "rule 1"),
    ("no-defaults", READ_ONLY_FOR_ALL, ALICE, "alice/app", "push", None),
    ("ns-push", READ_ONLY_FOR_ALL + OWN_NAMESPACE, ALICE, "alice/app", "push", "rule 2"),
    ("ns-other", READ_ONLY_FOR_ALL + OWN_NAMESPACE, ALICE, "bob/app", "push", None),
    ("ns-anon", READ_ONLY_FOR_ALL + OWN_NAMESPACE, ANONYMOUS, "alice/app", "push", None),
    # Admins may do anything.
    ("admin", READ_ONLY_FOR_ALL, user("x", admin=True), "any/repo", "*", "admin"),
    ("admin-no-rules", [], user("x", admin=True), "bob/app", "delete", "admin"),
    # Names, groups, globs.
    ("name", TEAM, ALICE, "alice/app", "push", "rule 1"),
    ("name-action", TEAM, ALICE, "alice/app", "delete", None),
    ("name-repo", TEAM, ALICE, "team/app", "pull", None),
    ("group-glob", TEAM, CI, "team/a/b", "push", "rule 2"),
    ("group-miss", TEAM, user("ci", "dev"), "team/app", "pull", None),
    ("name-and-group", TEAM, BOB, "any/thing", "delete", "rule 3"),
    ("name-not-group", TEAM, user("bob"), "any/thing", "delete", None),
    ("group-not-name", TEAM, user("eve", "ops"), "any/thing", "delete", None),
    ("name-list", TEAM, user("carol"), "team/x", "pull", "rule 4"),
    ("name-glob-?", TEAM, user("dave"), "team/x", "pull", "rule 4"),
    ("repo-glob-?", TEAM, user("dave"), "team/xy", "pull", None),
    ("star-crosses-slash", TEAM, user("rooty"), "a/b/c", "delete", "rule 6"),
    ("plugin-type", TEAM, ALICE, "alice/plugin", "pull", "rule 1"),
    # ${account} cannot be abused by glob characters in an account name.
    ("account-star", OWN_NAMESPACE, user("*"), "bob/app", "push", None),
    ("account-question", OWN_NAMESPACE, user("b?b"), "bob/app", "push", None),
    ("account-bracket", OWN_NAMESPACE, user("[b]ob"), "bob/app", "push", None),
    ("account-prefix-glob", OWN_NAMESPACE, user("bo*"), "bob/app", "push", None),
    ("account-slash-star", OWN_NAMESPACE, user("bob/*"), "bob/x/app", "push", None),
]


@pytest.mark.parametrize(
    ("rules", "principal", "name", "action", "rule"),
    [case[1:] for case in DECIDE],
    ids=[case[0] for case in DECIDE],
)
def test_decide(
    rules: Rules, principal: Principal, name: str, action: str, rule: str | None
) -> None:
    resource = Resource("repository(plugin)", name) if "plugin" in name else repo(name)
    decision = Policy(load_rules(rules)).decide(principal, resource, action)
    assert (decision.allowed, decision.rule) == (rule is not None, rule), decision.reason


def test_decision_names_the_rule_and_the_denial() -> None:
    policy = Policy(load_rules(TEAM))
    allow = policy.decide(ALICE, repo("alice/app"), "pull")
    assert str(allow) == "allow: rule 1 (name: alice, repository: alice/*, actions: pull,push)"
    assert str(policy.decide(ALICE, repo("team/app"), "push")) == (
        "deny: no rule allows push on team/app"
    )
    assert str(policy.decide(ALICE, repo("x/y"), "fly")).startswith("deny: 'fly' is not")
    assert str(DEFAULT_RULES[0]) == (
        "default rule (any signed-in account, repository: ${account}/*, actions: pull,push,delete)"
    )


def test_defaults_apply_only_without_any_rules() -> None:
    assert Policy().effective_rules == DEFAULT_RULES
    assert Policy(load_rules(None)).effective_rules == DEFAULT_RULES
    assert Policy(load_rules([])).effective_rules == DEFAULT_RULES
    merged = Policy().merged(load_rules(READ_ONLY_FOR_ALL, prefix="db rule"))
    assert merged.rules == merged.effective_rules
    assert merged.decide(ALICE, repo("alice/app"), "push").allowed is False
    both = Policy(load_rules(READ_ONLY_FOR_ALL)).merged(load_rules(OWN_NAMESPACE, prefix="db"))
    assert both.decide(ALICE, repo("alice/app"), "push").rule == "db 1"


CATALOG = [
    ("admin", [], user("x", admin=True), "admin"),
    ("nobody-by-default", [], ALICE, None),
    ("catalog-action", TEAM, BOB, "rule 5"),
    ("registry-star", TEAM, user("root"), "rule 6"),
    ("registry-pull-is-not-catalog", READ_ONLY_FOR_ALL, ALICE, None),
    ("repository-star-is-not-catalog", [{"repository": "*", "action": "*"}], ALICE, None),
    ("anonymous-catalog", [{"name": "anonymous", "type": "registry", "action": "catalog"}],
     ANONYMOUS, "rule 1"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("rules", "principal", "rule"), [c[1:] for c in CATALOG], ids=[c[0] for c in CATALOG]
)
def test_catalog(rules: Rules, principal: Principal, rule: str | None) -> None:
    policy = Policy(load_rules(rules))
    [grant] = policy.authorize(principal, [Access(CATALOG_RESOURCE, frozenset({"*"}))])
    assert grant.access.actions == (frozenset({"*"}) if rule else frozenset())
    assert grant.rules == ((rule,) if rule else ())
    assert policy.decide(principal, CATALOG_RESOURCE, "push").allowed is False
    assert policy.decide(principal, Resource("registry", "other"), "*").allowed is False


def test_authorize_grants_the_intersection_and_keeps_empty_grants() -> None:
    policy = Policy(load_rules(READ_ONLY_FOR_ALL + TEAM))
    requested = [
        Access(repo("alice/app"), frozenset({"*"})),
        Access(repo("bob/app"), frozenset({"pull", "push"})),
        Access(repo("team/app"), frozenset({"push", "fly"})),
        Access(Resource("artifact", "x"), frozenset({"pull"})),
        Access(repo("alice/empty"), frozenset()),
    ]
    grants = policy.authorize(ALICE, requested)
    assert [g.requested for g in grants] == requested
    assert [sorted(g.access.actions) for g in grants] == [["pull", "push"], ["pull"], [], [], []]
    assert grants[0].rules == ("rule 1", "rule 2")  # the first rule that allows each action
    assert grants[0].reason == (
        "pull allowed by rule 1 (name: anonymous, type: registry, actions: pull); "
        "push allowed by rule 2 (name: alice, repository: alice/*, actions: pull,push); "
        "delete denied: no rule allows delete on alice/app"
    )
    assert "fly ignored" in grants[2].reason
    assert "push denied" in grants[2].reason
    assert grants[4].reason == "nothing requested"
    assert granted(grants) == [grants[0].access, grants[1].access]
    assert [g.granted for g in grants] == [True, True, False, False, False]


PAT = [
    ("narrows", ["repository:alice/*:pull"], False, "alice/app", "pull", "allow"),
    ("narrows-push", ["repository:alice/*:pull"], False, "alice/app", "push", "token's scopes"),
    ("star-actions", ["repository:alice/app:*"], False, "alice/app", "delete", "allow"),
    ("glob-miss", ["repository:alice/a?p:*"], False, "alice/app2", "pull", "token's scopes"),
    ("never-widens", ["repository:*:*"], False, "bob/app", "pull", "no rule"),
    ("admin-narrowed", ["repository:team/*:pull"], True, "team/app", "push", "token's scopes"),
    ("admin-within", ["repository:team/*:pull"], True, "team/app", "pull", "allow"),
    ("empty-scopes", [], True, "team/app", "pull", "token's scopes"),
    ("catalog-scope", ["registry:catalog:*"], True, "registry:catalog", "*", "allow"),
    ("catalog-needs-scope", ["repository:*:*"], True, "registry:catalog", "*", "token's scopes"),
]


@pytest.mark.parametrize(
    ("scopes", "admin", "name", "action", "outcome"), [c[1:] for c in PAT], ids=[c[0] for c in PAT]
)
def test_personal_access_token_scopes(
    scopes: list[str], admin: bool, name: str, action: str, outcome: str
) -> None:
    principal = user("alice", admin=admin, scopes=scopes)
    resource = CATALOG_RESOURCE if name == "registry:catalog" else repo(name)
    decision = Policy().decide(principal, resource, action)
    assert decision.allowed is (outcome == "allow"), decision.reason
    assert outcome == "allow" or outcome in decision.reason


def test_pat_grant_carries_only_the_scoped_actions() -> None:
    principal = user("alice", scopes=["repository:alice/*:pull,delete"])
    [grant] = Policy().authorize(principal, [Access(repo("alice/app"), frozenset({"*"}))])
    assert grant.access.actions == frozenset({"pull", "delete"})
    assert "push denied: the token's scopes do not allow push on alice/app" in grant.reason


def test_matching_compiles_nothing_per_request(monkeypatch: pytest.MonkeyPatch) -> None:
    policy = Policy(load_rules(TEAM + OWN_NAMESPACE))
    pat = user("alice", scopes=["repository:alice/*:*"])
    calls = [(ALICE, "alice/app"), (CI, "team/x/y"), (user("zed"), "zed/app"), (pat, "alice/a")]
    for principal, name in calls:  # warm the per-account and per-scope caches
        policy.decide(principal, repo(name), "push")

    def boom(*args: object, **kwargs: object) -> re.Pattern[str]:
        raise AssertionError("regex compiled on the request path")

    monkeypatch.setattr(re, "compile", boom)
    for principal, name in calls:
        assert policy.decide(principal, repo(name), "push").allowed


ERRORS = [
    ("unknown key", {"nmae": "alice", "type": "registry", "action": "pull"}, "unknown key 'nmae'"),
    ("bad action", {"type": "registry", "action": "pul"}, "action 'pul' is not one of"),
    ("bad actions", {"type": "registry", "actions": ["pull", "PUSH"]}, "actions 'PUSH'"),
    ("empty action", {"type": "registry", "action": []}, "action must be"),
    ("no action", {"type": "registry"}, "missing 'action'"),
    ("both", {"type": "registry", "action": "pull", "actions": "pull"}, "either 'action'"),
    ("catalog on repo", {"repository": "a/*", "action": "catalog"}, "'catalog' needs type"),
    ("bad glob", {"repository": "team/[ab]", "action": "pull"}, "'team/[ab]' is not a valid"),
    ("space glob", {"repository": "team app", "action": "pull"}, "not a valid glob"),
    ("variable", {"repository": "${user}/*", "action": "pull"}, "unknown variable '${user}'"),
    ("var in name", {"name": "${account}", "type": "registry", "action": "pull"}, "name"),
    ("no type", {"name": "alice", "action": "pull"}, "missing 'type'"),
    ("bad type", {"type": "repo", "repository": "a", "action": "pull"}, "type 'repo'"),
    ("registry+repo", {"type": "registry", "repository": "a", "action": "pull"}, "'repository'"),
    ("repo no glob", {"type": "repository", "action": "pull"}, "needs a 'repository'"),
    ("name type", {"name": 3, "type": "registry", "action": "pull"}, "name must be a string"),
    ("name entry", {"name": ["a", 3], "type": "registry", "action": "pull"}, "name 3 must be"),
    ("blank group", {"group": " ", "type": "registry", "action": "pull"}, "group ' '"),
    ("anon+group", {"name": "anonymous", "group": "g", "type": "registry", "action": "pull"},
     "'group' cannot"),
    ("comment", {"type": "registry", "action": "pull", "comment": 1}, "'comment'"),
    ("not a mapping", "pull", "expected a mapping"),
]  # fmt: skip


@pytest.mark.parametrize(("rule", "message"), [c[1:] for c in ERRORS], ids=[c[0] for c in ERRORS])
def test_load_errors_name_the_rule_and_key(rule: object, message: str) -> None:
    good = {"name": "x", "type": "registry", "action": "pull", "comment": "fine"}
    with pytest.raises(PolicyError, match=r"^access rule 2: ") as info:
        load_rules([good, rule])  # type: ignore[list-item]
    assert message in str(info.value)


def test_load_accepts_the_usual_shapes() -> None:
    rules = load_rules(
        yaml.safe_load(
            """
            - {name: anonymous, type: registry, action: pull}
            - {name: user1, type: registry, action: [pull, push]}
            - {type: repository, repository: "${account}/*", actions: "pull,push"}
            """
        )
    )
    assert [r.label for r in rules] == ["rule 1", "rule 2", "rule 3"]
    assert rules[2].actions == frozenset({"pull", "push"})
    not_a_list: Any = {"name": "x"}
    with pytest.raises(PolicyError, match="expected a list"):
        load_rules(not_a_list)
