"""Schemathesis fuzzes the app's OpenAPI spec in process, on tiny bundles (a content model that takes
new items, and an ID-only one that refuses them): no 5xx, and every response (status code, content
type, headers, body) conforms to the schema.

Each operation is its own test, driven through schemathesis' Hypothesis strategy (its pytest
plugin does not run under pytest 9). The default run is bounded (``FAST_EXAMPLES`` per
operation); ``-m slow`` runs ``SLOW_EXAMPLES``.
"""
from __future__ import annotations

from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from serving_bundles import shared_bundle
from prismrec.serving.app import ServingSettings, create_app
from prismrec.serving.bundle import load_bundle
from prismrec.serving.engine import ServingEngine

FAST_EXAMPLES, SLOW_EXAMPLES = 25, 400
OPERATIONS = ["GET /health", "GET /metrics", "GET /users", "GET /users/{user_id}",
              "GET /users/{user_id}/recommendations", "GET /items", "POST /items", "GET /items/{item_id}",
              "GET /items/{item_id}/image", "GET /items/{item_id}/similar", "GET /items/{item_id}/audience",
              "POST /interactions"]


@pytest.fixture(scope="module", params=["vbpr", "bpr"])
def api_schema(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"fuzz-{request.param}")
    engine = ServingEngine(load_bundle(shared_bundle(request.param, tmp_path_factory)), state_dir=root / "state")
    yield request.param, schemathesis.openapi.from_asgi("/openapi.json",
                                                        create_app(engine, ServingSettings(api_key=None)))
    engine.close()


def operations(schema) -> dict:
    found = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        found[f"{operation.method.upper()} {operation.path}"] = operation
    return found


# POST /items takes two things whose rules a schema cannot state: image bytes (checked by magic bytes and
# a full decode) and `fields`, a JSON object of strings sent as one form field. A schema-valid request that
# breaks them is refused with a message naming the part; every other check still applies to it.
CONTENT_RULES = ("image: send the image as a file part", "the image", "the upload is not a JPEG",
                 "fields must be a JSON object")


def refused_for_content(case, response) -> bool:
    if (case.method.upper(), case.path) != ("POST", "/items") or response.status_code not in (400, 422):
        return False
    body = response.json()
    return body["error"] in ("invalid_input", "invalid_request") and body["detail"].startswith(CONTENT_RULES)


def fuzz(operation, examples: int) -> Counter:
    """Run every check on ``examples`` generated requests; returns how often each status came back."""
    statuses = Counter()

    @given(case=operation.as_strategy())
    @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    def run(case):
        response = case.call()
        statuses[response.status_code] += 1
        excluded = [positive_data_acceptance] if refused_for_content(case, response) else None
        case.validate_response(response, excluded_checks=excluded)

    run()
    return statuses


def test_the_spec_lists_every_operation(api_schema):
    assert sorted(operations(api_schema[1])) == sorted(OPERATIONS)


@pytest.mark.parametrize("name", OPERATIONS)
def test_operation_conforms_to_its_schema(api_schema, name):
    model, schema = api_schema
    statuses = fuzz(operations(schema)[name], FAST_EXAMPLES)
    if name == "POST /items":  # the fuzzer got items in (content model) or the model's refusal (ID-only)
        assert statuses[201 if model == "vbpr" else 409] > 0, statuses


@pytest.mark.slow
@pytest.mark.parametrize("name", OPERATIONS)
def test_operation_conforms_to_its_schema_at_length(api_schema, name):
    fuzz(operations(api_schema[1])[name], SLOW_EXAMPLES)
