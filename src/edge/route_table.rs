//! The documented routes, from the OpenAPI document, so that a known path with an
//! undocumented method answers 405 with `Allow` rather than 404.

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Literal(String),
    Param,
}

#[derive(Debug, Default)]
pub struct RouteTable(Vec<(Vec<Segment>, Vec<String>)>);

fn segments(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
}

impl RouteTable {
    pub fn from_openapi(doc: &utoipa::openapi::OpenApi) -> Self {
        let value = serde_json::to_value(doc).unwrap_or_default();
        let mut routes = Vec::new();
        if let Some(paths) = value.get("paths").and_then(|p| p.as_object()) {
            for (template, item) in paths {
                let pattern = segments(template)
                    .map(|s| {
                        if s.starts_with('{') {
                            Segment::Param
                        } else {
                            Segment::Literal(s.to_string())
                        }
                    })
                    .collect();
                let mut methods: Vec<String> = item
                    .as_object()
                    .map(|m| m.keys().map(|k| k.to_ascii_uppercase()).collect())
                    .unwrap_or_default();
                methods.sort();
                routes.push((pattern, methods));
            }
        }
        RouteTable(routes)
    }

    /// The methods documented for `path`, when some route matches it. Literal segments win
    /// over parameters (`/v1/responses/batch` is not `/v1/responses/{id}`), as in the router.
    pub fn allowed(&self, path: &str) -> Option<Vec<String>> {
        let parts: Vec<&str> = segments(path).collect();
        let matching: Vec<&(Vec<Segment>, Vec<String>)> = self
            .0
            .iter()
            .filter(|(pattern, _)| {
                pattern.len() == parts.len()
                    && pattern.iter().zip(&parts).all(|(seg, part)| match seg {
                        Segment::Param => true,
                        Segment::Literal(l) => l == part,
                    })
            })
            .collect();
        let params = |p: &[Segment]| p.iter().filter(|s| **s == Segment::Param).count();
        let fewest = matching.iter().map(|(p, _)| params(p)).min()?;
        let mut found: Vec<String> = matching
            .iter()
            .filter(|(p, _)| params(p) == fewest)
            .flat_map(|(_, methods)| methods.iter().cloned())
            .collect();
        found.sort();
        found.dedup();
        (!found.is_empty()).then_some(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_paths_report_their_methods() {
        let table = RouteTable::from_openapi(&crate::openapi::document());
        assert_eq!(table.allowed("/v1/clients").unwrap(), vec!["GET", "POST"]);
        assert_eq!(table.allowed("/v1/clients/abc").unwrap(), vec!["DELETE", "GET"]);
        assert!(table.allowed("/v1/nothing-here").is_none());
        assert_eq!(table.allowed("/v1/responses/batch").unwrap(), vec!["POST"]);
    }
}
