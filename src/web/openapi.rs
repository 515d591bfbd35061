//! OpenAPI 3 for `/api/v1`, generated from the handlers' annotations (utoipa): the same
//! `routes!` calls register the axum routes and their documentation, and the request and
//! answer bodies are the types the handlers read and write, so they cannot drift. What
//! every operation may answer besides its own statuses (a malformed body, no token, the
//! rate limit, overload) is added here once.

use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{Modify, OpenApi};

pub use super::error::{FieldError, Problem};

/// The media type of every error answer (RFC 9457).
pub const PROBLEM_JSON: &str = "application/problem+json";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "avvik API",
        description = "Reporting and handling of information-security deviations. Staff routes take `Authorization: Bearer <token>` (`avvik token create --user EMAIL`). Errors are application/problem+json (RFC 9457) with `detail` in English and `detail_sv` in Swedish; 422 lists every bad field in `errors`."
    ),
    components(schemas(Problem, FieldError)),
    modifiers(&BearerAuth),
    tags((name = "report", description = "Public reporting"), (name = "staff", description = "Case handling (bearer token)"), (name = "audit", description = "Read-only audit views (auditor or CISO)"))
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Error answers are `application/problem+json` with a `Problem`; every operation may be
/// refused by the rate limit (429) or when the service is overloaded or cannot write
/// (503), every secured one without a valid token (401), every one with parameters or a
/// body when one cannot be read (400), and every one with a body when it is too large (413). Command bodies take no other fields.
/// Runs on the finished document (after the routers added their operations).
pub struct ProblemAnswers;

fn problem_response(description: &str) -> RefOr<Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                PROBLEM_JSON,
                Content::new(Some(RefOr::Ref(Ref::from_schema_name("Problem")))),
            )
            .build(),
    )
}

fn is_problem(content: &RefOr<Content>) -> bool {
    matches!(content, RefOr::T(Content { schema: Some(RefOr::Ref(r)), .. }) if r.ref_location.ends_with("/Problem"))
}

fn fix_operation(op: &mut Operation, secured_by_default: bool) {
    for response in op.responses.responses.values_mut() {
        if let RefOr::T(r) = response {
            if r.content.get("application/json").is_some_and(is_problem) {
                if let Some(content) = r.content.shift_remove("application/json") {
                    r.content.insert(PROBLEM_JSON.to_string(), content);
                }
            }
        }
    }
    let secured = op
        .security
        .as_ref()
        .map_or(secured_by_default, |s| !s.is_empty());
    let mut add = |status: &str, description: &str| {
        op.responses
            .responses
            .entry(status.to_string())
            .or_insert_with(|| problem_response(description));
    };
    if secured {
        add("401", "No valid bearer token");
    }
    add("429", "Too many requests from this address");
    add(
        "503",
        "Overloaded or unable to write now; retry after Retry-After",
    );
    let has_parameters = op.parameters.as_ref().is_some_and(|p| !p.is_empty());
    if has_parameters || op.request_body.is_some() {
        add(
            "400",
            "A parameter or the body cannot be read (e.g. the body is not JSON)",
        );
    }
    if op.request_body.is_some() {
        add("413", "The body is too large");
    }
    let json_body = op
        .request_body
        .as_ref()
        .is_some_and(|b| matches!(b, RefOr::T(b) if b.content.contains_key("application/json")));
    if json_body {
        add(
            "415",
            "The body is not declared as JSON (send Content-Type: application/json)",
        );
    }
}

/// The request bodies that refuse fields they do not name.
const CLOSED_BODIES: &[&str] = &[
    "ReportBody",
    "ReporterBody",
    "ClassificationBody",
    "DecisionBody",
    "MeasureBody",
    "CompleteMeasureBody",
    "CommentBody",
    "CloseBody",
    "ReopenBody",
    "FilingBody",
    "AwarenessBody",
    "HandlingEndedBody",
    "ResolveBody",
    "IssueBody",
];

impl Modify for ProblemAnswers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let secured_by_default = openapi.security.as_ref().is_some_and(|s| !s.is_empty());
        for item in openapi.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                fix_operation(op, secured_by_default);
            }
        }
        if let Some(components) = openapi.components.as_mut() {
            for name in CLOSED_BODIES {
                if let Some(RefOr::T(utoipa::openapi::schema::Schema::Object(o))) =
                    components.schemas.get_mut(*name)
                {
                    o.additional_properties = Some(Box::new(
                        utoipa::openapi::schema::AdditionalProperties::FreeForm(false),
                    ));
                }
            }
        }
    }
}
