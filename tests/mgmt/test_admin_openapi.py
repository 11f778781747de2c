"""The OpenAPI document describes the admin endpoints as the router serves them."""

from __future__ import annotations

import re

import jsonschema

from hatchway.http.api.adminroutes import ADMIN_ROUTES
from tests.mgmt.conftest import API, Checker


def test_admin_operations_are_documented_fully(check: Checker) -> None:
    doc = check.doc
    for name, schema in doc["components"]["schemas"].items():
        assert name
        jsonschema.Draft202012Validator.check_schema(schema)
    for route in ADMIN_ROUTES:
        op = doc["paths"][API + route.path][route.method.lower()]
        assert "security" not in op  # the document's default: basic or bearer
        assert {"401", "403", "405"} <= set(op["responses"]), route.path
        params = {(p["in"], p["name"]) for p in op.get("parameters", [])}
        for name in re.findall(r"\{([a-z_]+)\}", route.path):
            assert ("path", name) in params
        if route.body is not None:
            assert {"400", "413", "415", "422"} <= set(op["responses"])
        if route.query_model is not None:
            assert {n for kind, n in params if kind == "query"} == set(
                route.query_model.model_fields
            )
            for param in op["parameters"]:
                jsonschema.Draft202012Validator.check_schema(param["schema"])
    audit = doc["paths"][f"{API}/audit"]["get"]["responses"]["200"]["content"]
    assert set(audit) == {"application/json", "application/jsonl", "text/csv"}
