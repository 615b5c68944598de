//! Which files the tailer follows: the include and exclude globs of a
//! source, the directories they are walked from, the rescans that file
//! events and a slow timer trigger, and the files rotated away while the
//! agent was down.

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};
use notify::{RecursiveMode, Watcher};
use sluice_core::names;

use super::{Source, Tailer};
use crate::pipeline::entry::{FileKey, FilePos};

/// Deepest directory walk for `**` patterns.
const MAX_WALK_DEPTH: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Root {
    dir: PathBuf,
    depth: usize,
}

/// A source's configuration could not be compiled.
#[derive(Debug, thiserror::Error)]
#[error("invalid glob {pattern:?}: {reason}")]
pub struct SourceError {
    pattern: String,
    reason: String,
}

fn glob(pattern: &str) -> Result<Glob, SourceError> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .map_err(|e| SourceError {
            pattern: pattern.to_string(),
            reason: e.to_string(),
        })
}

pub(super) fn glob_set<'a>(
    patterns: impl Iterator<Item = &'a String>,
) -> Result<GlobSet, SourceError> {
    let mut builder = GlobSetBuilder::new();
    for p in patterns {
        builder.add(glob(p)?);
    }
    builder.build().map_err(|e| SourceError {
        pattern: String::new(),
        reason: e.to_string(),
    })
}

/// The directory to walk for a pattern, and how deep.
pub(super) fn root_of(pattern: &str) -> Root {
    let path = Path::new(pattern);
    let mut dir = PathBuf::new();
    let mut rest = Vec::new();
    for comp in path.components() {
        let text = comp.as_os_str().to_string_lossy();
        let is_meta = text.contains(['*', '?', '[', '{']);
        if rest.is_empty() && !is_meta {
            dir.push(comp);
        } else {
            rest.push(text.into_owned());
        }
    }
    if rest.is_empty() {
        // A literal path: watch its directory.
        let parent = path.parent().map(Path::to_path_buf).unwrap_or_default();
        return Root {
            dir: parent,
            depth: 1,
        };
    }
    let depth = if rest.iter().any(|c| c.contains("**")) {
        MAX_WALK_DEPTH
    } else {
        rest.len()
    };
    Root { dir, depth }
}

impl Source {
    fn matches(&self, path: &Path) -> bool {
        if !self.include.is_match(path) || self.exclude_path.is_match(path) {
            return false;
        }
        match path.file_name() {
            Some(name) => !self.exclude_name.is_match(name),
            None => false,
        }
    }
}

/// The default service of a file: its name up to the first `.`
/// (`checkout` for `checkout.log` and `checkout.log.1`), made a valid name.
fn service_from_path(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let stem = name.split('.').find(|s| !s.is_empty()).unwrap_or("");
    names::normalize(stem).into_owned()
}

impl Tailer {
    pub(super) fn watch_roots(
        &self,
        watcher: &mut notify::RecommendedWatcher,
        watched: &mut HashSet<PathBuf>,
    ) {
        for source in &self.opts.sources {
            for root in &source.roots {
                if watched.contains(&root.dir) || !root.dir.is_dir() {
                    continue;
                }
                let mode = if root.depth > 1 {
                    RecursiveMode::Recursive
                } else {
                    RecursiveMode::NonRecursive
                };
                match watcher.watch(&root.dir, mode) {
                    Ok(()) => {
                        watched.insert(root.dir.clone());
                    }
                    Err(err) => {
                        tracing::debug!(dir = %root.dir.display(), error = %err, "cannot watch directory, relying on rescans");
                    }
                }
            }
        }
    }

