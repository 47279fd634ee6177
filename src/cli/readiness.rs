//! The readiness checks `ferry run` gives its status server: config loaded, state store open,
//! destination reachable (one listing page of the destination container with the destination's
//! own token). Glue between `telemetry::server` (which knows nothing of destinations) and the
//! pipeline's parts. Must not: change anything (every check only reads).

use std::sync::Arc;

use futures::future::BoxFuture;

use crate::pipeline::Supervisor;
use crate::sink::Destination;
use crate::state::{CheckpointStore, ObjectKey};
use crate::telemetry::server::ReadinessCheck;

/// Passed once the config was loaded and validated (the status server starts after that).
struct ConfigLoaded;

impl ReadinessCheck for ConfigLoaded {
    fn check(&self) -> BoxFuture<'static, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }
}

/// The checkpoint store answers a read.
struct StateStoreOpen(Arc<dyn CheckpointStore>);

impl ReadinessCheck for StateStoreOpen {
    fn check(&self) -> BoxFuture<'static, Result<(), String>> {
        let store = self.0.clone();
        Box::pin(async move {
            let key = ObjectKey::new("_ferry", "_readyz", "_probe");
            match tokio::task::spawn_blocking(move || store.load(&key)).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(format!("state store: {e}")),
                Err(e) => Err(format!("state store: the check did not finish: {e}")),
            }
        })
    }
}

/// One page of the destination container lists with the destination token.
struct DestinationReachable(Destination);

impl ReadinessCheck for DestinationReachable {
    fn check(&self) -> BoxFuture<'static, Result<(), String>> {
        let dest = self.0.clone();
        Box::pin(async move {
            let c = dest.container();
            let what = format!("destination {}/{}", c.account_url(), c.container());
            let bearer = dest.bearer().await.map_err(|e| format!("{what}: {e}"))?;
            c.list_page(&bearer, None, None, 1)
                .await
                .map(|_| ())
                .map_err(|e| format!("{what}: {e}"))
        })
    }
}

/// The checks of `/readyz`, by name.
pub fn checks(supervisor: &Supervisor) -> Vec<(String, Arc<dyn ReadinessCheck>)> {
    vec![
        (
            "config_loaded".into(),
            Arc::new(ConfigLoaded) as Arc<dyn ReadinessCheck>,
        ),
        (
            "state_store_open".into(),
            Arc::new(StateStoreOpen(supervisor.store().clone())),
        ),
        (
            "destination_reachable".into(),
            Arc::new(DestinationReachable(supervisor.destination().clone())),
        ),
    ]
}
