"""Property-based API tests: schemathesis generates requests from the app's own OpenAPI schema.

Every operation is called with valid and invalid inputs; no answer may be a server error, and
every answer must match what the schema documents (status codes, content types, bodies). The
app is reached in-process over ASGI, with its lifespan running, as uvicorn would run it.
"""

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import Case
from schemathesis.config import SchemathesisConfig

from app.main import create_app
from tests.conftest import make_settings

app = create_app(make_settings(gc_freeze=False))
# A request that breaks the schema must be refused: schemathesis accepts its usual 4xx codes,
# plus 413, because an invalid body that is also larger than ALERT_NOTIFICATION_MAX_BYTES is
# refused for its size before anything reads what it says.
REFUSALS = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429"]
config = SchemathesisConfig.from_dict(
    {"checks": {"negative_data_rejection": {"expected-statuses": REFUSALS}}}
)
schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=config)


@schema.parametrize()
# Bounded: 40 examples per operation keep the whole run well under a minute. Derandomized, so
# every run tries the same examples (a red build is reproducible); no example database, so
# nothing is written into the work tree.
@settings(
    max_examples=40,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_conforms_to_its_schema(case: Case[Any]) -> None:
    case.call_and_validate()
