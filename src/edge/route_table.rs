//! The documented routes, from the OpenAPI document, so that a known path with an
//! undocumented method answers 405 with `Allow` rather than 404, and a query parameter the
//! operation does not document is 400 naming it (a misspelled `patiend=` never widens a list).

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Literal(String),
    Param,
}

/// A path pattern, its documented methods, and each method's documented query parameters.
type Route = (
    Vec<Segment>,
    Vec<String>,
    std::collections::BTreeMap<String, Vec<String>>,
);

#[derive(Debug, Default)]
pub struct RouteTable(Vec<Route>);

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
                let mut queries = std::collections::BTreeMap::new();
                for (method, operation) in item.as_object().into_iter().flatten() {
                    let names: Vec<String> = operation
                        .get("parameters")
                        .and_then(|p| p.as_array())
                        .into_iter()
                        .flatten()
                        .filter(|p| p.get("in").and_then(|i| i.as_str()) == Some("query"))
                        .filter_map(|p| p.get("name").and_then(|n| n.as_str()).map(str::to_string))
                        .collect();
                    queries.insert(method.to_ascii_uppercase(), names);
                }
                routes.push((pattern, methods, queries));
            }
        }
        RouteTable(routes)
    }

    /// The methods documented for `path`, when some route matches it. Literal segments win
    /// over parameters (`/v1/responses/batch` is not `/v1/responses/{id}`), as in the router.
    pub fn allowed(&self, path: &str) -> Option<Vec<String>> {
        let mut found: Vec<String> = self
            .best(path)
            .into_iter()
            .flat_map(|(_, methods, _)| methods.iter().cloned())
            .collect();
        found.sort();
        found.dedup();
        (!found.is_empty()).then_some(found)
    }

    /// The query parameters documented for `method` on `path`; `None` when no documented
    /// operation matches (the router answers those).
    pub fn query_parameters(&self, method: &str, path: &str) -> Option<Vec<String>> {
        let method = if method == "HEAD" { "GET" } else { method };
        let mut found: Vec<String> = Vec::new();
        let mut matched = false;
        for (_, _, queries) in self.best(path) {
            if let Some(names) = queries.get(method) {
                matched = true;
                found.extend(names.iter().cloned());
            }
        }
        matched.then_some(found)
    }

    /// A `/v1` request's first query parameter that its operation does not document, as a
    /// 400 naming it: a misspelled filter (`?patiend=`) must never quietly widen a list.
    pub fn check_query(&self, method: &str, path: &str, query: &str) -> Result<(), crate::error::ApiError> {
        if !path.starts_with("/v1/") || query.is_empty() {
            return Ok(());
        }
        let Some(known) = self.query_parameters(method, path) else {
            return Ok(());
        };
        let unknown = url::form_urlencoded::parse(query.as_bytes())
            .map(|(name, _)| name.into_owned())
            .find(|name| !known.iter().any(|k| k == name));
        match unknown {
            None => Ok(()),
            Some(name) => {
                let listed = if known.is_empty() {
                    "this operation takes no query parameters".to_string()
                } else {
                    format!("known: {}", known.join(", "))
                };
                Err(crate::error::ApiError::BadRequest(format!(
                    "unknown query parameter `{name}` ({listed})"
                )))
            }
        }
    }

    /// The routes matching `path` with the fewest parameters: literal segments win over
    /// parameters, as in the router.
    fn best(&self, path: &str) -> Vec<&Route> {
        let parts: Vec<&str> = segments(path).collect();
        let matching: Vec<&Route> = self
            .0
            .iter()
            .filter(|(pattern, _, _)| {
                pattern.len() == parts.len()
                    && pattern.iter().zip(&parts).all(|(seg, part)| match seg {
                        Segment::Param => true,
                        Segment::Literal(l) => l == part,
                    })
            })
            .collect();
        let params = |p: &[Segment]| p.iter().filter(|s| **s == Segment::Param).count();
        let Some(fewest) = matching.iter().map(|(p, _, _)| params(p)).min() else {
            return Vec::new();
        };
        matching.into_iter().filter(|(p, _, _)| params(p) == fewest).collect()
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
