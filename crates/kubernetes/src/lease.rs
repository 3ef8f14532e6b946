//! The coordinator's leadership: a Kubernetes Lease held with `kube-lease-manager`.
//! A standby coordinator waits in [`Leadership::acquire`] until the lease is free; the
//! holder's epoch is the lease's `leaseTransitions` after it took it (each new holder
//! raises it), which workers use to refuse a deposed coordinator. The holder renews the
//! lease in the background; [`Leadership::lost`] resolves when it no longer holds it —
//! taken over, or not confirmed within the lease's duration (the API server out of
//! reach) — and a coordinator then stops at once, before a successor can act.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use kube_lease_manager::{LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::KubeError;

/// A held coordinator lease.
#[derive(Debug)]
pub struct Leadership {
    /// The lease's name.
    pub name: String,
    /// Who holds it (this coordinator).
    pub identity: String,
    /// This holder's term: the lease's transitions when it was taken.
    pub epoch: u64,
    held: watch::Receiver<bool>,
    manager: Option<JoinHandle<Result<kube_lease_manager::LeaseManager, LeaseManagerError>>>,
    checker: JoinHandle<()>,
}

impl Drop for Leadership {
    fn drop(&mut self) {
        if let Some(m) = &self.manager {
            m.abort();
        }
        self.checker.abort();
    }
}

fn lease_error(name: &str) -> impl Fn(LeaseManagerError) -> KubeError + '_ {
    move |e| KubeError::Lease { name: name.to_owned(), reason: e.to_string() }
}

