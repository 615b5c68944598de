//! Carrying out decided actions, in the order that keeps every partition
//! wholly where it was or wholly where it is going, whenever a crash
//! stops it:
//!
//! ```text
//! move:   _sluice_moving (hot) ─> copy each object (sidecars first), head the copy, compare sizes
//!         ─> _sluice_moved (cold) ─> delete the hot objects ─> audit ─> remove _sluice_moving
//! delete: _sluice_expiring (each store holding some of it) ─> delete the objects (bulk)
//!         ─> audit ─> remove _sluice_expiring
//! ```
//!
//! Readers obey the markers (see `sluice_core::layout`): until
//! `_sluice_moved` exists the hot copy is the partition; from then on the
//! cold copies are, and a hot blob of the same name is skipped; a store
//! holding `_sluice_expiring` shows nothing of the partition. A marker
//! holds the action's audit event, so a pass that finds it finishes the
//! same action and reports it under the same id.

use futures::{FutureExt, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{Attribute, Attributes, ObjectStoreExt, PutOptions, PutPayload};
use sluice_core::audit::Event;
use sluice_core::layout::{EXPIRING_MARKER, INDEX_SUFFIX, MOVED_MARKER, MOVING_MARKER, Partition};
use sluice_core::store::{Store, get_bytes};

use crate::plan::{Action, Kind};
use crate::{Expiry, Nats};

/// Objects copied at once within one partition.
const COPY_CONCURRENCY: usize = 4;
/// Markers written or read at once.
const MARKER_CONCURRENCY: usize = 16;
/// Keys per S3 multi-object delete request.
const DELETE_BATCH: usize = 1000;

/// Why an action did not finish (the partition stays as it was, or
/// marked, for the next pass).
pub type Failure = (Partition, String);

impl Expiry {
    /// The full key of an object of `partition` in `store`.
    fn key(store: &Store, partition: &Partition, name: &str) -> Path {
        store.key(&format!("{}/{name}", partition.prefix()))
    }

    /// The event an action reports: the one its marker holds when it is
    /// resumed, else a new one.
    async fn event(&self, action: &Action) -> Event {
        let p = action.partition();
        let marker = match action.kind {
            Kind::Move => action
                .observed
                .hot
                .has(MOVING_MARKER)
                .then_some((&self.hot, MOVING_MARKER)),
            Kind::Delete => {
                if action.observed.hot.has(EXPIRING_MARKER) {
                    Some((&self.hot, EXPIRING_MARKER))
                } else if action.observed.cold.has(EXPIRING_MARKER) {
                    self.cold.as_ref().map(|c| (&c.store, EXPIRING_MARKER))
                } else {
                    None
                }
            }
        };
        if let Some((store, name)) = marker {
            self.metrics.requests("get", 1);
            if let Ok(bytes) = get_bytes(store.inner.as_ref(), &Self::key(store, p, name)).await
                && let Ok(event) = serde_json::from_slice::<Event>(&bytes)
            {
                return event;
            }
        }
        Event {
            id: ulid::Ulid::new().to_string(),
            at: String::new(),
            kind: "expiry".into(),
            action: action.kind.done().into(),
            app: p.app.clone(),
            partition: p.prefix(),
            from: action.from().into(),
            objects: action.objects() as u64,
            bytes: action.bytes(),
            rule: action.rule.clone(),
            instance: self.instance.clone(),
        }
    }

    async fn put_marker(
        &self,
        store: &Store,
        p: &Partition,
        name: &str,
        event: &Event,
    ) -> object_store::Result<()> {
        self.metrics.requests("put", 1);
        let body = serde_json::to_vec(event).unwrap_or_default();
        store
            .inner
            .put(&Self::key(store, p, name), PutPayload::from(body))
            .await
            .map(|_| ())
    }

    /// Deletes `keys` from `store` in bulk (multi-object deletes on S3);
    /// a key already gone counts as deleted.
    pub(crate) async fn delete_all(&self, store: &Store, keys: Vec<Path>) -> Result<(), String> {
        if keys.is_empty() {
            return Ok(());
        }
        let requests = if store.url.starts_with("s3://") {
            keys.len().div_ceil(DELETE_BATCH)
        } else {
            keys.len()
        };
        self.metrics.requests("delete", requests as u64);
        let input = futures::stream::iter(keys.into_iter().map(Ok)).boxed();
        let mut results = store.inner.delete_stream(input);
        let mut first_error = None;
        while let Some(result) = results.next().await {
            match result {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(err) => {
                    first_error.get_or_insert_with(|| err.to_string());
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Carries out the deletes of one day, in bulk; returns what failed.
    pub(crate) async fn delete(
        &self,
        nats: &Nats,
        actions: Vec<Action>,
    ) -> (Vec<(Action, Event)>, Vec<Failure>) {
        let mut failed = Vec::new();
        // 1. Mark each partition expiring in every store that holds some of
        //    it; from here on readers skip it.
        let marked: Vec<(Action, Event, Result<(), String>)> = futures::stream::iter(actions)
            .map(|action| {
                async move {
                    let event = self.event(&action).await;
                    let result = self.mark_expiring(&action, &event).await;
                    (action, event, result)
                }
                .boxed()
            })
            .buffer_unordered(MARKER_CONCURRENCY)
            .collect()
            .await;
        let mut ready = Vec::new();
        for (action, event, result) in marked {
            match result {
                Ok(()) => ready.push((action, event)),
                Err(err) => failed.push((
                    action.partition().clone(),
                    format!("marking it expiring: {err}"),
                )),
            }
        }
        // 2. Remove the objects, and the move markers last.
        let (mut hot_keys, mut cold_keys) = (Vec::new(), Vec::new());
        for (action, _) in &ready {
            let (p, o) = (action.partition(), &action.observed);
            hot_keys.extend(
                o.hot
                    .objects
                    .iter()
                    .map(|x| Self::key(&self.hot, p, &x.name)),
            );
            if let Some(cold) = &self.cold {
                cold_keys.extend(
                    o.cold
                        .objects
                        .iter()
                        .map(|x| Self::key(&cold.store, p, &x.name)),
                );
            }
        }
        let mut result = self.delete_all(&self.hot, hot_keys).await;
        if let Some(cold) = &self.cold
            && result.is_ok()
        {
            result = self.delete_all(&cold.store, cold_keys).await;
        }
        let mut markers_hot = Vec::new();
        let mut markers_cold = Vec::new();
        for (action, _) in &ready {
            let (p, o) = (action.partition(), &action.observed);
            if o.hot.has(MOVING_MARKER) {
                markers_hot.push(Self::key(&self.hot, p, MOVING_MARKER));
            }
            if let Some(cold) = &self.cold
                && o.cold.has(MOVED_MARKER)
            {
                markers_cold.push(Self::key(&cold.store, p, MOVED_MARKER));
            }
        }
        if result.is_ok() {
            result = self.delete_all(&self.hot, markers_hot).await;
        }
        if let Some(cold) = &self.cold
            && result.is_ok()
        {
            result = self.delete_all(&cold.store, markers_cold).await;
        }
        if let Err(err) = result {
            failed.extend(
                ready
                    .iter()
                    .map(|(a, _)| (a.partition().clone(), format!("deleting: {err}"))),
            );
            return (Vec::new(), failed);
        }
        // 3. Report, then 4. remove the expiring markers of those reported.
        let (done, unreported) = self.report(nats, ready).await;
        failed.extend(unreported);
        let (mut hot, mut cold_markers) = (Vec::new(), Vec::new());
        for (action, _) in &done {
            let (p, o) = (action.partition(), &action.observed);
            if !o.hot.is_empty() {
                hot.push(Self::key(&self.hot, p, EXPIRING_MARKER));
            }
            if let Some(cold) = &self.cold
                && !o.cold.is_empty()
            {
                cold_markers.push(Self::key(&cold.store, p, EXPIRING_MARKER));
            }
        }
        let mut result = self.delete_all(&self.hot, hot).await;
        if let Some(cold) = &self.cold
            && result.is_ok()
        {
            result = self.delete_all(&cold.store, cold_markers).await;
        }
        if let Err(err) = result {
            // Deleted and reported; the markers go at the next pass.
            tracing::warn!(error = %err, "cannot remove expiring markers yet");
        }
        (done, failed)
    }

    async fn mark_expiring(&self, action: &Action, event: &Event) -> Result<(), String> {
        let (p, o) = (action.partition(), &action.observed);
        if !o.hot.is_empty() && !o.hot.has(EXPIRING_MARKER) {
            self.put_marker(&self.hot, p, EXPIRING_MARKER, event)
                .await
                .map_err(|e| e.to_string())?;
        }
        if let Some(cold) = &self.cold
            && !o.cold.is_empty()
            && !o.cold.has(EXPIRING_MARKER)
        {
            self.put_marker(&cold.store, p, EXPIRING_MARKER, event)
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Stores the audit events of finished actions; those that cannot be
    /// stored fail (their markers stay, and the next pass reports them).
    async fn report(
        &self,
        nats: &Nats,
        finished: Vec<(Action, Event)>,
    ) -> (Vec<(Action, Event)>, Vec<Failure>) {
        let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let stored: Vec<_> =
            futures::future::join_all(finished.into_iter().map(|(action, mut event)| {
                event.at = at.clone();
                async move {
                    let result = sluice_core::audit::publish(&nats.js, &event).await;
                    (action, event, result)
                }
            }))
            .await;
        let (mut done, mut failed) = (Vec::new(), Vec::new());
        for (action, event, result) in stored {
            match result {
                Ok(()) => {
                    tracing::info!(
                        target: "sluice::audit",
                        id = %event.id, action = %event.action, app = %event.app, partition = %event.partition,
                        from = %event.from, objects = event.objects, bytes = event.bytes, rule = %event.rule,
                        instance = %event.instance, "partition {}", event.action
                    );
                    self.metrics
                        .acted(&event.app, &event.action, event.objects, event.bytes);
                    done.push((action, event));
                }
                Err(err) => failed.push((action.partition().clone(), format!("audit: {err}"))),
            }
        }
        (done, failed)
    }

    /// Moves one partition to the cold store.
    pub(crate) async fn move_one(
        &self,
        nats: &Nats,
        action: Action,
    ) -> Result<(Action, Event), Failure> {
        let p = action.partition().clone();
        let fail = |what: &str, err: String| (p.clone(), format!("{what}: {err}"));
        let Some(cold) = &self.cold else {
            return Err(fail("moving", "no [cold_store]".into()));
        };
        let event = self.event(&action).await;
        let hot = &action.observed.hot;
        if !hot.has(MOVING_MARKER) {
            self.put_marker(&self.hot, &p, MOVING_MARKER, &event)
                .await
                .map_err(|e| fail("marking it moving", e.to_string()))?;
        }
        // Sidecars first: a blob that shows in the cold store has its
        // sidecar there already.
        let mut objects = hot.objects.clone();
        objects.sort_by_key(|o| !o.name.ends_with(INDEX_SUFFIX));
        let p2 = &p;
        let copies = futures::stream::iter(objects)
            .map(|o| async move { self.copy(cold, p2, &o.name, o.size).await }.boxed())
            .buffered(COPY_CONCURRENCY);
        copies
            .try_collect::<Vec<()>>()
            .await
            .map_err(|e| fail("copying", e))?;
        self.put_marker(&cold.store, &p, MOVED_MARKER, &event)
            .await
            .map_err(|e| fail("marking the copies complete", e.to_string()))?;
        let keys = hot
            .objects
            .iter()
            .map(|o| Self::key(&self.hot, &p, &o.name))
            .collect();
        self.delete_all(&self.hot, keys)
            .await
            .map_err(|e| fail("deleting the hot objects", e))?;
        let (mut done, failed) = self.report(nats, vec![(action, event)]).await;
        if let Some(f) = failed.into_iter().next() {
            return Err(f);
        }
        let (action, event) = done
            .pop()
            .ok_or_else(|| fail("audit", "not reported".into()))?;
        if let Err(err) = self
            .delete_all(&self.hot, vec![Self::key(&self.hot, &p, MOVING_MARKER)])
            .await
        {
            tracing::warn!(partition = %p.prefix(), error = %err, "cannot remove the moving marker yet");
        }
        Ok((action, event))
    }

    /// Copies one object to the cold store and checks the copy's size.
    async fn copy(
        &self,
        cold: &crate::ColdTier,
        p: &Partition,
        name: &str,
        size: u64,
    ) -> Result<(), String> {
        let from = Self::key(&self.hot, p, name);
        let to = Self::key(&cold.store, p, name);
        self.metrics.requests("get", 1);
        let bytes = get_bytes(self.hot.inner.as_ref(), &from)
            .await
            .map_err(|e| format!("reading {from}: {e}"))?;
        if bytes.len() as u64 != size {
            return Err(format!("{from} is {} bytes, listed as {size}", bytes.len()));
        }
        let mut attributes = Attributes::new();
        if let Some(class) = &cold.storage_class {
            attributes.insert(Attribute::StorageClass, class.clone().into());
        }
        let opts = PutOptions {
            attributes,
            ..PutOptions::default()
        };
        self.metrics.requests("put", 1);
        cold.store
            .inner
            .put_opts(&to, PutPayload::from(bytes), opts)
            .await
            .map_err(|e| format!("writing {to}: {e}"))?;
        self.metrics.requests("head", 1);
        let copy = cold
            .store
            .inner
            .head(&to)
            .await
            .map_err(|e| format!("checking {to}: {e}"))?;
        if copy.size != size {
            return Err(format!(
                "the copy {to} is {} bytes, the original {size}",
                copy.size
            ));
        }
        Ok(())
    }
}
