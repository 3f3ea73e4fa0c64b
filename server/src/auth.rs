//! Tokens: HS256 tokens this server signs at login, and RS256 tokens from an external
//! identity provider when its public key is configured. Every request that returns data
//! carries one; the extractor [`Caller`] verifies signature, expiry and issuer.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::{extract::FromRequestParts, http::request::Parts};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, decode_header, encode};
use serde::{Deserialize, Serialize};

use crate::{AppState, error::ApiError};

/// Issuer of the tokens this server signs.
pub const ISSUER: &str = "backops";
/// Clock skew tolerated when checking expiry, in seconds.
const LEEWAY_SECS: u64 = 5;
/// Longest accepted token, in bytes.
const TOKEN_LEN_MAX: usize = 8 * 1024;

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub iss: String,
    pub iat: u64,
    pub exp: u64,
    /// The sign-in (device session) the token was issued for: it is taken only while that
    /// sign-in has not ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

/// Who a verified token speaks for.
#[derive(Clone, Debug)]
pub struct Verified {
    pub account: String,
    /// Until when (Unix seconds).
    pub exp: u64,
    /// The sign-in it belongs to; none for an identity provider's own token.
    pub sign_in: Option<String>,
}

/// Issuer of file links: never accepted as a sign-in (and sign-ins never as links).
pub const LINK_ISSUER: &str = "backops-file-link";

/// A short-lived link to one file's bytes (its content or one thumbnail), for a browser's
/// `<img>` and downloads, which cannot send a bearer token. Whoever holds it acts as `sub`,
/// for this file only, until `exp`; access is checked again on every use.
#[derive(Debug, Serialize, Deserialize)]
pub struct LinkClaims {
    pub sub: String,
    pub iss: String,
    pub exp: u64,
    pub event: String,
    pub file: String,
    /// `content`, or a thumbnail's size (`256`, `1024`).
    pub variant: String,
}

/// Claims of a token from an external identity provider: the person is the provider's
/// subject (`iss` and `sub`), with an email the provider says it verified.
#[derive(Debug, Deserialize)]
struct ExternalClaims {
    sub: String,
    iss: String,
    email: Option<String>,
    #[serde(default)]
    email_verified: Option<serde_json::Value>,
    name: Option<String>,
    exp: u64,
}

