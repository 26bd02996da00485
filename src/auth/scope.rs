//! OAuth2 scope strings and what each allows (the README's scope table; the OpenAPI
//! document names the scope of every operation).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
pub enum Scope {
    #[serde(rename = "responses:write")]
    ResponsesWrite,
    #[serde(rename = "responses:read")]
    ResponsesRead,
    /// Aggregates that name no patient: clinician summaries, the trajectory, norms, the
    /// alliance-outcome analysis. `responses:read` grants these too.
    #[serde(rename = "analytics:read")]
    AnalyticsRead,
    #[serde(rename = "export")]
    Export,
    #[serde(rename = "export:identified")]
    ExportIdentified,
    #[serde(rename = "instruments:write")]
    InstrumentsWrite,
    #[serde(rename = "org:admin")]
    OrgAdmin,
    #[serde(rename = "platform:admin")]
    PlatformAdmin,
}

impl Scope {
    pub const ALL: [Scope; 8] = [
        Scope::ResponsesWrite,
        Scope::ResponsesRead,
        Scope::AnalyticsRead,
        Scope::Export,
        Scope::ExportIdentified,
        Scope::InstrumentsWrite,
        Scope::OrgAdmin,
        Scope::PlatformAdmin,
    ];

    /// Every scope an organisation's own administrator may hold.
    pub fn all_but_platform() -> Vec<Scope> {
        Self::ALL.into_iter().filter(|s| *s != Scope::PlatformAdmin).collect()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::ResponsesWrite => "responses:write",
            Scope::ResponsesRead => "responses:read",
            Scope::AnalyticsRead => "analytics:read",
            Scope::Export => "export",
            Scope::ExportIdentified => "export:identified",
            Scope::InstrumentsWrite => "instruments:write",
            Scope::OrgAdmin => "org:admin",
            Scope::PlatformAdmin => "platform:admin",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        Self::ALL.into_iter().find(|scope| scope.as_str() == s)
    }

    /// Parses a space-separated OAuth2 scope string; `Err` carries the first unknown one.
    /// The rapport scopes a SMART v2 system scope stands for (`None`: not an alias). Reading
    /// Questionnaires needs no scope, so its alias stands for none.
    pub fn smart_alias(s: &str) -> Option<&'static [Scope]> {
        match s {
            "system/QuestionnaireResponse.c"
            | "system/QuestionnaireResponse.cu"
            | "system/QuestionnaireResponse.cru"
            | "system/QuestionnaireResponse.crus" => Some(&[Scope::ResponsesWrite]),
            "system/QuestionnaireResponse.rs" | "system/Observation.rs" => Some(&[Scope::ResponsesRead]),
            "system/Questionnaire.rs" => Some(&[]),
            _ => None,
        }
    }

    /// The SMART aliases accepted in a token request.
    pub const SMART_ALIASES: [&'static str; 7] = [
        "system/QuestionnaireResponse.c",
        "system/QuestionnaireResponse.cu",
        "system/QuestionnaireResponse.cru",
        "system/QuestionnaireResponse.crus",
        "system/QuestionnaireResponse.rs",
        "system/Observation.rs",
        "system/Questionnaire.rs",
    ];

    /// Space-separated rapport scopes and SMART aliases, as the scopes they stand for
    /// (sorted, each once); the first unknown word is the error.
    pub fn parse_list(s: &str) -> Result<Vec<Scope>, String> {
        let mut out = Vec::new();
        for part in s.split_ascii_whitespace() {
            let one;
            let scopes: &[Scope] = match Scope::parse(part) {
                Some(scope) => {
                    one = [scope];
                    &one
                }
                None => Scope::smart_alias(part).ok_or_else(|| part.to_string())?,
            };
            for scope in scopes {
                if !out.contains(scope) {
                    out.push(*scope);
                }
            }
        }
        out.sort();
        Ok(out)
    }

    pub fn join(scopes: &[Scope]) -> String {
        scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ")
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_strings_round_trip() {
        for scope in Scope::ALL {
            assert_eq!(Scope::parse(scope.as_str()), Some(scope));
            let json = serde_json::to_string(&scope).unwrap();
            assert_eq!(json, format!("\"{}\"", scope.as_str()));
        }
        assert_eq!(
            Scope::parse_list("export  responses:read export").unwrap(),
            vec![Scope::ResponsesRead, Scope::Export]
        );
        assert_eq!(Scope::parse_list("export nope"), Err("nope".to_string()));
    }
}
