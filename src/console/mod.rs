//! `/console/`: the web console, served from the binary. HTML, CSS and plain JavaScript (an
//! ES module, no library, nothing fetched at build or run time) embedded with
//! `include_str!`. Every page calls the public API with the signed-in token, which the page
//! keeps in memory only. Strict CSP: everything from this origin, no inline script; charts
//! are drawn as `<img>` from `blob:` URLs of the API's SVG.

use actix_web::http::header;
use actix_web::{HttpResponse, get, web};

const INDEX: &str = include_str!("assets/index.html");
const SCRIPT: &str = include_str!("assets/console.js");
const STYLE: &str = include_str!("assets/console.css");
const ICON: &str = include_str!("assets/favicon.svg");

pub const CSP: &str = "default-src 'self'; img-src 'self' blob:; script-src 'self'; style-src 'self'; \
    connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The console's policy with another `frame-ancestors` (the launched view's).
fn csp_framed_by(frame_ancestors: &str) -> String {
    CSP.replace("frame-ancestors 'none'", frame_ancestors)
}

fn asset(content_type: &str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(body)
}

/// `/console` without the slash: the console's relative links need it.
pub async fn redirect() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, "/console/"))
        .finish()
}

#[get("/")]
pub async fn index() -> HttpResponse {
    asset("text/html; charset=utf-8", INDEX)
}

#[get("/console.js")]
pub async fn script() -> HttpResponse {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

#[get("/console.css")]
pub async fn style() -> HttpResponse {
    asset("text/css; charset=utf-8", STYLE)
}

#[get("/favicon.svg")]
pub async fn icon() -> HttpResponse {
    asset("image/svg+xml", ICON)
}

/// The console as an EHR launch opens it (`/console/launch/{connection id}/`): the same
/// page, which the connection's `frame_origins` (and only those) may frame.
pub async fn launched(
    state: web::Data<crate::state::AppState>,
    id: web::Path<uuid::Uuid>,
) -> Result<HttpResponse, crate::error::ApiError> {
    let mut conn = crate::db::conn(&state.pool).await?;
    let connection = crate::launch::store::find_by_id(&mut conn, *id)
        .await?
        .ok_or(crate::error::ApiError::NotFound)?;
    let policy = csp_framed_by(&crate::launch::pages::frame_ancestors(&connection.frame_origins));
    let mut page = asset("text/html; charset=utf-8", INDEX);
    if let Ok(value) = header::HeaderValue::from_str(&policy) {
        page.headers_mut().insert(header::CONTENT_SECURITY_POLICY, value);
    }
    Ok(page)
}

/// Registers the console (outside the OpenAPI document: it is not part of the API).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/console", web::get().to(redirect)).service(
        web::scope("/console")
            .route("/launch/{id}/", web::get().to(launched))
            .service(index)
            .service(script)
            .service(style)
            .service(icon),
    );
}
