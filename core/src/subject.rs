//! The subject names the app: how every consumer of `LOGS` checks a message
//! before it uses a single record of it.
//!
//! A message on `logs.<app>.<level>` may hold only records whose `app` is
//! `<app>` and whose `level` is `<level>` (the agent batches that way). The
//! subject, not the record, says where the records belong: NATS permissions
//! on subjects are then enough to keep a sender inside its apps. A consumer
//! therefore
//!
//! 1. parses the subject ([`parse`]): exactly three tokens, `logs`, a valid
//!    app name (`^[a-z0-9][a-z0-9_-]{0,62}$`, see [`crate::names`]) and a
//!    lower-case level token;
//! 2. decodes the payload and checks every record against the subject
//!    ([`check`]);
//!
//! and a message that fails either is **not used at all** — not filed, not
//! grouped, not matched by alert rules — but set aside whole on the
//! dead-letter stream with the [`Misfiled`] reason and counted. An invalid
//! app is never normalised into some other, valid, name: that could file one
//! tenant's records under another's prefix.
//!
//! Reasons, as the `reason` label of the roles' dead-letter counters and the
//! `Sluice-Reason` header's first word:
//!
//! | label | when |
//! | --- | --- |
//! | `invalid_subject` | not `logs.<app>.<level>`, or an unknown level token |
//! | `invalid_app` | the subject's app is not a valid name |
//! | `undecodable` | the payload is not a sluice batch |
//! | `other_app` | a record's `app` differs from the subject's |
//! | `other_level` | a record's `level` differs from the subject's |

use std::fmt;

use crate::codec::{DecodeError, RecordView, SUBJECT_PREFIX, decode_batch, decode_views};
use crate::names;
use crate::record::{Level, Record};

/// Every reason's label, as [`Misfiled::label`] gives them.
pub const REASONS: [&str; 5] = [
    "invalid_subject",
    "invalid_app",
    "undecodable",
    "other_app",
    "other_level",
];

/// The app and level a valid subject names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target<'a> {
    /// A valid app name.
    pub app: &'a str,
    /// The level.
    pub level: Level,
}

/// Why a message is not used: dead-lettered with this reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Misfiled {
    /// The subject is not `logs.<app>.<level>` with a known level.
    InvalidSubject {
        /// The subject.
        subject: String,
    },
    /// The subject's app is not a valid name.
    InvalidApp {
        /// The subject.
        subject: String,
    },
    /// The payload does not decode.
    Undecodable {
        /// The subject.
        subject: String,
        /// The decoder's message.
        error: String,
    },
    /// Records claim another app than the subject names.
    OtherApp {
        /// The subject.
        subject: String,
        /// The first other app claimed.
        claimed: String,
        /// How many records claim another app.
        records: usize,
    },
    /// Records have another level than the subject names.
    OtherLevel {
        /// The subject.
        subject: String,
        /// The first other level.
        claimed: Level,
        /// How many records have another level.
        records: usize,
    },
}

impl Misfiled {
    /// The metric label of the reason (see the module docs).
    pub fn label(&self) -> &'static str {
        match self {
            Misfiled::InvalidSubject { .. } => "invalid_subject",
            Misfiled::InvalidApp { .. } => "invalid_app",
            Misfiled::Undecodable { .. } => "undecodable",
            Misfiled::OtherApp { .. } => "other_app",
            Misfiled::OtherLevel { .. } => "other_level",
        }
    }

    /// The subject of the message.
    pub fn subject(&self) -> &str {
        match self {
            Misfiled::InvalidSubject { subject }
            | Misfiled::InvalidApp { subject }
            | Misfiled::Undecodable { subject, .. }
            | Misfiled::OtherApp { subject, .. }
            | Misfiled::OtherLevel { subject, .. } => subject,
        }
    }
}

impl fmt::Display for Misfiled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let label = self.label();
        match self {
            Misfiled::InvalidSubject { subject } => write!(
                f,
                "{label}: subject {subject:?} is not {SUBJECT_PREFIX}.<app>.<level>"
            ),
            Misfiled::InvalidApp { subject } => write!(
                f,
                "{label}: the app of subject {subject:?} is not a valid name (must match ^[a-z0-9][a-z0-9_-]{{0,62}}$)"
            ),
            Misfiled::Undecodable { subject, error } => {
                write!(f, "{label}: message on {subject:?}: {error}")
            }
            Misfiled::OtherApp {
                subject,
                claimed,
                records,
            } => write!(
                f,
                "{label}: {records} record(s) on subject {subject:?} claim app {claimed:?}"
            ),
            Misfiled::OtherLevel {
                subject,
                claimed,
                records,
            } => write!(
                f,
                "{label}: {records} record(s) on subject {subject:?} have level {claimed}"
            ),
        }
    }
}

impl std::error::Error for Misfiled {}

/// Parses a `LOGS` subject.
pub fn parse(subject: &str) -> Result<Target<'_>, Misfiled> {
    let invalid = || Misfiled::InvalidSubject {
        subject: subject.to_string(),
    };
    let mut tokens = subject.split('.');
    let (Some(prefix), Some(app), Some(level), None) =
        (tokens.next(), tokens.next(), tokens.next(), tokens.next())
    else {
        return Err(invalid());
    };
    if prefix != SUBJECT_PREFIX {
        return Err(invalid());
    }
    let level = Level::ALL
        .into_iter()
        .find(|l| l.as_subject_token() == level)
        .ok_or_else(invalid)?;
    if !names::is_valid(app) {
        return Err(Misfiled::InvalidApp {
            subject: subject.to_string(),
        });
    }
    Ok(Target { app, level })
}

