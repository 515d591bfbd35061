//! OpenAPI 3 for `/api/v1`, generated from the handlers' annotations (utoipa): the same
//! `routes!` calls register the axum routes and their documentation, so they cannot drift.

#![allow(dead_code)] // the body types exist for their schemas; handlers parse bodies field by field

use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "avvik API",
        description = "Reporting and handling of information-security deviations. Staff routes take `Authorization: Bearer <token>` (`avvik token create --user EMAIL`). Errors are application/problem+json (RFC 9457) with `detail` in English and `detail_sv` in Swedish; 422 lists every bad field in `errors`."
    ),
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

#[derive(ToSchema)]
pub struct ReporterBody {
    pub name: String,
    pub email: String,
}

/// A new deviation. Times are RFC 3339; absent `reporter` means anonymous.
#[derive(ToSchema)]
pub struct ReportBody {
    pub title: String,
    pub description: String,
    pub occurred_at: Option<String>,
    pub discovered_at: Option<String>,
    pub sector: Option<String>,
    pub asset: Option<String>,
    pub personal_data: Option<bool>,
    pub reporter: Option<ReporterBody>,
}

#[derive(Serialize, ToSchema)]
pub struct ReportCreated {
    pub id: uuid::Uuid,
    /// AVV-YYYY-NNNN
    pub reference: String,
    /// The reporter's private status token (shown once).
    pub status_token: String,
    /// Whether a receipt is e-mailed: only to addresses in `mail.receipt_domains`.
    pub receipt_emailed: bool,
}

/// Consequence levels 1 (måttlig) … 4 (synnerligen allvarlig) per affected aspect.
#[derive(ToSchema)]
pub struct AspectsBody {
    pub confidentiality: Option<u8>,
    pub integrity: Option<u8>,
    pub availability: Option<u8>,
    pub traceability: Option<u8>,
}

#[derive(ToSchema)]
pub struct ClassificationBody {
    /// "minor" or "major"
    pub severity: String,
    pub aspects: Option<AspectsBody>,
    /// One of the configured categories.
    pub category: String,
    /// "yes", "no" or "investigating"
    pub personal_data_breach: String,
    pub nis2_significant: bool,
    pub rationale: Option<String>,
}

#[derive(ToSchema)]
pub struct DecisionBody {
    pub text: String,
}

#[derive(ToSchema)]
pub struct MeasureBody {
    pub description: String,
    pub owner: String,
    /// YYYY-MM-DD
    pub due: String,
}

#[derive(Serialize, ToSchema)]
pub struct MeasureCreated {
    pub measure_id: uuid::Uuid,
    pub deviation: serde_json::Value,
}

#[derive(ToSchema)]
pub struct CompleteMeasureBody {
    pub note: Option<String>,
}

#[derive(ToSchema)]
pub struct CommentBody {
    pub text: String,
    pub to_reporter: Option<bool>,
}

#[derive(ToSchema)]
pub struct CloseBody {
    pub resolution: String,
}

#[derive(ToSchema)]
pub struct ReopenBody {
    pub reason: String,
}

/// Either a filing (`authority`, `filed_at`, optional `their_reference`) or a reasoned
/// decision not to file (`not_filed_rationale`).
#[derive(ToSchema)]
pub struct FilingBody {
    /// "gdpr", "nis2_early_warning", "nis2_notification" or "nis2_final_report"
    pub kind: String,
    pub authority: Option<String>,
    pub filed_at: Option<String>,
    pub their_reference: Option<String>,
    pub not_filed_rationale: Option<String>,
}

#[derive(ToSchema)]
pub struct DeviationList {
    pub items: Vec<serde_json::Value>,
    pub total: usize,
}

#[derive(ToSchema)]
pub struct HistoryItem {
    pub seq: u64,
    pub at: String,
    pub actor: String,
    #[schema(rename = "type")]
    pub event_type: String,
    pub data: serde_json::Value,
    pub prev: String,
}

#[derive(ToSchema)]
pub struct FieldProblem {
    pub field: String,
    pub message: String,
    pub message_sv: String,
}

/// RFC 9457 problem details.
#[derive(ToSchema)]
pub struct Problem {
    #[schema(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    pub detail_sv: String,
    pub errors: Option<Vec<FieldProblem>>,
}
