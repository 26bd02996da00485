//! Pseudonyms: a patient, clinician or episode reference replaced by the first 8 bytes of
//! HMAC-SHA256 under the organisation's secret (stable until rotated). Used by exports and
//! by erasure's audit event; never logs a reference.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use crate::ids::OrgId;
use crate::schema::pseudonym_keys;

/// The organisation's pseudonym secret, created on first use.
pub async fn pseudonym_secret(conn: &mut AsyncPgConnection, org: OrgId) -> QueryResult<Vec<u8>> {
    let mut fresh = vec![0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut fresh);
    diesel::insert_into(pseudonym_keys::table)
        .values((pseudonym_keys::org_id.eq(org), pseudonym_keys::secret.eq(&fresh)))
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    pseudonym_keys::table
        .filter(pseudonym_keys::org_id.eq(org))
        .select(pseudonym_keys::secret)
        .first(conn)
        .await
}

/// Replaces the secret: every pseudonym changes.
pub async fn rotate_pseudonym_secret(conn: &mut AsyncPgConnection, org: OrgId) -> QueryResult<()> {
    let mut fresh = vec![0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut fresh);
    diesel::insert_into(pseudonym_keys::table)
        .values((pseudonym_keys::org_id.eq(org), pseudonym_keys::secret.eq(&fresh)))
        .on_conflict(pseudonym_keys::org_id)
        .do_update()
        .set((
            pseudonym_keys::secret.eq(&fresh),
            pseudonym_keys::created_at.eq(chrono::Utc::now()),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// Lowercase hex of the first 8 bytes of HMAC-SHA256(secret, reference).
pub fn pseudonym(secret: &[u8], reference: &str) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(reference.as_bytes());
    let digest = mac.finalize().into_bytes();
    hex::encode(digest.get(..8).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::pseudonym;

    #[test]
    fn pseudonyms_are_16_hex_characters_stable_and_keyed() {
        let a = pseudonym(b"secret-one", "p-123");
        assert_eq!(a.len(), 16);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_eq!(a, pseudonym(b"secret-one", "p-123"));
        assert_ne!(a, pseudonym(b"secret-two", "p-123"));
        assert_ne!(a, pseudonym(b"secret-one", "p-124"));
        // RFC 4231 test case 2: HMAC-SHA256("Jefe", "what do ya want for nothing?") starts 5bdcc146bf60754e.
        assert_eq!(pseudonym(b"Jefe", "what do ya want for nothing?"), "5bdcc146bf60754e");
    }
}
