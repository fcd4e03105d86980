"""The one NinjaAPI: authentication, JSON, error shapes and pagination for every router."""

import pydantic
from ninja import NinjaAPI, Schema, Status
from ninja.errors import ValidationError

from core.auth import api_auth
from core.errors import install_error_handlers
from core.health import health_report
from core.renderers import OrjsonParser, OrjsonRenderer


class BillingAPI(NinjaAPI):
    def validation_error_from_error_contexts(self, error_contexts) -> ValidationError:
        """Ninja's errors, keeping the rejected input (for enum messages), and with a
        missing body reported field by field as DRF does."""
        errors = []
        for context in error_contexts:
            model = context.model
            source = model.__ninja_param_source__
            for error in context.pydantic_validation_error.errors(include_url=False):
                loc = model.__ninja_flatten_map_reverse__.get(error["loc"], error["loc"])
                if source == "body" and error["type"] == "missing" and len(loc) == 1:
                    errors.extend(_missing_body_errors(model, loc[0]))
                    continue
                errors.append({**error, "loc": (source, *loc)})
        return ValidationError(errors)


def _missing_body_errors(model, param_name: str) -> list[dict]:
    schema = model.model_fields[param_name].annotation
    try:
        schema.model_validate({})
    except pydantic.ValidationError as error:
        return [{**e, "loc": ("body", param_name, *e["loc"])} for e in error.errors()]
    except AttributeError:
        pass
    return [{"type": "missing", "loc": ("body",), "msg": "This field is required."}]


api = BillingAPI(
    title="ISP billing API",
    version="1",
    description="Billing backend for internet service providers (staff app contract).",
    auth=api_auth,
    renderer=OrjsonRenderer(),
    parser=OrjsonParser(),
    urls_namespace="api",
)
install_error_handlers(api)


class HealthOut(Schema):
    status: str
    database: str
    broker: str
    workers: int | str
    routers: dict[str, int] | None = None  # *extra*: {"enabled", "failing"}


@api.get("/health", auth=None, response={200: HealthOut, 503: HealthOut}, tags=["meta"])
def health(request):
    report, healthy = health_report()
    return Status(200 if healthy else 503, report)


api.add_router("/users", "accounts.api.router")
api.add_router("/packages", "billing.api.packages")
api.add_router("/customers", "billing.api.customers")
api.add_router("/payments", "billing.api.payments")
api.add_router("/dashboard", "billing.api.dashboard")
api.add_router("/tasks", "billing.api.tasks")
api.add_router("/routers", "billing.api.routers")
api.add_router("/me", "billing.api.me")
api.add_router("/online-payments", "billing.api.online_payments")
