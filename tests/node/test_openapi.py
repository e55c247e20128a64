"""Schemathesis against our own OpenAPI on a live devnet: no 5xx, answers match the schema.

Bounded: a fixed number of generated examples per operation keeps it to
seconds in CI. Positive-data acceptance is left out on purpose: a string the
schema allows (an address, a CID) can still fail its checksum, and the API
rightly answers 400 with a code, which the other checks verify.
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


def test_api_conforms_to_its_schema(shared_devnet):
    schema = schemathesis.openapi.from_url(f"{shared_devnet.api}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    assert "/v1/validators" in {operation.path for operation in operations}
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=20,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def conforms(case):
            case.call_and_validate(checks=CHECKS)

        conforms()