/// Checks records, given as `(app, level)`, against the subject they came
/// on.
pub fn check<'a>(
    subject: &str,
    records: impl IntoIterator<Item = (&'a str, Level)>,
) -> Result<Target<'_>, Misfiled> {
    let target = parse(subject)?;
    let (mut other_app, mut apps) = (None, 0usize);
    let (mut other_level, mut levels) = (None, 0usize);
    for (app, level) in records {
        if app != target.app {
            other_app.get_or_insert(app);
            apps += 1;
        }
        if level != target.level {
            other_level.get_or_insert(level);
            levels += 1;
        }
    }
    if let Some(claimed) = other_app {
        return Err(Misfiled::OtherApp {
            subject: subject.to_string(),
            claimed: claimed.to_string(),
            records: apps,
        });
    }
    if let Some(claimed) = other_level {
        return Err(Misfiled::OtherLevel {
            subject: subject.to_string(),
            claimed,
            records: levels,
        });
    }
    Ok(target)
}

fn undecodable(subject: &str, err: DecodeError) -> Misfiled {
    Misfiled::Undecodable {
        subject: subject.to_string(),
        error: err.to_string(),
    }
}

/// Decodes a message into owned records, checked against its subject, and
/// the app and level the subject names.
pub fn decode_checked<'s>(
    subject: &'s str,
    payload: &[u8],
) -> Result<(Target<'s>, Vec<Record>), Misfiled> {
    parse(subject)?;
    let records = decode_batch(payload).map_err(|e| undecodable(subject, e))?;
    let target = check(subject, records.iter().map(|r| (r.app.as_str(), r.level)))?;
    Ok((target, records))
}

/// Decodes a message into borrowed records, checked against its subject.
pub fn decode_views_checked<'p>(
    subject: &str,
    payload: &'p [u8],
) -> Result<Vec<RecordView<'p>>, Misfiled> {
    parse(subject)?;
    let records = decode_views(payload).map_err(|e| undecodable(subject, e))?;
    check(subject, records.iter().map(|r| (r.app, r.level)))?;
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::encode_batch;
    use proptest::prelude::*;

    fn record(app: &str, level: Level) -> Record {
        Record {
            id: "id".into(),
            ts: 1,
            app: app.into(),
            service: "s".into(),
            host: "h".into(),
            level,
            msg: "m".into(),
            attrs: Default::default(),
            source: String::new(),
        }
    }

    #[test]
    fn parses_valid_subjects() {
        assert_eq!(
            parse("logs.shop.error"),
            Ok(Target {
                app: "shop",
                level: Level::Error
            })
        );
        for level in Level::ALL {
            let s = crate::codec::subject("a-1_b", level);
            assert_eq!(parse(&s).unwrap().level, level);
        }
    }

    #[test]
    fn rejects_other_subjects() {
        for s in [
            "logs",
            "logs.shop",
            "logs.shop.error.x",
            "other.shop.error",
            "logs.shop.ERROR",
            "logs.shop.warning",
            "",
        ] {
            assert_eq!(parse(s).unwrap_err().label(), "invalid_subject", "{s}");
        }
        for s in [
            "logs..error",
            "logs.Shop.info",
            "logs.-x.info",
            "logs.a b.info",
            &format!("logs.{}.info", "a".repeat(64)),
        ] {
            assert_eq!(parse(s).unwrap_err().label(), "invalid_app", "{s}");
        }
    }

    #[test]
    fn records_must_match_the_subject() {
        let ok = [("shop", Level::Info), ("shop", Level::Info)];
        assert!(check("logs.shop.info", ok).is_ok());
        let err = check(
            "logs.shop.info",
            [
                ("shop", Level::Info),
                ("billing", Level::Info),
                ("../billing", Level::Info),
            ],
        )
        .unwrap_err();
        assert_eq!(
            err,
            Misfiled::OtherApp {
                subject: "logs.shop.info".into(),
                claimed: "billing".into(),
                records: 2
            }
        );
        assert_eq!(
            err.to_string(),
            "other_app: 2 record(s) on subject \"logs.shop.info\" claim app \"billing\""
        );
        let err = check("logs.shop.info", [("shop", Level::Error)]).unwrap_err();
        assert_eq!(err.label(), "other_level");
        assert!(err.to_string().contains("level ERROR"), "{err}");
        // An app claim outranks a level difference.
        let err = check("logs.shop.info", [("x", Level::Error)]).unwrap_err();
        assert_eq!(err.label(), "other_app");
    }

    #[test]
    fn decoding_checks_the_subject_first() {
        let payload = encode_batch(&[record("shop", Level::Warn)]);
        let (target, records) = decode_checked("logs.shop.warn", &payload).unwrap();
        assert_eq!(
            (target.app, target.level, records.len()),
            ("shop", Level::Warn, 1)
        );
        assert_eq!(
            decode_views_checked("logs.shop.warn", &payload)
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            decode_checked("logs.billing.warn", &payload)
                .unwrap_err()
                .label(),
            "other_app"
        );
        assert_eq!(
            decode_views_checked("logs.shop.info", &payload)
                .unwrap_err()
                .label(),
            "other_level"
        );
        assert_eq!(
            decode_checked("logs.Shop.warn", &payload)
                .unwrap_err()
                .label(),
            "invalid_app"
        );
        let err = decode_checked("logs.shop.warn", b"\xc1").unwrap_err();
        assert_eq!(err.label(), "undecodable");
        assert_eq!(err.subject(), "logs.shop.warn");
        assert!(REASONS.contains(&err.label()));
    }

    proptest! {
        #[test]
        fn any_subject_is_judged_without_panicking(s in ".{0,80}") {
            if let Ok(t) = parse(&s) {
                prop_assert!(names::is_valid(t.app));
                prop_assert_eq!(crate::codec::subject(t.app, t.level), s);
            }
        }
    }
}
