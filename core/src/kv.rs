//! Compare-and-set on JetStream KV: the one read–decide–write loop every
//! shared state of the tier is written with (error groups, hourly counts,
//! alert group states, delivery and compaction claims, dirty partitions).
//!
//! ```text
//!  read(key) ─> Current ─> decide ─┬─ Write { value } ─> write at Current's revision ─┬─ Ok(revision)
//!       ^                          │                                                  ├─ Conflict: read again
//!       └──────── Reread ──────────┤                                                  └─ other error: returned
//!                                  └─ Done(outcome): nothing written
//! ```
//!
//! Invariants:
//!
//! * A write names the revision it was decided on: revision 0 (the key was
//!   absent) creates, any other revision updates. So a write never
//!   overwrites what another writer stored after the read.
//! * [`CasError::Conflict`] means exactly that: another writer got there
//!   first (`WrongLastRevision`, or `AlreadyExists` for a create). Every
//!   other failure (a timeout, no responders, a missing bucket, an invalid
//!   key) is [`CasError::Read`] or [`CasError::Write`]: [`update`] returns it
//!   at once instead of spending its attempts on it, and callers can tell
//!   contention from an outage.
//! * [`update`] makes at most `max_attempts` attempts (at least one); each
//!   reads (except a first one of [`update_async`] given what is known),
//!   decides and writes.
//!   The decision is the caller's, made on the [`Current`] value only, so it
//!   is pure and testable without a server.

use std::future::Future;

use async_nats::jetstream::kv::{
    self, CreateErrorKind, EntryError, Operation, Store, UpdateError, UpdateErrorKind,
};
use bytes::Bytes;

/// What a key holds, as a compare-and-set reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Current {
    /// Never written (or its history is gone): a write creates it.
    Absent,
    /// Deleted or purged; the marker is at `revision`.
    Deleted {
        /// The revision of the delete marker.
        revision: u64,
    },
    /// A value, stored at `revision`.
    Value {
        /// The revision it was stored at.
        revision: u64,
        /// The stored bytes.
        value: Bytes,
    },
}

impl Current {
    /// The state of an entry read from a bucket.
    pub fn from_entry(entry: Option<kv::Entry>) -> Current {
        match entry {
            None => Current::Absent,
            Some(e) if e.operation == Operation::Put => Current::Value {
                revision: e.revision,
                value: e.value,
            },
            Some(e) => Current::Deleted {
                revision: e.revision,
            },
        }
    }

    /// The revision a write decided on this state must name: 0 when absent.
    pub fn revision(&self) -> u64 {
        match self {
            Current::Absent => 0,
            Current::Deleted { revision } | Current::Value { revision, .. } => *revision,
        }
    }

    /// The stored bytes, `None` when absent or deleted.
    pub fn value(&self) -> Option<&[u8]> {
        match self {
            Current::Value { value, .. } => Some(value),
            _ => None,
        }
    }
}

/// What [`update`]'s decision does with the [`Current`] state.
#[derive(Debug)]
pub enum Decision<T> {
    /// Store `value` at the revision read; on success the update returns
    /// `outcome`.
    Write {
        /// The new value.
        value: Bytes,
        /// What the update returns once the value is stored.
        outcome: T,
    },
    /// Store nothing and return `T`.
    Done(T),
    /// Read the key again and decide anew; this uses up an attempt.
    Reread,
}

/// A finished [`update`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Updated<T> {
    /// What the decision returned.
    pub outcome: T,
    /// The revision written, `None` when the decision wrote nothing.
    pub revision: Option<u64>,
    /// How many writes lost to another writer before this one.
    pub conflicts: u32,
}

