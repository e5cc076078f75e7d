//! The Teams namespace of the shared store:
//!
//! ```text
//!  {prefix}m:s:{key}   sealed state (pending sign-ins, validated users), PX its lifetime
//!  {prefix}m:n:{key}   a counter (wrong codes, handled invokes), PX its lifetime from creation
//! ```
//! `key` is a keyed digest made by the Teams service: no user id or code appears in a name.
//! Takes are `GETDEL`, so a pending sign-in is redeemed by exactly one instance.

use std::time::Duration;

use redis::AsyncCommands;

use super::{unavailable, RedisStore};
use crate::store::StoreError;

fn px(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl RedisStore {
    fn teams_state_name(&self, key: &str) -> String {
        format!("{}m:s:{key}", self.prefix)
    }

    pub(super) async fn put_teams(&self, key: &str, value: Vec<u8>, ttl: Duration) -> Result<(), StoreError> {
        let name = self.teams_state_name(key);
        let sealed = self.sealer.seal(&name, &value).ok_or_else(|| unavailable("sealing failed"))?;
        let px = px(ttl);
        self.run(|mut c| async move { c.pset_ex::<_, _, ()>(name, sealed, px).await }).await
    }

    /// The state under `key`; with `take`, removed in the same step (`GETDEL`, atomic).
    pub(super) async fn get_teams(&self, key: &str, take: bool) -> Result<Option<Vec<u8>>, StoreError> {
        let name = self.teams_state_name(key);
        let k = name.clone();
        let raw: Option<Vec<u8>> = if take {
            self.run(|mut c| async move { c.get_del(k).await }).await?
        } else {
            self.run(|mut c| async move { c.get(k).await }).await?
        };
        Ok(raw.and_then(|r| self.sealer.open(&name, &r)))
    }

    /// `SET NX PX` then `INCR` in one transaction: the lifetime is set once, at creation.
    pub(super) async fn incr_teams(&self, key: &str, ttl: Duration) -> Result<u64, StoreError> {
        let name = format!("{}m:n:{key}", self.prefix);
        let px = px(ttl);
        let (count,): (u64,) = self
            .run(|mut c| async move {
                redis::pipe()
                    .atomic()
                    .cmd("SET")
                    .arg(&name)
                    .arg(0)
                    .arg("NX")
                    .arg("PX")
                    .arg(px)
                    .ignore()
                    .incr(&name, 1)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        Ok(count)
    }
}
