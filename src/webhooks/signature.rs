//! Standard Webhooks 1.0 signatures: `v1,` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))
//! where the key is the base64-decoded part of the secret after `whsec_`. Several
//! signatures are separated by spaces (during a secret rotation, one per secret).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

const PREFIX: &str = "whsec_";

/// A new secret: `whsec_` + base64 of 32 random bytes.
pub fn new_secret() -> String {
    let mut key = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut key);
    format!("{PREFIX}{}", STANDARD.encode(key))
}

fn key_of(secret: &str) -> Option<Vec<u8>> {
    STANDARD.decode(secret.strip_prefix(PREFIX).unwrap_or(secret)).ok()
}

fn mac(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> Option<Hmac<Sha256>> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).ok()?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(mac)
}

/// The `webhook-signature` header for a message signed with each of `secrets`.
pub fn sign(secrets: &[&str], id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets
        .iter()
        .filter_map(|secret| key_of(secret))
        .filter_map(|key| mac(&key, id, timestamp, body))
        .map(|mac| format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes())))
        .collect::<Vec<_>>()
        .join(" ")
}

/// True when any `v1` signature in `header` is the message's signature under `secret`. The
/// comparison is in constant time; an empty, truncated or undecodable signature never
/// matches. (Receivers in Python should use the official `standardwebhooks` package; this
/// is for Rust receivers and rapport's own tests.)
pub fn verify(secret: &str, id: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
    let Some(key) = key_of(secret) else { return false };
    header.split(' ').any(|candidate| {
        let Some(encoded) = candidate.strip_prefix("v1,") else {
            return false;
        };
        let Ok(given) = STANDARD.decode(encoded) else {
            return false;
        };
        // `verify_slice` compares in constant time and refuses any length but the full 32 bytes.
        mac(&key, id, timestamp, body).is_some_and(|m| m.verify_slice(&given).is_ok())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example of the Standard Webhooks specification (its reference libraries' tests).
    const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SPEC_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SPEC_TS: i64 = 1614265330;
    const SPEC_BODY: &str = r#"{"test": 2432232314}"#;
    const SPEC_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn signs_the_specification_example() {
        assert_eq!(
            sign(&[SPEC_SECRET], SPEC_ID, SPEC_TS, SPEC_BODY.as_bytes()),
            SPEC_SIGNATURE
        );
        assert!(verify(
            SPEC_SECRET,
            SPEC_ID,
            SPEC_TS,
            SPEC_BODY.as_bytes(),
            SPEC_SIGNATURE
        ));
    }

    #[test]
    fn refuses_empty_truncated_and_tampered_signatures() {
        let body = SPEC_BODY.as_bytes();
        for header in [
            "",
            "v1,",
            "v1",
            "v1,g0hM9SsE+OTPJTGt/tmIKtSy",
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE",
            "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            "v1,h0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        ] {
            assert!(
                !verify(SPEC_SECRET, SPEC_ID, SPEC_TS, body, header),
                "{header:?} must not verify"
            );
        }
        assert!(!verify(SPEC_SECRET, SPEC_ID, SPEC_TS + 1, body, SPEC_SIGNATURE));
        assert!(!verify(SPEC_SECRET, "msg_other", SPEC_TS, body, SPEC_SIGNATURE));
        assert!(!verify(SPEC_SECRET, SPEC_ID, SPEC_TS, b"{\"test\": 1}", SPEC_SIGNATURE));
    }

    #[test]
    fn during_a_rotation_either_secret_verifies() {
        let (old, new) = (new_secret(), new_secret());
        assert!(old.starts_with("whsec_") && key_of(&old).is_some_and(|k| k.len() == 32));
        let header = sign(&[&new, &old], "evt_1", 1_700_000_000, b"{}");
        assert_eq!(header.split(' ').count(), 2);
        assert!(verify(&new, "evt_1", 1_700_000_000, b"{}", &header));
        assert!(verify(&old, "evt_1", 1_700_000_000, b"{}", &header));
        assert!(!verify(&new_secret(), "evt_1", 1_700_000_000, b"{}", &header));
    }
}
