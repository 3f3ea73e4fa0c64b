//! The sign-in a device keeps: its access token and the refresh token that renews it, so
//! that a device restarted with nobody at it (a gate tablet after a power cut, or after a
//! night offline) connects again and sends what it holds. Kept in the replica's own store,
//! inside the app's private data directory.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::Replica;
use crate::Result;

/// A device's tokens: `token` signs its connections; `refresh_token`, when it has one,
/// renews it (see the server's `/v1/sessions/refresh`).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignInTokens {
    pub token: String,
    #[serde(default)]
    pub refresh_token: Option<String>,
}

impl std::fmt::Debug for SignInTokens {
    /// Never shows a token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignInTokens").field("renewable", &self.refresh_token.is_some()).finish()
    }
}

impl Replica {
    /// The tokens kept on this device, if any.
    pub async fn kept_sign_in(&self) -> Result<Option<SignInTokens>> {
        self.inner.store.run("SELECT VALUE sign_in FROM type::record('meta', 'device')", json!({})).await?.value(0)
    }

    /// Keeps `tokens` (a sign-in, or its renewal), or with `None` forgets them (signed out,
    /// or the sign-in ended).
    pub async fn keep_sign_in(&self, tokens: Option<&SignInTokens>) -> Result<()> {
        self.inner
            .store
            .run("UPDATE type::record('meta', 'device') SET sign_in = $t RETURN NONE", json!({ "t": tokens }))
            .await?;
        Ok(())
    }
}
