//! Service discovery: where the set of backends comes from.
//!
//! A [`ServiceDiscovery`] answers "which backends exist now"; the load
//! balancer asks it on every `update()` (every `update_frequency` when it
//! runs as a background service) and swaps the answer in when it changed.
//!
//! - [`Static`]: a list given in code (changeable at run time with
//!   [`Static::add`] / [`Static::remove`]);
//! - [`Dns`]: host names re-resolved on every update; a name with several
//!   addresses gives several backends, and a failed resolution keeps the
//!   name's last good addresses.

mod dns;
mod resolver;
mod static_list;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use proxy_core::Result;

use crate::Backend;

pub use dns::{Dns, DnsTarget};
pub use resolver::{HostsFile, Resolve, SystemResolver};
pub use static_list::Static;

/// A source of backends.
#[async_trait]
pub trait ServiceDiscovery {
    /// The backends that exist now, and which of them are enabled: the map
    /// is keyed by [`Backend::hash_key`]; a backend missing from it is
    /// enabled. A disabled backend stays in the set (and is health-checked)
    /// but is never selected.
    ///
    /// # Errors
    /// When the source cannot be read at all; the load balancer then keeps
    /// its current set and logs the error.
    async fn discover(&self) -> Result<(BTreeSet<Backend>, HashMap<u64, bool>)>;
}

/// Discovery shared behind an `Arc` is discovery: keep one handle (to call
/// [`Static::add`], say) and give the load balancer another.
#[async_trait]
impl<T> ServiceDiscovery for Arc<T>
where
    T: ServiceDiscovery + Send + Sync + ?Sized,
{
    async fn discover(&self) -> Result<(BTreeSet<Backend>, HashMap<u64, bool>)> {
        T::discover(self).await
    }
}
