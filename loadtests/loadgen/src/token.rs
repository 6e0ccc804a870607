//! HS256 tokens, minted here so a run needs only the server's secret. The
//! contract's claims: `sub`, `exp`, `roles`. Ten lines of HMAC are lighter
//! than a JWT library that would bring RSA and PEM parsing along.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;

use crate::cli::Common;
use crate::server::Server;

#[derive(Serialize)]
struct Claims<'a> {
    sub: &'a str,
    exp: u64,
    roles: &'a [&'a str],
}

/// A compact JWS with header `{"alg":"HS256","typ":"JWT"}`.
pub fn mint_hs256(secret: &[u8], sub: &str, roles: &[&str], ttl: Duration) -> String {
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .saturating_add(ttl)
        .as_secs();
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    // Serializing three plain fields cannot fail.
    let claims = serde_json::to_vec(&Claims { sub, exp, roles }).unwrap_or_default();
    let signing_input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims));
    // HMAC takes a key of any length, so `new_from_slice` cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(signing_input.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signing_input}.{signature}")
}

/// The tokens a run uses.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// pushlog's bearer tokens.
    Tokens {
        publisher: Option<String>,
        reader: String,
    },
    /// nginx+nchan, as configured for the comparison, takes none.
    Open,
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error(
        "no credentials: give --secret (the server's HS256 secret) or --reader-token/--publisher-token"
    )]
    Missing,
    #[error("this scenario publishes: give --secret or --publisher-token")]
    NoPublisher,
}

impl Credentials {
    /// Tokens from the flags, minting what was not given. Minted tokens live
    /// for `ttl`: SSE streams end when their token expires, so it must
    /// outlast the run.
    pub fn resolve(common: &Common, ttl: Duration) -> Result<Credentials, CredentialsError> {
        if common.server == Server::Nchan {
            return Ok(Credentials::Open);
        }
        let minted = |sub: &str, roles: &[&str]| {
            common
                .secret
                .as_ref()
                .map(|secret| mint_hs256(secret.as_bytes(), sub, roles, ttl))
        };
        let reader = common
            .reader_token
            .clone()
            .or_else(|| minted("loadgen-reader", &["reader"]))
            .ok_or(CredentialsError::Missing)?;
        let publisher = common
            .publisher_token
            .clone()
            .or_else(|| minted("loadgen-publisher", &["publisher"]));
        Ok(Credentials::Tokens { publisher, reader })
    }

    /// The subscribers' token, if the server takes one.
    pub fn reader(&self) -> Option<&str> {
        match self {
            Credentials::Tokens { reader, .. } => Some(reader),
            Credentials::Open => None,
        }
    }

    /// The publisher's token, if the server takes one; an error if it does
    /// and none was given or minted.
    pub fn publisher(&self) -> Result<Option<&str>, CredentialsError> {
        match self {
            Credentials::Tokens {
                publisher: Some(publisher),
                ..
            } => Ok(Some(publisher)),
            Credentials::Tokens {
                publisher: None, ..
            } => Err(CredentialsError::NoPublisher),
            Credentials::Open => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_with_the_same_secret() {
        let token = mint_hs256(b"secret", "alice", &["publisher"], Duration::from_secs(60));
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let mut mac = Hmac::<Sha256>::new_from_slice(b"secret").unwrap();
        mac.update(format!("{}.{}", parts[0], parts[1]).as_bytes());
        let expected = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        assert_eq!(parts[2], expected);
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["sub"], "alice");
        assert_eq!(claims["roles"][0], "publisher");
        assert!(claims["exp"].as_u64().unwrap() > 1_700_000_000);
    }
}
