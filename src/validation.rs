//! Field checks shared by several write bodies. Each pushes a `FieldError` naming the
//! field by pointer, so a caller collects every problem of a body at once.

use crate::error::FieldError;

pub const MAX_NAME_CHARS: usize = 200;

/// Checks a name: 1 to 200 characters, not blank, no NUL.
pub fn validate_name(name: &str, pointer: &str, errors: &mut Vec<FieldError>) {
    let len = name.chars().count();
    if name.contains('\0') {
        errors.push(FieldError::new(pointer, "must not contain NUL (U+0000) characters"));
    } else if name.trim().is_empty() {
        errors.push(FieldError::new(pointer, "must not be empty or only spaces"));
    } else if len > MAX_NAME_CHARS {
        errors.push(FieldError::new(
            pointer,
            format!("is {len} characters long; at most {MAX_NAME_CHARS} are allowed"),
        ));
    }
}
