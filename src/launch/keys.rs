//! The key pair rapport makes for an EHR connection that authenticates with
//! `private_key_jwt`: an ES384 (P-384) key, its public half as a JWK (published at
//! `/launch/jwks/{id}`), and the client assertions signed with it at the EHR's token
//! endpoint (as a SMART Backend Services client would sign them).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p384::elliptic_curve::sec1::ToSec1Point as _;
use p384::pkcs8::EncodePrivateKey as _;
use rand::RngCore as _;
use serde_json::{Value, json};

/// A fresh key pair: the private key (PKCS#8 DER), the algorithm and the public JWK.
pub struct KeyPair {
    pub private_der: Vec<u8>,
    pub alg: &'static str,
    pub public_jwk: Value,
}

/// A new ES384 key pair named `kid`.
pub fn generate(kid: &str) -> Result<KeyPair, String> {
    let mut bytes = [0u8; 48];
    // A random 384-bit string is a valid scalar unless it is zero or at least the group
    // order (a chance near 2^-190): draw again then.
    let secret = loop {
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        if let Ok(key) = p384::SecretKey::from_slice(&bytes) {
            break key;
        }
    };
    let der = secret.to_pkcs8_der().map_err(|e| e.to_string())?;
    let point = secret.public_key().to_sec1_point(false);
    let (Some(x), Some(y)) = (point.x(), point.y()) else {
        return Err("the public point has no coordinates".into());
    };
    Ok(KeyPair {
        private_der: der.as_bytes().to_vec(),
        alg: "ES384",
        public_jwk: json!({
            "kty": "EC",
            "crv": "P-384",
            "x": URL_SAFE_NO_PAD.encode(x),
            "y": URL_SAFE_NO_PAD.encode(y),
            "kid": kid,
            "alg": "ES384",
            "use": "sig",
        }),
    })
}

/// A client assertion (RFC 7523) for `client_id` at `token_endpoint`, valid five minutes.
pub fn client_assertion(
    private_der: &[u8],
    kid: &str,
    client_id: &str,
    token_endpoint: &str,
) -> Result<String, String> {
    let now = crate::auth::token::now_secs();
    let claims = json!({
        "iss": client_id,
        "sub": client_id,
        "aud": token_endpoint,
        "jti": uuid::Uuid::new_v4().to_string(),
        "iat": now,
        "exp": now + 300,
    });
    let mut header = Header::new(Algorithm::ES384);
    header.kid = Some(kid.to_string());
    jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ec_der(private_der)).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_key_signs_assertions_that_its_public_jwk_verifies() {
        let pair = generate("k1").unwrap();
        assert_eq!(pair.public_jwk["crv"], "P-384");
        assert_eq!(
            URL_SAFE_NO_PAD
                .decode(pair.public_jwk["x"].as_str().unwrap())
                .unwrap()
                .len(),
            48
        );
        let token = client_assertion(&pair.private_der, "k1", "rapport", "https://ehr.example/token").unwrap();
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(pair.public_jwk.clone()).unwrap();
        let mut validation = jsonwebtoken::Validation::new(Algorithm::ES384);
        validation.set_audience(&["https://ehr.example/token"]);
        validation.set_issuer(&["rapport"]);
        let data =
            jsonwebtoken::decode::<Value>(&token, &jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap(), &validation)
                .unwrap();
        assert_eq!(data.claims["sub"], "rapport");
        assert_eq!(data.header.kid.as_deref(), Some("k1"));
        // Two pairs are two keys.
        assert_ne!(generate("k1").unwrap().public_jwk["x"], pair.public_jwk["x"]);
    }
}
