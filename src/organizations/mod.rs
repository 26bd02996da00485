//! Tenants. Creating one also creates its first administrator client.

pub mod model;
pub mod routes;
pub mod service;
pub mod store;

use crate::error::{ApiError, ApiResult, FieldError};
use crate::validation::validate_name;
use model::NewOrganization;

pub fn validate_new_organization(body: &NewOrganization) -> ApiResult<()> {
    let mut errors = Vec::new();
    if !store::is_valid_slug(&body.slug) {
        errors.push(FieldError::new(
            "/slug",
            "must be 2 to 63 characters of a-z, 0-9 and '-'",
        ));
    }
    validate_name(&body.name, "/name", &mut errors);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(errors))
    }
}