/// Keys and rules for tokens.
pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    external: Option<DecodingKey>,
    external_issuer: Option<String>,
    external_audience: Option<String>,
    ttl: Duration,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens").field("external", &self.external.is_some()).field("ttl", &self.ttl).finish()
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl Tokens {
    pub fn new(
        secret: &[u8],
        external_public_key_pem: Option<&[u8]>,
        external_issuer: Option<String>,
        external_audience: Option<String>,
        ttl: Duration,
    ) -> Result<Tokens, String> {
        // A provider's key alone would take any token that key ever signed, for any
        // application and from any of its tenants: its issuer and audience are required.
        if external_public_key_pem.is_some() && (external_issuer.is_none() || external_audience.is_none()) {
            return Err("an identity provider's public key needs its issuer and audience too \
                        (--jwt-issuer and --jwt-audience, or BACKOPS_JWT_ISSUER and BACKOPS_JWT_AUDIENCE)"
                .into());
        }
        let external = external_public_key_pem
            .map(|pem| {
                DecodingKey::from_rsa_pem(pem).map_err(|e| format!("the JWT public key is not an RSA PEM key: {e}"))
            })
            .transpose()?;
        Ok(Tokens {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            external,
            external_issuer,
            external_audience,
            ttl,
        })
    }

    /// Signs an access token for `account`'s sign-in `sign_in`; returns it with its expiry
    /// (unix seconds).
    pub fn issue(&self, account: &str, sign_in: &str) -> Result<(String, u64), ApiError> {
        let iat = unix_now();
        let exp = iat + self.ttl.as_secs();
        let claims = Claims { sub: account.to_string(), iss: ISSUER.into(), iat, exp, sid: Some(sign_in.into()) };
        let token = encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).map_err(|e| {
            tracing::error!(error = %e, "token signing failed");
            ApiError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, "internal", "could not sign a token")
        })?;
        Ok((token, exp))
    }

    /// Signs a link to `variant` of a file for `account`, valid for `ttl`.
    pub fn sign_link(
        &self,
        account: &str,
        event: &str,
        file: &str,
        variant: &str,
        ttl: Duration,
    ) -> Result<(String, u64), ApiError> {
        let exp = unix_now() + ttl.as_secs();
        let claims = LinkClaims {
            sub: account.into(),
            iss: LINK_ISSUER.into(),
            exp,
            event: event.into(),
            file: file.into(),
            variant: variant.into(),
        };
        let token = encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).map_err(|e| {
            tracing::error!(error = %e, "link signing failed");
            ApiError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, "internal", "could not sign a link")
        })?;
        Ok((token, exp))
    }

    /// A link's claims, if this server signed it and it has not expired (expired: 403
    /// `link_expired`; anything else: not found).
    pub fn verify_link(&self, token: &str) -> Result<LinkClaims, ApiError> {
        if token.len() > TOKEN_LEN_MAX {
            return Err(ApiError::not_found());
        }
        let mut v = Validation::new(Algorithm::HS256);
        v.leeway = LEEWAY_SECS;
        v.set_issuer(&[LINK_ISSUER]);
        v.set_required_spec_claims(&["exp", "sub", "iss"]);
        decode::<LinkClaims>(token, &self.decoding, &v).map(|d| d.claims).map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "link_expired",
                "this link has expired; ask for a new one",
            ),
            _ => ApiError::not_found(),
        })
    }

    fn reject(e: &jsonwebtoken::errors::Error) -> TokenError {
        match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
            _ => TokenError::Invalid("the token is not valid"),
        }
    }

    /// Verifies a token: its signature, expiry and issuer, and for a token this server
    /// signed, that its sign-in has not ended (one read by key, so an ended sign-in is
    /// refused at once, on every node).
    pub async fn verify(&self, state: &AppState, token: &str) -> Result<Verified, TokenError> {
        if token.len() > TOKEN_LEN_MAX {
            return Err(TokenError::Invalid("the token is not valid"));
        }
        let header = decode_header(token).map_err(|e| Self::reject(&e))?;
        match header.alg {
            Algorithm::HS256 => {
                let mut v = Validation::new(Algorithm::HS256);
                v.leeway = LEEWAY_SECS;
                v.set_issuer(&[ISSUER]);
                v.set_required_spec_claims(&["exp", "sub", "iss"]);
                let c = decode::<Claims>(token, &self.decoding, &v).map_err(|e| Self::reject(&e))?.claims;
                // A token of no sign-in (signed before sign-ins existed) is not taken: its
                // device signs in again.
                let Some(sid) = c.sid else { return Err(TokenError::Invalid("the token is not valid")) };
                match state.engine.sign_in_account(&sid).await.map_err(|e| TokenError::Unavailable(e.into()))? {
                    Some(account) if account == c.sub => Ok(Verified { account, exp: c.exp, sign_in: Some(sid) }),
                    Some(_) => Err(TokenError::Invalid("the token is not valid")),
                    None => Err(TokenError::Ended),
                }
            }
            Algorithm::RS256 => {
                let Some(key) = &self.external else { return Err(TokenError::Invalid("the token is not valid")) };
                let (Some(iss), Some(aud)) = (&self.external_issuer, &self.external_audience) else {
                    return Err(TokenError::Invalid("the token is not valid"));
                };
                let mut v = Validation::new(Algorithm::RS256);
                v.leeway = LEEWAY_SECS;
                v.set_issuer(&[iss]);
                v.set_audience(&[aud]);
                v.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
                let data = decode::<ExternalClaims>(token, key, &v).map_err(|e| Self::reject(&e))?;
                let c = data.claims;
                let Some(email) = c.email else {
                    return Err(TokenError::Invalid("the identity provider's token carries no email claim"));
                };
                // Some providers send the flag as a string.
                let verified = matches!(&c.email_verified, Some(serde_json::Value::Bool(true)))
                    || matches!(&c.email_verified, Some(serde_json::Value::String(s)) if s == "true");
                if !verified {
                    return Err(TokenError::Invalid(
                        "the identity provider has not verified this email (email_verified)",
                    ));
                }
                let identity = format!("{}|{}", c.iss, c.sub);
                let account =
                    state.engine.external_account(&identity, &email, c.name.as_deref()).await.map_err(|e| match e {
                        engine::Error::Conflict { .. } => TokenError::Invalid(
                            "an account with this email signs in another way; the identity provider's token is not linked to it",
                        ),
                        e => TokenError::Unavailable(e.into()),
                    })?;
                Ok(Verified { account: account.id, exp: c.exp, sign_in: None })
            }
            _ => Err(TokenError::Invalid("the token's algorithm is not accepted")),
        }
    }
}

/// Why a token is not taken.
#[derive(Debug)]
pub enum TokenError {
    /// It has expired: renew it (or sign in again) and resume from the cursors.
    Expired,
    /// Its sign-in has ended (signed out, ended from another device or by the event team,
    /// a password change, a replayed refresh token): sign in again.
    Ended,
    /// Not a token of this deployment, tampered with, of an algorithm or issuer not accepted,
    /// or of an account that does not exist; the sentence is the caller's to read.
    Invalid(&'static str),
    /// The account behind it could not be looked up or provisioned.
    Unavailable(ApiError),
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::Expired => {
                ApiError::unauthenticated("token_expired", "the token has expired; renew it or sign in again")
            }
            TokenError::Ended => ApiError::unauthenticated("sign_in_ended", "this sign-in has ended; sign in again"),
            TokenError::Invalid(why) => ApiError::unauthenticated("invalid_token", why),
            TokenError::Unavailable(e) => e,
        }
    }
}

/// The authenticated caller of a request: their account id.
#[derive(Debug, Clone)]
pub struct Caller(pub String);

/// The caller with the sign-in their token belongs to.
#[derive(Debug, Clone)]
pub struct SignedIn(pub Verified);

/// The bearer token of a request.
fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let header = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthenticated("unauthenticated", "this request needs a bearer token"))?;
    header
        .to_str()
        .ok()
        .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError::unauthenticated("unauthenticated", "the Authorization header must be `Bearer <token>`")
        })
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let v = state.tokens.verify(state, bearer(parts)?).await?;
        tracing::Span::current().record("caller", v.account.as_str());
        Ok(SignedIn(v))
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        SignedIn::from_request_parts(parts, state).await.map(|SignedIn(v)| Caller(v.account))
    }
}
