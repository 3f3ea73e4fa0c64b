//! How much one person, and one collaborator's people together, may push a minute: the
//! mutations and their bytes. Token buckets in memory, per node (like the sign-in limits).
//! Past a quota a push is not applied: a client of protocol 3 hears `deferred` with a
//! `retry_after_ms` for each of its mutations, an older one has its connection closed with
//! 1013 (try again later); either keeps its outbox and pushes again later.

use std::time::Duration;

use crate::attempts::{Buckets, Rate};

/// The quotas of pushes (see the module's note).
#[derive(Clone, Debug)]
pub struct PushQuotas {
    pub mutations_per_account: Rate,
    pub bytes_per_account: Rate,
    /// Shared by the members of one collaborator of an event (the event team — seat
    /// holders and the organization's managers — counts as one).
    pub mutations_per_collaborator: Rate,
    pub bytes_per_collaborator: Rate,
}

impl Default for PushQuotas {
    fn default() -> Self {
        // A gate tablet back from a night offline pushes a few thousand scans at once; a
        // lane scans a few a second at the doors.
        PushQuotas {
            mutations_per_account: Rate { burst: 5_000, per_minute: 2_000 },
            bytes_per_account: Rate { burst: 16 << 20, per_minute: 8 << 20 },
            mutations_per_collaborator: Rate { burst: 50_000, per_minute: 20_000 },
            bytes_per_collaborator: Rate { burst: 128 << 20, per_minute: 64 << 20 },
        }
    }
}

#[derive(Default)]
pub struct Quotas {
    pub limits: PushQuotas,
    buckets: Buckets,
}

impl std::fmt::Debug for Quotas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Quotas").field("limits", &self.limits).finish()
    }
}

impl Quotas {
    pub fn new(limits: PushQuotas) -> Quotas {
        Quotas { limits, buckets: Buckets::default() }
    }

    /// Spends a push of `mutations` and `bytes` by `account` in `scope` (an event's
    /// collaborator), or says how long to wait. Nothing is spent when any quota refuses.
    pub fn spend(&self, account: &str, scope: &str, mutations: usize, bytes: usize) -> Result<(), Duration> {
        let l = &self.limits;
        let checks = [
            (format!("pm:{account}"), l.mutations_per_account, mutations),
            (format!("pb:{account}"), l.bytes_per_account, bytes),
            (format!("cm:{scope}"), l.mutations_per_collaborator, mutations),
            (format!("cb:{scope}"), l.bytes_per_collaborator, bytes),
        ];
        // Looked at first, spent only when all allow it.
        for (key, rate, cost) in &checks {
            self.buckets.check(key, *rate, *cost as f64).map_err(|w| w.0)?;
        }
        for (key, rate, cost) in &checks {
            let _ = self.buckets.spend(key, *rate, *cost as f64);
        }
        Ok(())
    }
}
