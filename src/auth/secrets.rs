//! Client credentials: generation, and argon2 hashing (the only form a secret is stored in).

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::distributions::Alphanumeric;
use rand::rngs::OsRng;
use rand::{Rng, RngCore};

pub fn generate_client_id() -> String {
    let suffix: String = OsRng.sample_iter(&Alphanumeric).take(20).map(char::from).collect();
    format!("rc_{}", suffix.to_ascii_lowercase())
}

pub fn generate_secret() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub fn hash_secret(secret: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(secret.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Constant-time verification against a stored PHC string; a malformed hash never matches.
pub fn verify_secret(secret: &str, stored_hash: &str) -> bool {
    match PasswordHash::new(stored_hash) {
        Ok(parsed) => Argon2::default().verify_password(secret.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

/// A fixed hash verified against when the client id is unknown, so that unknown and known
/// ids take the same time to reject.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_secret("rapport-dummy-secret").unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_differ() {
        let secret = generate_secret();
        let h1 = hash_secret(&secret).unwrap();
        let h2 = hash_secret(&secret).unwrap();
        assert_ne!(h1, h2, "salted");
        assert!(!h1.contains(&secret));
        assert!(verify_secret(&secret, &h1));
        assert!(!verify_secret("wrong", &h1));
        assert!(!verify_secret(&secret, "not a hash"));
    }

    #[test]
    fn ids_look_right() {
        let id = generate_client_id();
        assert!(id.starts_with("rc_") && id.len() == 23);
    }
}
