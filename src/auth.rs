//! Who is asking: JWT verification, where the token comes from, and what the
//! token allows.
//!
//! Exactly one algorithm is accepted, fixed by the configured key (HS256 for a
//! secret, RS256 or ES256 for a public key). The algorithm named in a token's
//! header is only ever compared against it, never trusted: that rules out
//! `alg: none` and the HS256-with-the-public-key confusion attack.

use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::HttpRequest;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};

use crate::domain::event::TopicPattern;
use crate::domain::read_scope::ReadScope;
use crate::domain::wire::Viewer;

/// The role that may publish.
pub const PUBLISHER_ROLE: &str = "publisher";
/// The cookie a browser may carry the token in.
pub const TOKEN_COOKIE: &str = "pushlog_token";
/// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds.
const LEEWAY_SECS: u64 = 30;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub exp: u64,
    /// Issued at, Unix seconds: a token from the future is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topics: Option<Vec<String>>,
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum AuthError {
    #[error(
        "no token: send `Authorization: Bearer <jwt>`, a `token` query parameter or a `pushlog_token` cookie"
    )]
    Missing,
    #[error("the token has expired")]
    Expired,
    #[error("the token is invalid: {0}")]
    Invalid(&'static str),
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the public key is not a PEM RSA or EC public key: {0}")]
    BadPublicKey(jsonwebtoken::errors::Error),
    #[error("the public key must be a PEM `PUBLIC KEY` (RSA or EC P-256) or `RSA PUBLIC KEY`")]
    UnknownKeyType,
    #[error("the JWT secret must be at least 32 bytes long, it is {0}")]
    ShortSecret(usize),
    #[error(
        "minting tokens needs the HS256 secret (PUSHLOG_JWT_SECRET); a public key can only verify"
    )]
    CannotMint,
    #[error("could not sign the token: {0}")]
    Sign(jsonwebtoken::errors::Error),
}

/// A verified reader or publisher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Who the token names and what it may read.
    pub scope: ReadScope,
    /// The token's `exp`, Unix seconds: a long-lived connection must not
    /// outlive the token that opened it.
    pub expires_at: u64,
}

impl Principal {
    pub fn user(&self) -> &str {
        &self.scope.user
    }

    pub fn is_publisher(&self) -> bool {
        self.scope.roles.iter().any(|r| r == PUBLISHER_ROLE)
    }

    pub fn viewer(&self) -> Viewer {
        if self.is_publisher() {
            Viewer::Publisher
        } else {
            Viewer::Reader
        }
    }
}

/// Verifies tokens, and mints them when it holds a secret.
#[derive(Clone)]
pub struct Authenticator {
    algorithm: Algorithm,
    decoding: DecodingKey,
    encoding: Option<EncodingKey>,
    /// The `aud` every token must name, if configured; else `aud` is not
    /// looked at (identity providers set it to whatever their client is).
    audience: Option<String>,
    /// The `iss` every token must carry, if configured.
    issuer: Option<String>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    pub fn from_secret(secret: &[u8]) -> Result<Authenticator, KeyError> {
        // RFC 7518 §3.2: an HS256 key must be at least as long as the hash.
        if secret.len() < 32 {
            return Err(KeyError::ShortSecret(secret.len()));
        }
        Ok(Authenticator {
            algorithm: Algorithm::HS256,
            decoding: DecodingKey::from_secret(secret),
            encoding: Some(EncodingKey::from_secret(secret)),
            audience: None,
            issuer: None,
        })
    }

    /// An RSA (RS256) or EC P-256 (ES256) public key in PEM form. The key's
    /// own type decides the algorithm; nothing in a token can change it.
    pub fn from_public_key_pem(pem: &[u8]) -> Result<Authenticator, KeyError> {
        let (algorithm, decoding) = match public_key_kind(pem)? {
            PublicKeyKind::Rsa => (
                Algorithm::RS256,
                DecodingKey::from_rsa_pem(pem).map_err(KeyError::BadPublicKey)?,
            ),
            PublicKeyKind::Ec => (
                Algorithm::ES256,
                DecodingKey::from_ec_pem(pem).map_err(KeyError::BadPublicKey)?,
            ),
        };
        Ok(Authenticator {
            algorithm,
            decoding,
            encoding: None,
            audience: None,
            issuer: None,
        })
    }