/// Why a compare-and-set did not store its value.
#[derive(Debug, thiserror::Error)]
pub enum CasError {
    /// Another writer changed the key between the read and the write (or,
    /// for a create, the key exists), `times` times in a row. Reading again
    /// and deciding anew may succeed.
    #[error("changed by another writer ({times} times in a row)")]
    Conflict {
        /// How many writes lost.
        times: u32,
    },
    /// The current value could not be read (timeout, no responders, a
    /// missing bucket, an invalid key).
    #[error("cannot read the key: {0}")]
    Read(#[source] EntryError),
    /// The write failed other than by a conflict (timeout, no responders, a
    /// missing bucket, an invalid key).
    #[error("cannot write the key: {0}")]
    Write(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl CasError {
    /// Whether another writer got there first (rather than an outage).
    pub fn is_conflict(&self) -> bool {
        matches!(self, CasError::Conflict { .. })
    }

    fn from_update(err: UpdateError) -> CasError {
        match err.kind() {
            UpdateErrorKind::WrongLastRevision => CasError::Conflict { times: 1 },
            _ => CasError::Write(Box::new(err)),
        }
    }

    fn from_create(err: kv::CreateError) -> CasError {
        match err.kind() {
            CreateErrorKind::AlreadyExists => CasError::Conflict { times: 1 },
            _ => CasError::Write(Box::new(err)),
        }
    }
}

/// Reads `key`'s [`Current`] state.
pub async fn read(store: &Store, key: &str) -> Result<Current, CasError> {
    Cas::read(store, key).await
}

/// Stores `value` under `key` if the key is still at `revision` (0: only if
/// it is absent); returns the new revision.
pub async fn write(store: &Store, key: &str, revision: u64, value: Bytes) -> Result<u64, CasError> {
    Cas::write(store, key, revision, value).await
}

/// Reads `key`, lets `decide` choose from its [`Current`] state and writes
/// what it chose by compare-and-set, reading and deciding again after each
/// conflict, at most `max_attempts` times. Other errors end the update at
/// once; so does running out of attempts ([`CasError::Conflict`]).
pub async fn update<T>(
    store: &Store,
    key: &str,
    max_attempts: u32,
    mut decide: impl FnMut(&Current) -> Decision<T>,
) -> Result<Updated<T>, CasError> {
    update_with(store, key, max_attempts, None, |current| {
        std::future::ready(decide(&current))
    })
    .await
}

/// Like [`update`], for a decision that has IO of its own to do before the
/// write (publishing what the new value commits to). The first attempt
/// decides on `known` when given (a value cached from this process's last
/// write) instead of reading.
pub async fn update_async<T, F>(
    store: &Store,
    key: &str,
    max_attempts: u32,
    known: Option<Current>,
    decide: impl FnMut(Current) -> F,
) -> Result<Updated<T>, CasError>
where
    F: Future<Output = Decision<T>>,
{
    update_with(store, key, max_attempts, known, decide).await
}

/// The two operations the loop needs, so it runs against a fake in tests.
trait Cas: Sync {
    fn read(&self, key: &str) -> impl Future<Output = Result<Current, CasError>> + Send;
    fn write(
        &self,
        key: &str,
        revision: u64,
        value: Bytes,
    ) -> impl Future<Output = Result<u64, CasError>> + Send;
}

impl Cas for Store {
    async fn read(&self, key: &str) -> Result<Current, CasError> {
        self.entry(key)
            .await
            .map(Current::from_entry)
            .map_err(CasError::Read)
    }

    async fn write(&self, key: &str, revision: u64, value: Bytes) -> Result<u64, CasError> {
        if revision == 0 {
            self.create(key, value).await.map_err(CasError::from_create)
        } else {
            self.update(key, value, revision)
                .await
                .map_err(CasError::from_update)
        }
    }
}

async fn update_with<S: Cas, T, F>(
    store: &S,
    key: &str,
    max_attempts: u32,
    mut known: Option<Current>,
    mut decide: impl FnMut(Current) -> F,
) -> Result<Updated<T>, CasError>
where
    F: Future<Output = Decision<T>>,
{
    let mut conflicts = 0;
    for _ in 0..max_attempts.max(1) {
        let current = match known.take() {
            Some(current) => current,
            None => store.read(key).await?,
        };
        let revision = current.revision();
        match decide(current).await {
            Decision::Done(outcome) => {
                return Ok(Updated {
                    outcome,
                    revision: None,
                    conflicts,
                });
            }
            Decision::Reread => {}
            Decision::Write { value, outcome } => match store.write(key, revision, value).await {
                Ok(revision) => {
                    return Ok(Updated {
                        outcome,
                        revision: Some(revision),
                        conflicts,
                    });
                }
                Err(CasError::Conflict { .. }) => conflicts += 1,
                Err(err) => return Err(err),
            },
        }
    }
    Err(CasError::Conflict { times: conflicts })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::Mutex;

    /// A bucket in memory. `interfere` other writers store a value between
    /// each read and the write that follows it, until used up; `fail`
    /// makes every write fail as an outage would.
    #[derive(Default)]
    struct Fake {
        keys: Mutex<HashMap<String, (u64, Bytes)>>,
        revision: Mutex<u64>,
        interfere: Mutex<u32>,
        fail: bool,
        reads: Mutex<u32>,
    }

    impl Fake {
        fn put(&self, key: &str, value: &str) {
            let mut rev = self.revision.lock().unwrap();
            *rev += 1;
            self.keys
                .lock()
                .unwrap()
                .insert(key.to_string(), (*rev, Bytes::from(value.to_string())));
        }

        fn get(&self, key: &str) -> Option<String> {
            let keys = self.keys.lock().unwrap();
            keys.get(key)
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        }
    }

    impl Cas for Fake {
        async fn read(&self, key: &str) -> Result<Current, CasError> {
            *self.reads.lock().unwrap() += 1;
            let current = match self.keys.lock().unwrap().get(key) {
                None => Current::Absent,
                Some((revision, value)) => Current::Value {
                    revision: *revision,
                    value: value.clone(),
                },
            };
            let interfere = {
                let mut n = self.interfere.lock().unwrap();
                let go = *n > 0;
                *n = n.saturating_sub(1);
                go
            };
            if interfere {
                self.put(key, "theirs");
            }
            Ok(current)
        }

        async fn write(&self, key: &str, revision: u64, value: Bytes) -> Result<u64, CasError> {
            if self.fail {
                return Err(CasError::Write("no responders".into()));
            }
            let stored = self.keys.lock().unwrap().get(key).map_or(0, |(r, _)| *r);
            if stored != revision {
                return Err(CasError::Conflict { times: 1 });
            }
            let mut rev = self.revision.lock().unwrap();
            *rev += 1;
            self.keys
                .lock()
                .unwrap()
                .insert(key.to_string(), (*rev, value));
            Ok(*rev)
        }
    }

    /// Appends `x` to whatever is stored.
    async fn append(current: Current) -> Decision<usize> {
        let mut text = current
            .value()
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default();
        text.push('x');
        Decision::Write {
            outcome: text.len(),
            value: Bytes::from(text),
        }
    }

    fn run<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn creates_then_updates() {
        let fake = Fake::default();
        let first = run(update_with(&fake, "k", 3, None, append)).unwrap();
        assert_eq!(
            (first.outcome, first.revision, first.conflicts),
            (1, Some(1), 0)
        );
        let second = run(update_with(&fake, "k", 3, None, append)).unwrap();
        assert_eq!((second.outcome, second.revision), (2, Some(2)));
        assert_eq!(fake.get("k").as_deref(), Some("xx"));
    }

    #[test]
    fn conflicts_are_retried_counted_and_bounded() {
        let fake = Fake::default();
        *fake.interfere.lock().unwrap() = 2;
        let done = run(update_with(&fake, "k", 3, None, append)).unwrap();
        assert_eq!(done.conflicts, 2);
        assert_eq!(fake.get("k").as_deref(), Some("theirsx"));

        *fake.interfere.lock().unwrap() = 5;
        let err = run(update_with(&fake, "k", 3, None, append)).unwrap_err();
        assert!(err.is_conflict());
        assert!(matches!(err, CasError::Conflict { times: 3 }), "{err}");
        assert_eq!(fake.get("k").as_deref(), Some("theirs"));
    }

    #[test]
    fn other_errors_end_the_update_at_once() {
        let fake = Fake {
            fail: true,
            ..Fake::default()
        };
        let err = run(update_with(&fake, "k", 5, None, append)).unwrap_err();
        assert!(!err.is_conflict());
        assert!(matches!(err, CasError::Write(_)), "{err}");
        assert_eq!(*fake.reads.lock().unwrap(), 1, "no second attempt");
    }

    #[test]
    fn done_writes_nothing_and_reread_uses_an_attempt() {
        let fake = Fake::default();
        fake.put("k", "v");
        let done = run(update_with(&fake, "k", 3, None, |c: Current| async move {
            Decision::<Option<Vec<u8>>>::Done(c.value().map(<[u8]>::to_vec))
        }))
        .unwrap();
        assert_eq!(done.outcome.as_deref(), Some(&b"v"[..]));
        assert_eq!(done.revision, None);

        let mut calls = 0;
        let err = run(update_with(&fake, "k", 4, None, |_: Current| {
            calls += 1;
            std::future::ready(Decision::<()>::Reread)
        }))
        .unwrap_err();
        assert_eq!(calls, 4);
        assert!(matches!(err, CasError::Conflict { times: 0 }));
    }

    #[test]
    fn a_known_state_saves_the_first_read() {
        let fake = Fake::default();
        let done = run(update_with(&fake, "k", 2, Some(Current::Absent), append)).unwrap();
        assert_eq!(done.revision, Some(1));
        assert_eq!(*fake.reads.lock().unwrap(), 0);
        // A stale known state costs a conflict and one read.
        let stale = Current::Value {
            revision: 1,
            value: Bytes::from_static(b"old"),
        };
        fake.put("k", "new");
        let done = run(update_with(&fake, "k", 2, Some(stale), append)).unwrap();
        assert_eq!((done.conflicts, done.outcome), (1, 4));
        assert_eq!(*fake.reads.lock().unwrap(), 1);
        assert_eq!(fake.get("k").as_deref(), Some("newx"));
    }

    #[test]
    fn nats_errors_are_classified() {
        let conflict = UpdateError::new(UpdateErrorKind::WrongLastRevision);
        assert!(CasError::from_update(conflict).is_conflict());
        let timeout = UpdateError::new(UpdateErrorKind::TimedOut);
        assert!(!CasError::from_update(timeout).is_conflict());
        let exists = kv::CreateError::new(CreateErrorKind::AlreadyExists);
        assert!(CasError::from_create(exists).is_conflict());
        for kind in [
            CreateErrorKind::Publish,
            CreateErrorKind::Ack,
            CreateErrorKind::InvalidKey,
            CreateErrorKind::Other,
        ] {
            assert!(!CasError::from_create(kv::CreateError::new(kind)).is_conflict());
        }
    }

    #[test]
    fn current_from_its_parts() {
        assert_eq!(Current::Absent.revision(), 0);
        assert_eq!(Current::Absent.value(), None);
        let deleted = Current::Deleted { revision: 7 };
        assert_eq!((deleted.revision(), deleted.value()), (7, None));
        let value = Current::Value {
            revision: 9,
            value: Bytes::from_static(b"v"),
        };
        assert_eq!((value.revision(), value.value()), (9, Some(&b"v"[..])));
    }
}
