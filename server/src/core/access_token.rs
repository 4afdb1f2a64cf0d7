//! Access tokens as JSON Web Tokens, HS256 only, in the shape the VSS client
//! decodes: `sub`, `iat`, `exp`, `otp` and a random `jti`.
//!
//! This module says only whether a token was signed with the server's key for
//! HS256 and has not expired. Whether it was revoked is the database's to say
//! (`auth.rs` looks its digest up). jwt-compact compares the header's `alg` to
//! HS256 itself, so a token naming `none` or another algorithm is refused
//! before its signature is read; it brings no public-key algorithm along
//! (jsonwebtoken compiled RSA, ECDSA and Ed25519 for tokens that use none).

use chrono::{DateTime, TimeDelta, Utc};
use jwt_compact::alg::{Hs256, Hs256Key};
use jwt_compact::{AlgorithmExt, Claims, Header, TimeOptions, UntrustedToken};
use serde::{Deserialize, Serialize};

/// The claims of an access token besides its times.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenClaims {
    /// The username the token was issued to.
    pub sub: String,
    /// Whether a one-time password was used (the VSS client reads it).
    pub otp: bool,
    /// Makes each token unique, so that its digest names it alone.
    pub jti: String,
}

/// The key access tokens are signed and checked with.
pub struct AccessTokenKey(Hs256Key);

impl AccessTokenKey {
    pub fn new(secret: &[u8; 32]) -> Self {
        Self(Hs256Key::new(secret))
    }

    /// A signed token for `claims`, valid from `issued_at` to `expires_at`.
    pub fn sign(
        &self,
        claims: TokenClaims,
        issued_at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<String, jwt_compact::CreationError> {
        let mut claims = Claims::new(claims);
        claims.issued_at = Some(issued_at);
        claims.expiration = Some(expires_at);
        Hs256.token(&Header::empty().with_token_type("JWT"), &claims, &self.0)
    }

    /// The claims of `token` when it is well formed, signed with this key
    /// for HS256 and not expired at `now` (no leeway); nothing otherwise.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Option<TokenClaims> {
        let untrusted = UntrustedToken::new(token).ok()?;
        let token = Hs256
            .validator::<TokenClaims>(&self.0)
            .validate(&untrusted)
            .ok()?;
        let claims = token.claims();
        claims
            .validate_expiration(&TimeOptions::new(TimeDelta::zero(), move || now))
            .ok()?;
        Some(claims.custom.clone())
    }
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use hmac::{Hmac, Mac};
    use serde_json::{json, Value};
    use sha2::{Sha256, Sha512};

    use super::*;

    const SECRET: [u8; 32] = [7; 32];

    fn claims() -> TokenClaims {
        TokenClaims {
            sub: "alice".into(),
            otp: false,
            jti: "abc".into(),
        }
    }

    fn times() -> (DateTime<Utc>, DateTime<Utc>) {
        let issued_at = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        (issued_at, issued_at + TimeDelta::hours(24))
    }

    fn part(value: &Value) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
    }

    /// A token made by hand, to say what another issuer could send.
    fn hand_made(header: &Value, payload: &Value, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
        let signed = format!("{}.{}", part(header), part(payload));
        let signature = URL_SAFE_NO_PAD.encode(sign(signed.as_bytes()));
        format!("{signed}.{signature}")
    }

    fn hs256(key: &[u8]) -> impl Fn(&[u8]) -> Vec<u8> + '_ {
        move |data| {
            let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        }
    }

    fn payload(exp: i64) -> Value {
        json!({"sub": "alice", "iat": 1_800_000_000, "exp": exp, "otp": false, "jti": "abc"})
    }

    #[test]
    fn a_token_carries_what_the_vss_client_decodes_and_verifies_until_it_expires() {
        let key = AccessTokenKey::new(&SECRET);
        let (issued_at, expires_at) = times();
        let token = key.sign(claims(), issued_at, expires_at).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let decode = |part: &str| -> Value {
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
        };
        assert_eq!(decode(parts[0]), json!({"alg": "HS256", "typ": "JWT"}));
        assert_eq!(decode(parts[1]), payload(expires_at.timestamp()));

        assert_eq!(key.verify(&token, issued_at), Some(claims()));
        assert_eq!(key.verify(&token, expires_at), Some(claims()));
        let later = expires_at + TimeDelta::seconds(1);
        assert_eq!(key.verify(&token, later), None);
    }

    #[test]
    fn tokens_other_keys_or_algorithms_signed_are_refused() {
        let key = AccessTokenKey::new(&SECRET);
        let (issued_at, expires_at) = times();
        let header = json!({"alg": "HS256", "typ": "JWT"});
        let exp = expires_at.timestamp();

        // Made by hand with the right key: accepted, so the others below
        // are refused for what differs.
        let ours = hand_made(&header, &payload(exp), hs256(&SECRET));
        assert_eq!(key.verify(&ours, issued_at), Some(claims()));

        let other_key = hand_made(&header, &payload(exp), hs256(&[8; 32]));
        assert_eq!(key.verify(&other_key, issued_at), None);

        let unsigned = format!("{}.{}.", part(&json!({"alg": "none"})), part(&payload(exp)));
        assert_eq!(key.verify(&unsigned, issued_at), None);

        let hs512 = hand_made(&json!({"alg": "HS512"}), &payload(exp), |data| {
            let mut mac = Hmac::<Sha512>::new_from_slice(&SECRET).unwrap();
            mac.update(data);
            mac.finalize().into_bytes().to_vec()
        });
        assert_eq!(key.verify(&hs512, issued_at), None);

        // A payload changed after signing (a longer life).
        let signed = key.sign(claims(), issued_at, expires_at).unwrap();
        let parts: Vec<&str> = signed.split('.').collect();
        let longer = format!("{}.{}.{}", parts[0], part(&payload(exp + 86_400)), parts[2]);
        assert_eq!(key.verify(&longer, issued_at), None);

        // With no expiry at all.
        let mut forever = payload(exp);
        forever.as_object_mut().unwrap().remove("exp");
        let forever = hand_made(&header, &forever, hs256(&SECRET));
        assert_eq!(key.verify(&forever, issued_at), None);

        for garbage in ["", "a.b", "a.b.c", "..", "dpt_abc"] {
            assert_eq!(key.verify(garbage, issued_at), None, "{garbage:?}");
        }
    }
}