    /// Requires every token to name `audience` in its `aud` and to carry
    /// `issuer` as its `iss`; `None` leaves that claim unchecked.
    pub fn expecting(mut self, audience: Option<String>, issuer: Option<String>) -> Authenticator {
        self.audience = audience;
        self.issuer = issuer;
        self
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        if names_critical_extensions(token) {
            // RFC 7515 §4.1.11: a recipient that does not understand every
            // extension listed in `crit` must refuse the token. We
            // understand none.
            return Err(AuthError::Invalid(
                "the header lists `crit` extensions this server does not understand",
            ));
        }
        let mut validation = Validation::new(self.algorithm);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        let mut required = vec!["exp", "sub"];
        match &self.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        if let Some(issuer) = &self.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        validation.set_required_spec_claims(&required);
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation).map_err(
            |e| match e.kind() {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                ErrorKind::InvalidSignature => AuthError::Invalid("bad signature"),
                ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                    AuthError::Invalid("algorithm not accepted")
                }
                ErrorKind::MissingRequiredClaim(_) => AuthError::Invalid(
                    "claims `sub` and `exp` are required, and `aud` and `iss` where configured",
                ),
                ErrorKind::ImmatureSignature => {
                    AuthError::Invalid("the token is not valid yet (`nbf`)")
                }
                ErrorKind::InvalidAudience => {
                    AuthError::Invalid("the token is for another audience (`aud`)")
                }
                ErrorKind::InvalidIssuer => {
                    AuthError::Invalid("the token is from another issuer (`iss`)")
                }
                ErrorKind::Json(_) => AuthError::Invalid("claims have the wrong shape"),
                _ => AuthError::Invalid("malformed token"),
            },
        )?;
        let claims = data.claims;
        if claims.sub.is_empty() {
            return Err(AuthError::Invalid("`sub` is empty"));
        }
        if claims
            .iat
            .is_some_and(|iat| iat > unix_now().saturating_add(LEEWAY_SECS))
        {
            return Err(AuthError::Invalid(
                "the token was issued in the future (`iat`)",
            ));
        }
        let topics = match claims.topics {
            Some(raw) => Some(
                raw.iter()
                    .map(|p| TopicPattern::parse(p))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|_| AuthError::Invalid("`topics` holds an invalid pattern"))?,
            ),
            None => None,
        };
        Ok(Principal {
            scope: ReadScope {
                user: claims.sub,
                roles: claims.roles,
                topics,
            },
            expires_at: claims.exp,
        })
    }

    /// Signs a token; only possible with an HS256 secret.
    pub fn mint(
        &self,
        user: &str,
        roles: &[String],
        topics: Option<&[String]>,
        ttl_secs: u64,
    ) -> Result<String, KeyError> {
        let key = self.encoding.as_ref().ok_or(KeyError::CannotMint)?;
        let now = unix_now();
        let claims = Claims {
            sub: user.to_owned(),
            exp: now + ttl_secs,
            iat: Some(now),
            roles: roles.to_vec(),
            topics: topics.map(<[String]>::to_vec),
        };
        jsonwebtoken::encode(&Header::new(self.algorithm), &claims, key).map_err(KeyError::Sign)
    }
}

/// Whether the token's header has a `crit` member. A header that cannot be
/// read is left for the decoder to refuse.
fn names_critical_extensions(token: &str) -> bool {
    use base64::Engine;
    let Some(header) = token.split('.').next() else {
        return false;
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .ok()
        .and_then(|json| {
            serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&json).ok()
        })
        .is_some_and(|header| header.contains_key("crit"))
}

enum PublicKeyKind {
    Rsa,
    Ec,
}

/// Reads the key type from the PEM itself: a PKCS#1 RSA header, or the
/// algorithm OID inside an SPKI `PUBLIC KEY`. Trying one parser and then the
/// other is not reliable: a lenient parser can accept the wrong kind of key.
fn public_key_kind(pem: &[u8]) -> Result<PublicKeyKind, KeyError> {
    use base64::Engine;
    const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
    const EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    let text = String::from_utf8_lossy(pem);
    if text.contains("-----BEGIN RSA PUBLIC KEY-----") {
        return Ok(PublicKeyKind::Rsa);
    }
    let body: String = text
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN PUBLIC KEY-----"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body.trim())
        .map_err(|_| KeyError::UnknownKeyType)?;
    let contains = |oid: &[u8]| der.windows(oid.len()).any(|w| w == oid);
    if contains(RSA_ENCRYPTION) {
        Ok(PublicKeyKind::Rsa)
    } else if contains(EC_PUBLIC_KEY) {
        Ok(PublicKeyKind::Ec)
    } else {
        Err(KeyError::UnknownKeyType)
    }
}