    /// Finds files rotated away while the agent was down: a known inode no
    /// longer matched by the globs, looked up in the directory it was last
    /// seen in.
    pub(super) fn recover_rotated(&mut self) {
        let known: Vec<FilePos> = self.positions.iter().cloned().collect();
        let mut by_dir: HashMap<PathBuf, Vec<FilePos>> = HashMap::new();
        for pos in known {
            if let Some(dir) = Path::new(&pos.path).parent() {
                by_dir.entry(dir.to_path_buf()).or_default().push(pos);
            }
        }
        for (dir, wanted) in by_dir {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let Ok(meta) = entry.metadata() else { continue };
                if !meta.is_file() {
                    continue;
                }
                let key = FileKey {
                    dev: meta.dev(),
                    ino: meta.ino(),
                };
                let Some(pos) = wanted.iter().find(|p| p.key == key) else {
                    continue;
                };
                let path = entry.path();
                let source = self
                    .opts
                    .sources
                    .iter()
                    .position(|s| s.matches(Path::new(&pos.path)));
                let Some(source) = source else { continue };
                let origin = PathBuf::from(&pos.path);
                let service = self.service_for(source, &origin);
                self.open(path, origin, key, source, service, false);
            }
        }
    }

    fn service_for(&self, source: usize, path: &Path) -> String {
        match &self.opts.sources[source].service {
            Some(s) => s.clone(),
            None => service_from_path(path),
        }
    }

    /// Walks every include glob, opening new files and marking which tracked
    /// files are still matched.
    pub(super) fn rescan(&mut self) {
        for t in self.files.values_mut() {
            t.matched = false;
        }
        let mut found: Vec<(PathBuf, std::fs::Metadata, usize)> = Vec::new();
        for (index, source) in self.opts.sources.iter().enumerate() {
            for root in &source.roots {
                walk(&root.dir, root.depth, &mut |path, meta| {
                    if source.matches(path) {
                        found.push((path.to_path_buf(), meta.clone(), index));
                    }
                });
            }
        }
        for (path, meta, source) in found {
            let key = FileKey {
                dev: meta.dev(),
                ino: meta.ino(),
            };
            if let Some(t) = self.files.get_mut(&key) {
                t.matched = true;
                if t.path != path {
                    t.origin = path.clone();
                    t.path = path;
                }
                if t.file.is_none() && meta.len() != t.read_offset {
                    self.reopen(key);
                }
                continue;
            }
            let service = self.service_for(source, &path);
            self.open(path.clone(), path, key, source, service, true);
        }
        self.metrics.files_tracked.set(self.files.len() as i64);
    }
}

/// Waits up to `timeout` for file events; returns whether a rescan is needed.
pub(super) fn wait_for_events(
    rx: &Receiver<notify::Result<notify::Event>>,
    timeout: Duration,
) -> bool {
    let mut rescan = false;
    let first = match rx.recv_timeout(timeout) {
        Ok(ev) => ev,
        Err(RecvTimeoutError::Timeout) => return false,
        Err(RecvTimeoutError::Disconnected) => {
            std::thread::sleep(timeout);
            return false;
        }
    };
    let mut note = |ev: notify::Result<notify::Event>| match ev {
        Ok(ev) => {
            if !matches!(
                ev.kind,
                notify::EventKind::Modify(notify::event::ModifyKind::Data(_))
                    | notify::EventKind::Access(_)
            ) {
                rescan = true;
            }
        }
        Err(_) => rescan = true,
    };
    note(first);
    while let Ok(ev) = rx.try_recv() {
        note(ev);
    }
    rescan
}

fn walk(dir: &Path, depth: usize, f: &mut dyn FnMut(&Path, &std::fs::Metadata)) {
    if depth == 0 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    }) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        // Follows symlinks, as tailing a linked log file is expected.
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if meta.is_file() {
            f(&path, &meta);
        } else if meta.is_dir() && depth > 1 {
            walk(&path, depth - 1, f);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use sluice_core::config::{FileSourceConfig, ReadFrom};

    use super::*;

    #[test]
    fn roots_of_patterns() {
        assert_eq!(
            root_of("/var/log/shop/*.log"),
            Root {
                dir: "/var/log/shop".into(),
                depth: 1
            }
        );
        assert_eq!(
            root_of("/var/log/*/app.log"),
            Root {
                dir: "/var/log".into(),
                depth: 2
            }
        );
        assert_eq!(root_of("/var/log/**/*.log").depth, MAX_WALK_DEPTH);
        assert_eq!(
            root_of("/var/log/syslog"),
            Root {
                dir: "/var/log".into(),
                depth: 1
            }
        );
    }

    #[test]
    fn services_from_paths() {
        assert_eq!(service_from_path(Path::new("/x/checkout.log")), "checkout");
        assert_eq!(
            service_from_path(Path::new("/x/checkout.log.1")),
            "checkout"
        );
        assert_eq!(
            service_from_path(Path::new("/x/Web Server.log")),
            "web-server"
        );
        assert_eq!(service_from_path(Path::new("/x/.hidden")), "hidden");
    }

    #[test]
    fn excludes_by_name_and_path() {
        let cfg = FileSourceConfig {
            include: vec!["/var/log/shop/*".into()],
            exclude: vec!["*.gz".into(), "/var/log/shop/secret*".into()],
            app: sluice_core::config::Name::new("shop").unwrap(),
            service: None,
            attrs: BTreeMap::new(),
            read_from: ReadFrom::Beginning,
            max_line_bytes: 100,
            multiline: None,
        };
        let s = Source::new(&cfg).unwrap();
        assert!(s.matches(Path::new("/var/log/shop/a.log")));
        assert!(!s.matches(Path::new("/var/log/shop/a.log.gz")));
        assert!(!s.matches(Path::new("/var/log/shop/secret.log")));
        assert!(!s.matches(Path::new("/var/log/shop/sub/a.log")));
    }
}
