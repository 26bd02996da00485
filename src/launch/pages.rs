//! The launch's own HTML pages: a refusal says what failed in words (every value
//! HTML-escaped), never redirects, and is never cached or sent as a referrer. Once the
//! connection is known, its `frame_origins` may frame the page (the launch runs in the
//! EHR's frame); before that, nobody may.

use actix_web::HttpResponse;
use actix_web::http::{StatusCode, header};

use crate::analytics::chart::escape;

/// The `frame-ancestors` directive for a connection's frame origins (`'none'` without any).
pub fn frame_ancestors(origins: &[String]) -> String {
    if origins.is_empty() {
        "frame-ancestors 'none'".to_string()
    } else {
        format!("frame-ancestors {}", origins.join(" "))
    }
}

/// A launch page that refuses: its status, a title, what failed and what to do.
pub fn refusal(status: StatusCode, title: &str, what: &str, advice: &str, frame_origins: &[String]) -> HttpResponse {
    let body = format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>rapport: {title}</title>\n</head>\n\
         <body>\n<main>\n<h1>{title}</h1>\n<p id=\"what\">{what}</p>\n<p id=\"advice\">{advice}</p>\n</main>\n</body>\n</html>\n",
        title = escape(title),
        what = escape(what),
        advice = escape(advice),
    );
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            format!(
                "default-src 'none'; base-uri 'none'; form-action 'none'; {}",
                frame_ancestors(frame_origins)
            ),
        ))
        .body(body)
}

/// A launch redirect (to the EHR's authorization endpoint, or into the console).
pub fn redirect(location: &str, frame_origins: &[String]) -> HttpResponse {
    HttpResponse::Found()
        .insert_header((header::LOCATION, location))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::CONTENT_SECURITY_POLICY, frame_ancestors(frame_origins)))
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_what_an_ehr_sent_is_text() {
        assert_eq!(
            escape("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&apos;x&apos;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
        assert_eq!(frame_ancestors(&[]), "frame-ancestors 'none'");
        assert_eq!(
            frame_ancestors(&["https://a.example".into(), "https://b.example:8443".into()]),
            "frame-ancestors https://a.example https://b.example:8443"
        );
    }
}