impl Principal {
    /// How long the token stays valid, with the same clock-skew leeway as
    /// verification (a token accepted now is not cut off at once), capped
    /// at a year so a far-future `exp` cannot overflow a timer.
    pub fn time_left(&self) -> std::time::Duration {
        const MAX_SECS: u64 = 365 * 24 * 3600;
        let end = self.expires_at.saturating_add(LEEWAY_SECS);
        std::time::Duration::from_secs(end.saturating_sub(unix_now()).min(MAX_SECS))
    }
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Where a request's token came from. A cookie is ambient authority, which
/// the WebSocket transport must guard against cross-site use (Origin check).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    Header,
    Query,
    Cookie,
}

/// Finds the token in the contract's order: `Authorization: Bearer`, the
/// `token` query parameter, the `pushlog_token` cookie.
pub fn extract_token(req: &HttpRequest) -> Result<Option<(String, TokenSource)>, AuthError> {
    if let Some(value) = req.headers().get(actix_web::http::header::AUTHORIZATION) {
        let value = value
            .to_str()
            .map_err(|_| AuthError::Invalid("Authorization header is not text"))?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .ok_or(AuthError::Invalid(
                "Authorization must use the Bearer scheme",
            ))?;
        return Ok(Some((token.trim().to_owned(), TokenSource::Header)));
    }
    if let Some(token) = query_param(req.query_string(), "token") {
        return Ok(Some((token, TokenSource::Query)));
    }
    if let Some(cookie) = req.cookie(TOKEN_COOKIE) {
        return Ok(Some((cookie.value().to_owned(), TokenSource::Cookie)));
    }
    Ok(None)
}

/// One query parameter, percent-decoded. Handlers parse their typed queries
/// with serde; this is only for the token, which every route shares.
pub(crate) fn query_param(query: &str, name: &str) -> Option<String> {
    serde_urlencoded_pairs(query)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

fn serde_urlencoded_pairs(query: &str) -> Vec<(String, String)> {
    actix_web::web::Query::<Vec<(String, String)>>::from_query(query)
        .map(|q| q.into_inner())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::event::Topic;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn a_minted_token_verifies_with_its_claims() {
        let auth = Authenticator::from_secret(SECRET).unwrap();
        let token = auth
            .mint(
                "alice",
                &["publisher".into()],
                Some(&["device:*".into()]),
                60,
            )
            .unwrap();
        let who = auth.verify(&token).unwrap();
        assert_eq!(who.user(), "alice");
        assert!(who.is_publisher());
        assert!(who.scope.may_read_topic(&Topic::parse("device:1").unwrap()));
        assert!(!who.scope.may_read_topic(&Topic::parse("alerts").unwrap()));
    }

    #[test]
    fn a_token_signed_with_another_secret_is_invalid() {
        let ours = Authenticator::from_secret(SECRET).unwrap();
        let theirs = Authenticator::from_secret(b"another-secret-another-secret-xx").unwrap();
        let token = theirs.mint("mallory", &[], None, 60).unwrap();
        assert_eq!(
            ours.verify(&token),
            Err(AuthError::Invalid("bad signature"))
        );
    }

    #[test]
    fn alg_none_is_refused() {
        let auth = Authenticator::from_secret(SECRET).unwrap();
        // {"alg":"none","typ":"JWT"} . {"sub":"x","exp":9999999999} . (no signature)
        let token = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ4IiwiZXhwIjo5OTk5OTk5OTk5fQ.";
        assert!(matches!(auth.verify(token), Err(AuthError::Invalid(_))));
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(matches!(
            Authenticator::from_secret(b"short"),
            Err(KeyError::ShortSecret(5))
        ));
    }
}

#[cfg(test)]
mod key_tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/tests/fixtures/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn the_key_type_decides_the_algorithm() {
        let rsa = Authenticator::from_public_key_pem(&fixture("rsa_public.pem")).unwrap();
        let ec = Authenticator::from_public_key_pem(&fixture("ec_public.pem")).unwrap();
        assert_eq!(rsa.algorithm(), Algorithm::RS256);
        assert_eq!(ec.algorithm(), Algorithm::ES256);
        let key = EncodingKey::from_rsa_pem(&fixture("rsa_private.pem")).unwrap();
        let claims = Claims {
            sub: "s".into(),
            exp: unix_now() + 60,
            iat: None,
            roles: vec![],
            topics: None,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &key).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.alg, Algorithm::RS256);
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        let r = jsonwebtoken::decode::<Claims>(&token, &rsa.decoding, &validation);
        assert!(r.is_ok(), "{r:?}");
    }
}
