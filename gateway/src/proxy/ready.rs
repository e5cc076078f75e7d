//! Readiness (`GET /_gateway/ready`, also on the admin listener): what the gateway still needs
//! before it should get traffic.
//!
//! Ready means: the token store answers (Redis: and the subscriber is subscribed), every
//! provider's metadata and signing keys were fetched once, and an upstream passed its latest
//! health check. `/_gateway/health` stays liveness and says none of this.

use std::sync::Arc;

use arc_swap::ArcSwap;

use super::upstream::UpstreamHealth;
use super::Live;
use crate::store::TokenStore;

/// What [`Readiness::missing`] names when the store is not ready.
pub const MISSING_STORE: &str = "store";
/// What [`Readiness::missing`] names when no upstream passed its latest health check.
pub const MISSING_UPSTREAM: &str = "upstream";
/// Prefix of what [`Readiness::missing`] names for a provider not yet fetched (`provider:NAME`).
pub const MISSING_PROVIDER_PREFIX: &str = "provider:";

/// The readiness checks of one gateway; cheap to share.
pub struct Readiness {
    store: Arc<dyn TokenStore>,
    live: Arc<ArcSwap<Live>>,
    upstreams: UpstreamHealth,
}

impl Readiness {
    /// Checks `store`, the providers of the current `live` config and `upstreams`.
    pub fn new(store: Arc<dyn TokenStore>, live: Arc<ArcSwap<Live>>, upstreams: UpstreamHealth) -> Self {
        Self { store, live, upstreams }
    }

    /// What is not ready yet, in a fixed order (store, providers by name, upstream); empty when
    /// ready. A Redis store is asked within its `store.timeout`.
    pub async fn missing(&self) -> Vec<String> {
        let mut missing = Vec::new();
        if !self.store.is_ready().await {
            missing.push(MISSING_STORE.to_owned());
        }
        let live = self.live.load_full();
        for name in live.auth().providers().cold() {
            missing.push(format!("{MISSING_PROVIDER_PREFIX}{name}"));
        }
        if !self.upstreams.any_passed() {
            missing.push(MISSING_UPSTREAM.to_owned());
        }
        missing
    }
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readiness").finish_non_exhaustive()
    }
}