impl Leadership {
    /// Wait until this coordinator (`identity`) holds the lease `name` in `namespace`
    /// (created if missing); it lasts `duration` (at least 4 s) past each renewal.
    pub async fn acquire(client: kube::Client, namespace: &str, name: &str, identity: &str, duration: Duration) -> Result<Leadership, KubeError> {
        // At least 4 s: renewed at half its duration, read every eighth.
        let seconds = duration.as_secs().max(4);
        let manager = LeaseManagerBuilder::new(client.clone(), name)
            .with_namespace(namespace)
            .with_identity(identity)
            .with_duration(seconds)
            // Renewed this long before it would expire: at half its duration.
            .with_grace(seconds / 2)
            .build()
            .await
            .map_err(lease_error(name))?;
        let leases: Api<Lease> = Api::namespaced(client, namespace);
        let (mut held, manager) = manager.watch().await;
        let mut last_said = None::<Instant>;
        while !*held.borrow_and_update() {
            if last_said.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                let holder = leases.get(name).await.ok().and_then(|l| l.spec?.holder_identity).unwrap_or_default();
                tracing::info!(lease = name, holder = %holder, "waiting for the coordinator lease (standby)");
                last_said = Some(Instant::now());
            }
            if tokio::time::timeout(Duration::from_secs(10), held.changed()).await.is_ok_and(|r| r.is_err()) {
                let reason = match manager.await {
                    Ok(Err(e)) => e.to_string(),
                    _ => "the lease manager stopped".to_owned(),
                };
                return Err(KubeError::Lease { name: name.to_owned(), reason });
            }
        }
        // The epoch: raise the lease's transitions once more, by this holder, with the
        // version read as a precondition, so it is above whatever any earlier holder
        // read as its own (even if the manager's raise of it failed).
        let mut attempts = 0;
        let (spec, epoch) = loop {
            attempts += 1;
            let mut lease = leases.get(name).await.map_err(KubeError::api(format!("reading lease {name}")))?;
            let mut spec = lease.spec.clone().unwrap_or_default();
            if spec.holder_identity.as_deref() != Some(identity) {
                return Err(KubeError::Lease { name: name.to_owned(), reason: format!("taken by {:?} as soon as it was won", spec.holder_identity) });
            }
            let epoch = spec.lease_transitions.unwrap_or(0).max(0).saturating_add(1);
            spec.lease_transitions = Some(epoch);
            lease.spec = Some(spec.clone());
            match leases.replace(name, &kube::api::PostParams::default(), &lease).await {
                Ok(_) => break (spec, epoch as u64),
                // The manager renewed in between: read again.
                Err(kube::Error::Api(s)) if s.is_conflict() && attempts < 10 => continue,
                Err(e) => return Err(KubeError::Api { what: format!("raising the epoch of lease {name}"), source: e }),
            }
        };
        tracing::info!(lease = name, identity, epoch, "holding the coordinator lease");
        // Confirm independently that the lease is still ours and renewed in time: the
        // manager retries quietly when the API server is out of reach. The deadline is
        // the last renewal seen (its time written by this process's manager, so by this
        // clock) plus the lease's duration, less a quarter for reads in flight and skew:
        // this coordinator stops before a successor may take the lease, whether or not
        // the API server answers.
        let (lost_tx, lost_rx) = watch::channel(true);
        let mut watched = held.clone();
        let (name_c, identity_c) = (name.to_owned(), identity.to_owned());
        let duration = Duration::from_secs(seconds);
        let margin = duration / 4;
        let deadline_of = move |spec: &k8s_openapi::api::coordination::v1::LeaseSpec| -> Option<tokio::time::Instant> {
            let renewed_ms = spec.renew_time.as_ref()?.0.as_millisecond();
            let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()?.as_millis() as i64;
            let left_ms = renewed_ms + duration.as_millis() as i64 - margin.as_millis() as i64 - now_ms;
            Some(tokio::time::Instant::now() + Duration::from_millis(left_ms.max(0) as u64))
        };
        let first = deadline_of(&spec).unwrap_or_else(|| tokio::time::Instant::now() + duration - margin);
        let checker = tokio::spawn(async move {
            let mut deadline = first;
            let mut tick = tokio::time::interval(duration / 8);
            loop {
                tokio::select! {
                    changed = watched.changed() => {
                        if changed.is_err() || !*watched.borrow() {
                            tracing::error!(lease = %name_c, "the coordinator lease was lost");
                            let _ = lost_tx.send(false);
                            return;
                        }
                    }
                    () = tokio::time::sleep_until(deadline) => {
                        tracing::error!(lease = %name_c, "the coordinator lease was not renewed in time");
                        let _ = lost_tx.send(false);
                        return;
                    }
                    _ = tick.tick() => {
                        match tokio::time::timeout(duration / 8, leases.get(&name_c)).await {
                            Ok(Ok(l)) => {
                                let spec = l.spec.unwrap_or_default();
                                if spec.holder_identity.as_deref() != Some(identity_c.as_str()) {
                                    let holder = spec.holder_identity.unwrap_or_default();
                                    tracing::error!(lease = %name_c, %holder, "the coordinator lease was taken over");
                                    let _ = lost_tx.send(false);
                                    return;
                                }
                                if let Some(d) = deadline_of(&spec) {
                                    deadline = d;
                                }
                            }
                            Ok(Err(e)) => tracing::warn!(lease = %name_c, "cannot read the coordinator lease: {e}"),
                            Err(_) => tracing::warn!(lease = %name_c, "reading the coordinator lease timed out"),
                        }
                    }
                }
            }
        });
        Ok(Leadership { name: name.to_owned(), identity: identity.to_owned(), epoch, held: lost_rx, manager: Some(manager), checker })
    }

    /// Give the lease up now (a shutdown), so that a standby need not wait for it to
    /// expire. The caller exits right after: until the release returns it still holds
    /// the lease, so what it does meanwhile is still fenced in.
    pub async fn release(mut self) {
        // The manager releases the lease once nobody watches its state (the checker).
        self.checker.abort();
        if let Some(m) = self.manager.take() {
            match tokio::time::timeout(std::time::Duration::from_secs(5), m).await {
                Ok(Ok(Ok(_))) => tracing::info!(lease = %self.name, "released the coordinator lease"),
                Ok(Ok(Err(e))) => tracing::warn!(lease = %self.name, "releasing the coordinator lease: {e}"),
                _ => tracing::warn!(lease = %self.name, "the coordinator lease was not released in time; it expires by itself"),
            }
        }
    }

    /// Resolves when this coordinator no longer holds the lease.
    pub async fn lost(&mut self) {
        while *self.held.borrow_and_update() {
            if self.held.changed().await.is_err() {
                return;
            }
        }
    }
}
