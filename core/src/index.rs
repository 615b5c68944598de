//! Per-blob index sidecars: what a blob holds, so searches can skip it unread.
//!
//! Every log blob in object storage, e.g.
//! `…/app=shop/dt=2026-11-22/hour=10/<name>.ndjson.gz` (gzip-compressed NDJSON,
//! one [`Record`] JSON per line), has a sidecar object next to it whose key is
//! the blob's key plus [`SIDECAR_SUFFIX`]: `<name>.ndjson.gz.idx`. A reader
//! fetches the small sidecar, and only opens the blob when the sidecar says the
//! blob may hold matching records. The sidecar never causes a miss: every test
//! it answers may say "maybe" for a blob without a match (a false positive),
//! but never "no" for a blob with one.
//!
//! This comment is the format's specification; a reader in any language can
//! be written from it alone.
//!
//! # Document
//!
//! The sidecar is one UTF-8 JSON object:
//!
//! ```json
//! {"version":1,"app":"shop",
//!  "min_ts":1795341600123456789,"min_time":"2026-11-22T10:00:00.123456789Z",
//!  "max_ts":1795341659000000000,"max_time":"2026-11-22T10:00:59.000000000Z",
//!  "records":3,"levels":{"ERROR":2,"INFO":1},"services":["billing","checkout"],
//!  "raw_bytes":730,"compressed_bytes":301,"sorted":false,
//!  "bloom":{"m":128,"k":7,"bits":"GVSEpSiua2UefE/7t3cK8w=="},
//!  "minutes":[[29922360,2,1,1],[29922360,4,0,1],[29922360,4,1,1]]}
//! ```
//!
//! (Line breaks added. This is the sidecar for three records whose messages
//! are `payment declined for order 8812`, `order 8812 created` and
//! `Card Expired`, with attributes `request_id=req-123`,
//! `trace_id=4bf92f3577b34da6` and `user=Zoë`. Its filter holds 13 distinct
//! tokens.)
//!
//! | field | type | meaning |
//! |---|---|---|
//! | `version` | integer | Format version, currently [`INDEX_VERSION`] (`1`). Readers must reject versions they do not know. Compatible additions add fields and keep the version. |
//! | `app` | string | The application whose records the blob holds. |
//! | `min_ts`, `max_ts` | integer (i64) | Smallest and largest record `ts`, in nanoseconds since the Unix epoch, UTC. Both are `0` when `records` is `0`. Otherwise `min_ts <= max_ts`. |
//! | `min_time`, `max_time` | string | The same instants as RFC 3339 UTC with nine fractional digits. These are for people reading the file. Readers ignore them. |
//! | `records` | integer (u64) | Number of records (lines) in the blob. |
//! | `levels` | object | Level name (`"TRACE"` … `"FATAL"`, upper case) mapped to its record count. Only levels that occur are listed. |
//! | `services` | array of strings | Distinct `service` values, sorted by byte value. |
//! | `raw_bytes` | integer (u64) | Uncompressed NDJSON size: each record's JSON line plus its `\n`. |
//! | `compressed_bytes` | integer (u64) | Size of the blob object as stored. |
//! | `sorted` | boolean | `true` when the lines are in ascending `ts` order (compacted blobs). |
//! | `bloom` | object | Bloom filter over tokens; see below. |
//! | `minutes` | array (optional) | Record counts per minute, level and service; see below. |
//! | `replaces` | object (optional) | On a compaction output: the blobs it replaces; see below. |
//!
//! Every field except `min_time`, `max_time`, `minutes` and `replaces` is
//! required.
//! Readers ignore fields they do not know.
//!
//! # Minute counts
//!
//! `minutes` lets a histogram of record counts (per time step, level or
//! service) be answered without opening the blob. It is an array of cells
//! `[minute, level, service, count]`, sorted, one per distinct combination
//! that occurs:
//!
//! * `minute`: the record `ts` divided by 60·10⁹, rounded down (minutes
//!   since the epoch, UTC);
//! * `level`: `0` (`TRACE`) to `5` (`FATAL`), in the order of the level
//!   names above;
//! * `service`: the position of the record's service in `services`
//!   (from `0`);
//! * `count`: records with that minute, level and service, at least 1.
//!
//! The counts add up to `records`. A writer leaves `minutes` out when a blob
//! would need more than [`MAX_MINUTE_CELLS`] cells; a reader then has to open
//! the blob to draw its histogram. A cell out of range, or counts that do not
//! add up, make the sidecar invalid.
//!
//! # Replaced blobs
//!
//! Compaction writes its outputs, then deletes its inputs, so for a moment
//! (or for as long as a reader reuses an old listing) both are listed. Each
//! output's `replaces` says which blobs it stands for:
//! `{"run":"01J…","part":0,"last":true,"inputs":["part-01J…-f1.ndjson.gz",…]}`
//! — the compaction run's id, the output's number in the run (from `0`),
//! whether it is the run's last output, and the file names of the run's
//! inputs, all in the output's own partition. Once a reader sees every
//! output of a run (parts `0` to the last), it may ignore the inputs: the
//! outputs hold each of their records once. Until then it reads the inputs,
//! and tells copies apart by `id` where it can.
//!
//! # Tokens
//!
//! A *text* (a message, an attribute value, or a search term) becomes tokens
//! as follows:
//!
//! 1. Split the text into maximal runs of *word characters*. A word character is
//!    a Unicode scalar value that has the `Alphabetic` property or whose
//!    general category is `Nd`, `Nl` or `No` (Rust's `char::is_alphanumeric`).
//!    Every other character separates runs and is dropped.
//! 2. Lower-case each run one character at a time. Use the character's full
//!    lower-case mapping (`UnicodeData.txt` plus the unconditional mappings of
//!    `SpecialCasing.txt`, so `İ` becomes `i` followed by U+0307). Rules that
//!    depend on context or language, such as Greek final sigma, are not
//!    applied.
//! 3. If the lower-cased run has more than [`MAX_TOKEN_CHARS`] (64) scalar
//!    values, keep only the first 64.
//! 4. Drop the run if it has fewer than [`MIN_TOKEN_CHARS`] (2) scalar values.
//!    Otherwise it is a token.
//! 5. Keep at most the first [`MAX_TOKENS_PER_TEXT`] (256) tokens of one text.
//!    Later ones are ignored.
//!
//! So `"Payment DECLINED: order #8812 (req-123), ünïcode x"` gives
//! `payment`, `declined`, `order`, `8812`, `req`, `123`, `ünïcode`. The lone
//! `x` is dropped. These caps bound the filter's size for a blob. A query side
//! must apply the same rules to its search terms, or it would look for tokens
//! that were never added.
//!
//! An attribute value also gives one *value token*: the whole value,
//! lower-cased as in step 2 and cut to 64 scalar values as in step 3. It is
//! not split, and it is kept even when it has only one character. An empty
//! value gives none. So `request_id=req-123` adds `req-123`, `req` and `123`.
//!
//! # What the filter holds
//!
//! For every record of the blob, the filter holds:
//! * the tokens of `msg`;
//! * for each value in `attrs`, its value token and its tokens.
//!
//! Attribute keys, `service`, `host`, `level` and `source` are not tokenized.
//! `services` and `levels` cover the two that searches filter on.
//!
//! The filter matches whole tokens, not substrings. For a search term, a blob
//! can match only if every token of the term may be in the filter. If the term
//! has no tokens, the filter cannot rule anything out. A substring search must
//! only look up tokens that are certainly whole words of the records it wants.
//! For example, the first and last words of an unanchored substring may be
//! parts of longer words.
//!
//! # Hash
//!
//! A token's hash is 64-bit FNV-1a over its UTF-8 bytes (see [`token_hash`]).
//! Start with `h = 0xcbf29ce484222325`. For each byte `b`, set
//! `h = (h XOR b) * 0x100000001b3 mod 2^64`. Test vectors: `""` →
//! `0xcbf29ce484222325`, `"a"` → `0xaf63dc4c8601ec8c`, `"req"` →
//! `0x89e9ab1960f4a1d3`.
//!
//! # Bloom filter
//!
//! `bloom` is `{"m": <bits>, "k": <probes>, "bits": "<base64>"}`:
//!
//! * `m`: the filter size in bits, `1 <= m <= 2^32`. Writers use a multiple of
//!   64, at least 64, but readers must accept any `m` in the range.
//! * `k`: the number of probes per token, `1 <= k <= 32`.
//! * `bits`: standard base64 with `=` padding (RFC 4648 §4, no line breaks) of
//!   `ceil(m / 64)` 64-bit words, each stored as 8 bytes little-endian. Bit `i`
//!   (`0 <= i < m`) is therefore bit `i mod 8` (least significant first) of byte
//!   `floor(i / 8)`. Padding bits past `m` are written as zero and ignored when
//!   read. A decoded length other than `8 * ceil(m / 64)` bytes makes the
//!   sidecar invalid.
//!
//! Probing token hash `h`. All arithmetic is on unsigned 64-bit integers,
//! wrapping modulo 2^64. `>>` is a logical shift.
//!
//! ```text
//! x  = h
//! x ^= x >> 33;  x *= 0xff51afd7ed558ccd
//! x ^= x >> 33;  x *= 0xc4ceb9fe1a85ec53
//! x ^= x >> 33                       // MurmurHash3's fmix64
//! h1 = x
//! h2 = (x >> 32) | 1
//! probe j, for j in 0..k:  i_j = (h1 + j * h2) mod m
//! ```
//!
//! Inserting sets bits `i_0 … i_{k-1}`. A token *may be present* if all of
//! them are set. The mixing step is there because FNV-1a's low bits depend only
//! on the low bits of the input bytes, which would cluster the probes. `h2` is
//! made odd so it is never zero. Worked example: for `"req"` with `m = 64` and
//! `k = 3`, the probes are bits 30, 49 and 4.
//!
//! Writers size the filter from the number `n` of distinct token hashes in the
//! blob, for a false-positive rate `p` of [`FALSE_POSITIVE_RATE`] (1 %):
//! `m = ceil(-n ln p / (ln 2)^2)`, rounded up to a multiple of 64, with a
//! minimum of 64 and a maximum of 2^32. Then `k = round(m / n · ln 2)`, kept
//! within `1..=32` (`k = 1` when `n = 0`). Readers never recompute this. They
//! use the `m` and `k` they find.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::f64::consts::LN_2;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize, Serializer};

use crate::record::{Level, Record, format_ts};

/// The format version this module writes and the only one it reads.
pub const INDEX_VERSION: u32 = 1;

/// Appended to a blob's object key to name its sidecar.
pub const SIDECAR_SUFFIX: &str = ".idx";

/// Tokens are cut to this many Unicode scalar values.
pub const MAX_TOKEN_CHARS: usize = 64;

/// Shorter tokens are dropped. Single characters would fill the filter and
/// match nearly every blob anyway.
pub const MIN_TOKEN_CHARS: usize = 2;

/// At most this many tokens are taken from one text.
pub const MAX_TOKENS_PER_TEXT: usize = 256;

/// The false-positive rate writers size filters for.
pub const FALSE_POSITIVE_RATE: f64 = 0.01;

/// Smallest filter writers produce, in bits.
pub const MIN_BLOOM_BITS: u64 = 64;

/// Largest filter allowed, in bits (512 MiB). A blob never needs one near
/// this size. The cap keeps a corrupt `m` from asking for a huge allocation.
pub const MAX_BLOOM_BITS: u64 = 1 << 32;

/// Largest number of probes allowed. A corrupt `k` must not turn a lookup into
/// billions of iterations.
pub const MAX_BLOOM_HASHES: u32 = 32;

/// Most cells a sidecar's `minutes` holds; a blob that would need more has
/// none (see the module doc).
pub const MAX_MINUTE_CELLS: usize = 4096;

/// Nanoseconds in a minute.
const MINUTE_NS: i64 = 60_000_000_000;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Why a sidecar could not be read.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// Not JSON, a field is missing or has the wrong type, or the bloom
    /// filter is inconsistent (the message says which).
    #[error("index sidecar is not valid: {0}")]
    Json(#[from] serde_json::Error),
    /// Written by a newer (or unknown) format version.
    #[error("unsupported index version {0} (this reader understands version {INDEX_VERSION})")]
    UnsupportedVersion(u32),
    /// Valid JSON whose values contradict each other.
    #[error("index sidecar is inconsistent: {0}")]
    Invalid(String),
}

/// The sidecar key for a blob key: the key plus [`SIDECAR_SUFFIX`].
pub fn sidecar_key(blob_key: &str) -> String {
    format!("{blob_key}{SIDECAR_SUFFIX}")
}

/// Runs `f` on each token of `text` until it returns `false`. The module
/// doc describes the rules.
fn scan_tokens(text: &str, mut f: impl FnMut(&str) -> bool) {
    let mut token = String::new();
    let mut token_chars = 0usize;
    let mut emitted = 0usize;
    let mut chars = text.chars();
    loop {
        match chars.next() {
            Some(c) if c.is_alphanumeric() => {
                // Past the cap the rest of the run is skipped, not lowercased:
                // a long run costs a scan and nothing more.
                if token_chars < MAX_TOKEN_CHARS {
                    for lower in c.to_lowercase() {
                        if token_chars < MAX_TOKEN_CHARS {
                            token.push(lower);
                            token_chars += 1;
                        }
                    }
                }
            }
            end => {
                if token_chars >= MIN_TOKEN_CHARS {
                    emitted += 1;
                    if !f(&token) || emitted >= MAX_TOKENS_PER_TEXT {
                        return;
                    }
                }
                token.clear();
                token_chars = 0;
                if end.is_none() {
                    return;
                }
            }
        }
    }
}

/// Calls `f` with each token of `text`, in order. The rules are in the
/// module doc. One buffer is reused for every token, so this allocates once
/// per call. [`tokens`] allocates once per token.
pub fn for_each_token(text: &str, mut f: impl FnMut(&str)) {
    scan_tokens(text, |token| {
        f(token);
        true
    });
}

/// The tokens of `text`, in order. The rules are in the module doc: runs of
/// alphanumerics, lower-cased, at most 64 characters long, at least 2, and at
/// most 256 per text.
pub fn tokens(text: &str) -> impl Iterator<Item = String> {
    let mut out = Vec::new();
    for_each_token(text, |token| out.push(token.to_owned()));
    out.into_iter()
}

/// Lower-cased characters of `value`, cut to [`MAX_TOKEN_CHARS`]: the
/// characters of its value token.
fn value_token_chars(value: &str) -> impl Iterator<Item = char> + '_ {
    value
        .chars()
        .flat_map(char::to_lowercase)
        .take(MAX_TOKEN_CHARS)
}

/// The value token of an attribute value: the whole value, lower-cased and cut
/// to 64 characters, or `None` for an empty value. Use it with
/// [`BlobIndex::may_contain_value`] to test for an exact attribute value such
/// as a request id.
pub fn value_token(value: &str) -> Option<String> {
    let token: String = value_token_chars(value).collect();
    (!token.is_empty()).then_some(token)
}

/// [`token_hash`] of [`value_token`]. It avoids allocating on the builder's
/// hot path.
fn value_token_hash(value: &str) -> Option<u64> {
    let mut hash = FNV_OFFSET;
    let mut any = false;
    let mut utf8 = [0u8; 4];
    for c in value_token_chars(value) {
        any = true;
        hash = fnv1a(hash, c.encode_utf8(&mut utf8).as_bytes());
    }
    any.then_some(hash)
}

fn fnv1a(mut hash: u64, bytes: &[u8]) -> u64 {
    for &byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    hash
}

/// 64-bit FNV-1a of the token's UTF-8 bytes: the hash the filter is keyed on.
pub fn token_hash(token: &str) -> u64 {
    fnv1a(FNV_OFFSET, token.as_bytes())
}

/// MurmurHash3's 64-bit finalizer. It spreads every input bit over the whole
/// word before probing.
fn fmix64(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// A Bloom filter of `m` bits probed `k` times per token hash. The module doc
/// gives the exact layout and probing.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "BloomWire")]
pub struct Bloom {
    /// Size in bits; `1..=MAX_BLOOM_BITS`.
    m: u64,
    /// Probes per hash; `1..=MAX_BLOOM_HASHES`.
    k: u32,
    /// `ceil(m / 64)` words; bit `i` is bit `i % 64` of word `i / 64`.
    words: Vec<u64>,
}

/// The JSON shape of a [`Bloom`].
#[derive(Serialize, Deserialize)]
struct BloomWire<'a> {
    m: u64,
    k: u32,
    #[serde(borrow)]
    bits: std::borrow::Cow<'a, str>,
}

impl Bloom {
    /// An empty filter sized for `items` distinct hashes at false-positive
    /// rate `fp_rate`. The module doc gives the formula. `fp_rate` is
    /// clamped to `[1e-9, 0.5]`. NaN means [`FALSE_POSITIVE_RATE`].
    pub fn with_capacity(items: usize, fp_rate: f64) -> Bloom {
        let p = if fp_rate.is_nan() {
            FALSE_POSITIVE_RATE
        } else {
            fp_rate.clamp(1e-9, 0.5)
        };
        let n = items as f64;
        // `as` saturates on overflow, and the clamp below bounds the result.
        let wanted = (-n * p.ln() / (LN_2 * LN_2)).ceil() as u64;
        // MAX_BLOOM_BITS is a multiple of 64, so rounding up stays within it.
        let m = wanted
            .clamp(MIN_BLOOM_BITS, MAX_BLOOM_BITS)
            .div_ceil(64)
            .saturating_mul(64);
        let k = if items == 0 {
            1
        } else {
            ((m as f64 / n) * LN_2).round() as u32
        };
        Bloom::empty(m, k.clamp(1, MAX_BLOOM_HASHES))
    }

    /// An all-zero filter. Callers pass a valid `m` and `k`.
    fn empty(m: u64, k: u32) -> Bloom {
        let words = usize::try_from(m.div_ceil(64)).unwrap_or(0);
        Bloom {
            m,
            k,
            words: vec![0; words],
        }
    }

    /// A filter from its parts. Fails unless `1 <= m <= 2^32`,
    /// `1 <= k <= 32` and `words` has exactly `ceil(m / 64)` entries.
    pub fn from_parts(m: u64, k: u32, words: Vec<u64>) -> Result<Bloom, IndexError> {
        check_shape(m, k)?;
        if words.len() as u64 != m.div_ceil(64) {
            return Err(IndexError::Invalid(format!(
                "bloom has {} words, m = {m} needs {}",
                words.len(),
                m.div_ceil(64)
            )));
        }
        Ok(Bloom { m, k, words })
    }

    /// Size in bits.
    pub fn bits(&self) -> u64 {
        self.m
    }

    /// Probes per hash.
    pub fn hashes(&self) -> u32 {
        self.k
    }

    /// The bit words: bit `i` is bit `i % 64` of word `i / 64`.
    pub fn words(&self) -> &[u64] {
        &self.words
    }

    /// The `k` bit positions for `hash`.
    fn probes(&self, hash: u64) -> impl Iterator<Item = u64> + use<> {
        let h1 = fmix64(hash);
        let h2 = (h1 >> 32) | 1;
        // m is at least 1 in every filter that can be built. The max(1)
        // makes sure the remainder can never divide by zero.
        let m = self.m.max(1);
        (0..u64::from(self.k)).map(move |j| h1.wrapping_add(j.wrapping_mul(h2)) % m)
    }

    /// Adds a token hash (see [`token_hash`]).
    pub fn insert_hash(&mut self, hash: u64) {
        for bit in self.probes(hash) {
            // Every probe is below m, and m fits in the words. get_mut keeps
            // even a broken invariant from panicking.
            if let Some(word) = word_index(bit).and_then(|w| self.words.get_mut(w)) {
                *word |= 1 << (bit % 64);
            }
        }
    }

    /// `false` if the hash was certainly never inserted, `true` if it may
    /// have been.
    pub fn contains_hash(&self, hash: u64) -> bool {
        self.probes(hash).all(|bit| {
            word_index(bit)
                .and_then(|w| self.words.get(w))
                .is_some_and(|word| (word >> (bit % 64)) & 1 == 1)
        })
    }
}

fn word_index(bit: u64) -> Option<usize> {
    usize::try_from(bit / 64).ok()
}

fn check_shape(m: u64, k: u32) -> Result<(), IndexError> {
    if !(1..=MAX_BLOOM_BITS).contains(&m) {
        return Err(IndexError::Invalid(format!(
            "bloom m = {m} is outside 1..={MAX_BLOOM_BITS}"
        )));
    }
    if !(1..=MAX_BLOOM_HASHES).contains(&k) {
        return Err(IndexError::Invalid(format!(
            "bloom k = {k} is outside 1..={MAX_BLOOM_HASHES}"
        )));
    }
    Ok(())
}

impl TryFrom<BloomWire<'_>> for Bloom {
    type Error = IndexError;

    fn try_from(wire: BloomWire<'_>) -> Result<Bloom, IndexError> {
        check_shape(wire.m, wire.k)?;
        let words = wire.m.div_ceil(64);
        let bytes = words * 8;
        // Check the length before decoding, so a corrupt sidecar can never
        // make us allocate more than its own size. With padding, base64 of
        // `bytes` bytes is exactly 4 * ceil(bytes / 3) characters.
        let expected_chars = bytes.div_ceil(3) * 4;
        if wire.bits.len() as u64 != expected_chars {
            return Err(IndexError::Invalid(format!(
                "bloom bits has {} base64 characters, m = {} needs {expected_chars}",
                wire.bits.len(),
                wire.m
            )));
        }
        let decoded = BASE64
            .decode(wire.bits.as_bytes())
            .map_err(|e| IndexError::Invalid(format!("bloom bits are not valid base64: {e}")))?;
        if decoded.len() as u64 != bytes {
            return Err(IndexError::Invalid(format!(
                "bloom bits decode to {} bytes, m = {} needs {bytes}",
                decoded.len(),
                wire.m
            )));
        }
        let words = decoded
            .chunks_exact(8)
            .map(|chunk| {
                chunk
                    .iter()
                    .rev()
                    .fold(0u64, |word, &byte| (word << 8) | u64::from(byte))
            })
            .collect();
        Bloom::from_parts(wire.m, wire.k, words)
    }
}

impl Serialize for Bloom {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let bytes: Vec<u8> = self.words.iter().flat_map(|w| w.to_le_bytes()).collect();
        BloomWire {
            m: self.m,
            k: self.k,
            bits: BASE64.encode(bytes).into(),
        }
        .serialize(serializer)
    }
}

/// The sidecar of one blob. The module doc describes the JSON form.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BlobIndex {
    /// Format version; [`INDEX_VERSION`].
    pub version: u32,
    /// The application.
    pub app: String,
    /// Earliest record `ts`, nanoseconds since the epoch (`0` if no records).
    pub min_ts: i64,
    /// Latest record `ts`, nanoseconds since the epoch (`0` if no records).
    pub max_ts: i64,
    /// Number of records.
    pub records: u64,
    /// Record count per upper-case level name. Only levels that occur are
    /// listed.
    pub levels: BTreeMap<String, u64>,
    /// Distinct services.
    pub services: BTreeSet<String>,
    /// Uncompressed NDJSON bytes, newlines included.
    pub raw_bytes: u64,
    /// Stored (gzip) size of the blob.
    pub compressed_bytes: u64,
    /// Whether the records are in ascending `ts` order.
    pub sorted: bool,
    /// Filter over message and attribute-value tokens.
    pub bloom: Bloom,
    /// Record counts per minute, level and service, when the writer kept
    /// them (see the module doc).
    #[serde(default)]
    pub minutes: Option<Vec<MinuteCell>>,
    /// On a compaction output, the blobs it replaces (see the module doc).
    #[serde(default)]
    pub replaces: Option<Replaces>,
}

/// A compaction output's sidecar field `replaces`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replaces {
    /// The compaction run's id, the same in each of its outputs.
    pub run: String,
    /// This output's number in the run, from 0.
    pub part: u32,
    /// Whether this is the run's last output.
    pub last: bool,
    /// The file names of the run's inputs, in this output's partition.
    pub inputs: Vec<String>,
}

/// One cell of a sidecar's `minutes`: how many records of one level and
/// service fall in one minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(from = "(i64, u8, u32, u64)", into = "(i64, u8, u32, u64)")]
pub struct MinuteCell {
    /// Minutes since the epoch (`ts` / 60·10⁹, rounded down).
    pub minute: i64,
    /// The level's position in [`Level::ALL`].
    pub level: u8,
    /// The service's position in [`BlobIndex::services`].
    pub service: u32,
    pub count: u64,
}

impl From<(i64, u8, u32, u64)> for MinuteCell {
    fn from((minute, level, service, count): (i64, u8, u32, u64)) -> MinuteCell {
        MinuteCell {
            minute,
            level,
            service,
            count,
        }
    }
}

impl From<MinuteCell> for (i64, u8, u32, u64) {
    fn from(c: MinuteCell) -> Self {
        (c.minute, c.level, c.service, c.count)
    }
}

impl MinuteCell {
    /// The first nanosecond of the cell's minute.
    pub fn start_ns(&self) -> i64 {
        self.minute.saturating_mul(MINUTE_NS)
    }
}

/// The JSON shape of a [`BlobIndex`]: its fields plus RFC 3339 copies of the
/// time bounds for people reading the file.
#[derive(Serialize)]
struct BlobIndexWire<'a> {
    version: u32,
    app: &'a str,
    min_ts: i64,
    min_time: String,
    max_ts: i64,
    max_time: String,
    records: u64,
    levels: &'a BTreeMap<String, u64>,
    services: &'a BTreeSet<String>,
    raw_bytes: u64,
    compressed_bytes: u64,
    sorted: bool,
    bloom: &'a Bloom,
    #[serde(skip_serializing_if = "Option::is_none")]
    minutes: Option<&'a Vec<MinuteCell>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    replaces: Option<&'a Replaces>,
}

impl Serialize for BlobIndex {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        BlobIndexWire {
            version: self.version,
            app: &self.app,
            min_ts: self.min_ts,
            min_time: format_ts(self.min_ts),
            max_ts: self.max_ts,
            max_time: format_ts(self.max_ts),
            records: self.records,
            levels: &self.levels,
            services: &self.services,
            raw_bytes: self.raw_bytes,
            compressed_bytes: self.compressed_bytes,
            sorted: self.sorted,
            bloom: &self.bloom,
            minutes: self.minutes.as_ref(),
            replaces: self.replaces.as_ref(),
        }
        .serialize(serializer)
    }
}

/// The first field read from a sidecar. The version is checked before
/// anything else, so a newer format reports "unsupported version" rather than
/// some confusing field error.
#[derive(Deserialize)]
struct VersionProbe {
    version: u32,
}

impl BlobIndex {
    /// The sidecar's bytes: one JSON object, no trailing newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        // String-keyed maps, strings and integers always serialise, so the
        // fallback is never used.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads a sidecar. Fails, without panicking, on any input that is not
    /// valid JSON. It also fails on a version other than [`INDEX_VERSION`],
    /// on a bloom filter whose `m`, `k` and `bits` disagree or fall out of
    /// range, and on `min_ts > max_ts`.
    pub fn from_bytes(bytes: &[u8]) -> Result<BlobIndex, IndexError> {
        let probe: VersionProbe = serde_json::from_slice(bytes)?;
        if probe.version != INDEX_VERSION {
            return Err(IndexError::UnsupportedVersion(probe.version));
        }
        let index: BlobIndex = serde_json::from_slice(bytes)?;
        if index.records > 0 && index.min_ts > index.max_ts {
            return Err(IndexError::Invalid(format!(
                "min_ts {} is after max_ts {}",
                index.min_ts, index.max_ts
            )));
        }
        if let Some(cells) = &index.minutes {
            index.check_minutes(cells)?;
        }
        Ok(index)
    }

    fn check_minutes(&self, cells: &[MinuteCell]) -> Result<(), IndexError> {
        let invalid = |what: String| Err(IndexError::Invalid(format!("minutes: {what}")));
        if cells.len() > MAX_MINUTE_CELLS {
            return invalid(format!("{} cells, at most {MAX_MINUTE_CELLS}", cells.len()));
        }
        let (first, last) = (
            self.min_ts.div_euclid(MINUTE_NS),
            self.max_ts.div_euclid(MINUTE_NS),
        );
        let mut sum = 0u64;
        for c in cells {
            if usize::from(c.level) >= Level::ALL.len()
                || c.service as usize >= self.services.len()
                || c.minute < first
                || c.minute > last
                || c.count == 0
            {
                return invalid(format!("cell {:?} is out of range", c));
            }
            sum = sum.saturating_add(c.count);
        }
        if sum != self.records {
            return invalid(format!("counts add up to {sum}, not {}", self.records));
        }
        Ok(())
    }

    /// Whether the blob may hold a record with every token of `term` (see
    /// [`tokens`]), in its message or in an attribute value. `false` means it
    /// certainly does not. A term with no tokens, such as `""` or `"a"`, gives
    /// `true`.
    pub fn may_contain(&self, term: &str) -> bool {
        let mut all = true;
        scan_tokens(term, |token| {
            all = self.bloom.contains_hash(token_hash(token));
            all
        });
        all
    }

    /// Whether the blob may hold a record with an attribute whose whole value
    /// is `value`, ignoring case and comparing only the first 64 characters
    /// (see [`value_token`]). An empty `value` gives `true`.
    pub fn may_contain_value(&self, value: &str) -> bool {
        value_token_hash(value).is_none_or(|hash| self.bloom.contains_hash(hash))
    }

    /// Whether some record time of the blob may lie in
    /// `from_ns ..= to_ns`. Both ends are inclusive, so a caller using a
    /// half-open range never misses a record. At worst it opens a blob that
    /// starts exactly at `to_ns`. Always `false` for a blob with no records
    /// or when `from_ns > to_ns`.
    pub fn overlaps(&self, from_ns: i64, to_ns: i64) -> bool {
        self.records > 0 && from_ns <= to_ns && self.min_ts <= to_ns && self.max_ts >= from_ns
    }
}

/// Gathers a [`BlobIndex`] while a blob is written, one record at a time.
#[derive(Debug)]
pub struct IndexBuilder {
    app: String,
    min_ts: i64,
    max_ts: i64,
    records: u64,
    levels: [u64; Level::ALL.len()],
    services: BTreeSet<String>,
    raw_bytes: u64,
    /// Distinct token hashes. The filter is sized only at the end, when their
    /// number is known, so small blobs get small filters.
    hashes: HashSet<u64>,
    /// Minute counts by (minute, level, service in order of first sight);
    /// `None` once there are more than [`MAX_MINUTE_CELLS`].
    cells: Option<HashMap<(i64, u8, u32), u64>>,
    /// Services in order of first sight, their numbers, and the number of
    /// the last record's.
    service_names: Vec<String>,
    service_ids: HashMap<String, u32>,
    last_service: Option<u32>,
    replaces: Option<Replaces>,
}

impl IndexBuilder {
    /// An empty builder for a blob of `app`.
    pub fn new(app: &str) -> IndexBuilder {
        IndexBuilder {
            app: app.to_owned(),
            min_ts: i64::MAX,
            max_ts: i64::MIN,
            records: 0,
            levels: [0; Level::ALL.len()],
            services: BTreeSet::new(),
            raw_bytes: 0,
            hashes: HashSet::new(),
            cells: Some(HashMap::new()),
            service_names: Vec::new(),
            service_ids: HashMap::new(),
            last_service: None,
            replaces: None,
        }
    }

    /// The service's number in order of first sight.
    fn service_id(&mut self, service: &str) -> u32 {
        if let Some(id) = self.last_service
            && self
                .service_names
                .get(id as usize)
                .is_some_and(|n| n == service)
        {
            return id;
        }
        let id = match self.service_ids.get(service) {
            Some(id) => *id,
            None => {
                let id = self.service_names.len() as u32;
                self.service_names.push(service.to_owned());
                self.service_ids.insert(service.to_owned(), id);
                id
            }
        };
        self.last_service = Some(id);
        id
    }

    /// Adds one record whose JSON line (without newline) is `json_len` bytes.
    pub fn push(&mut self, record: &Record, json_len: usize) {
        self.records = self.records.saturating_add(1);
        self.min_ts = self.min_ts.min(record.ts);
        self.max_ts = self.max_ts.max(record.ts);
        if let Some(count) = self.levels.get_mut(record.level.index()) {
            *count = count.saturating_add(1);
        }
        // Look up before inserting, so we clone only for a service not seen
        // yet. That is rare after the first few records.
        if !self.services.contains(&record.service) {
            self.services.insert(record.service.clone());
        }
        if self.cells.is_some() {
            let key = (
                record.ts.div_euclid(MINUTE_NS),
                record.level.index() as u8,
                self.service_id(&record.service),
            );
            if let Some(cells) = &mut self.cells {
                *cells.entry(key).or_default() += 1;
                if cells.len() > MAX_MINUTE_CELLS {
                    self.cells = None;
                }
            }
        }
        self.raw_bytes = self
            .raw_bytes
            .saturating_add((json_len as u64).saturating_add(1));

        let hashes = &mut self.hashes;
        for_each_token(&record.msg, |token| {
            hashes.insert(token_hash(token));
        });
        for value in record.attrs.values() {
            if let Some(hash) = value_token_hash(value) {
                hashes.insert(hash);
            }
            for_each_token(value, |token| {
                hashes.insert(token_hash(token));
            });
        }
    }

    /// Records pushed so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// The finished index. `compressed_bytes` is the blob's stored size.
    /// `sorted` says whether the records were pushed in ascending `ts` order.
    pub fn finish(self, compressed_bytes: u64, sorted: bool) -> BlobIndex {
        let mut bloom = Bloom::with_capacity(self.hashes.len(), FALSE_POSITIVE_RATE);
        for &hash in &self.hashes {
            bloom.insert_hash(hash);
        }
        let levels = Level::ALL
            .iter()
            .zip(self.levels)
            .filter(|&(_, count)| count > 0)
            .map(|(level, count)| (level.as_str().to_owned(), count))
            .collect();
        let (min_ts, max_ts) = if self.records == 0 {
            (0, 0)
        } else {
            (self.min_ts, self.max_ts)
        };
        // Service numbers by first sight become positions in the sorted set.
        let in_order: Vec<&String> = self.services.iter().collect();
        let position: Vec<Option<u32>> = self
            .service_names
            .iter()
            .map(|name| in_order.binary_search(&name).ok().map(|at| at as u32))
            .collect();
        let minutes = self.cells.map(|cells| {
            let mut out: Vec<MinuteCell> = cells
                .into_iter()
                .filter_map(|((minute, level, id), count)| {
                    Some(MinuteCell {
                        minute,
                        level,
                        service: (*position.get(id as usize)?)?,
                        count,
                    })
                })
                .collect();
            out.sort_unstable();
            out
        });
        BlobIndex {
            version: INDEX_VERSION,
            app: self.app,
            min_ts,
            max_ts,
            records: self.records,
            levels,
            services: self.services,
            raw_bytes: self.raw_bytes,
            compressed_bytes,
            sorted,
            bloom,
            minutes,
            replaces: self.replaces,
        }
    }

    /// Marks the sidecar as a compaction output's (see the module doc).
    pub fn set_replaces(&mut self, replaces: Replaces) {
        self.replaces = Some(replaces);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::parse_ts;
    use proptest::prelude::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn record(ts: &str, level: Level, service: &str, msg: &str, attrs: &[(&str, &str)]) -> Record {
        Record {
            id: "01JDQ3N7Z5K3W8M2X4R6T9V0BC".into(),
            ts: parse_ts(ts).unwrap(),
            app: "shop".into(),
            service: service.into(),
            host: "web-1".into(),
            level,
            msg: msg.into(),
            attrs: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            source: "file:/var/log/shop/checkout.log".into(),
        }
    }

    fn sample_records() -> Vec<Record> {
        vec![
            record(
                "2026-11-22T10:00:30Z",
                Level::Error,
                "checkout",
                "payment declined for order 8812",
                &[("request_id", "req-123"), ("trace_id", "4bf92f3577b34da6")],
            ),
            record(
                "2026-11-22T10:00:00.123456789Z",
                Level::Info,
                "checkout",
                "order 8812 created",
                &[],
            ),
            record(
                "2026-11-22T10:00:59Z",
                Level::Error,
                "billing",
                "Card Expired",
                &[("user", "Zoë")],
            ),
        ]
    }

    fn sample_index() -> BlobIndex {
        let mut builder = IndexBuilder::new("shop");
        for r in sample_records() {
            let len = r.to_json().len();
            builder.push(&r, len);
        }
        builder.finish(301, false)
    }

    fn toks(text: &str) -> Vec<String> {
        tokens(text).collect()
    }

    #[test]
    fn builder_collects_stats() {
        let records = sample_records();
        let mut builder = IndexBuilder::new("shop");
        let mut raw = 0u64;
        for r in &records {
            let len = r.to_json().len();
            raw += len as u64 + 1;
            builder.push(r, len);
        }
        assert_eq!(builder.records(), 3);
        let index = builder.finish(301, true);
        assert_eq!(index.version, INDEX_VERSION);
        assert_eq!(index.app, "shop");
        assert_eq!(
            index.min_ts,
            parse_ts("2026-11-22T10:00:00.123456789Z").unwrap()
        );
        assert_eq!(index.max_ts, parse_ts("2026-11-22T10:00:59Z").unwrap());
        assert_eq!(index.records, 3);
        assert_eq!(
            index.levels,
            BTreeMap::from([("ERROR".to_string(), 2), ("INFO".to_string(), 1)])
        );
        assert_eq!(
            index.services,
            BTreeSet::from(["billing".to_string(), "checkout".to_string()])
        );
        assert_eq!(index.raw_bytes, raw);
        assert_eq!(index.compressed_bytes, 301);
        assert!(index.sorted);
        // 13 distinct tokens: ceil(13 · 9.585) = 125 bits, rounded up to 128.
        assert_eq!((index.bloom.bits(), index.bloom.hashes()), (128, 7));
    }

    #[test]
    fn empty_builder() {
        let index = IndexBuilder::new("shop").finish(20, true);
        assert_eq!((index.records, index.min_ts, index.max_ts), (0, 0, 0));
        assert!(index.levels.is_empty() && index.services.is_empty());
        assert_eq!((index.bloom.bits(), index.bloom.hashes()), (64, 1));
        assert!(!index.may_contain("anything"));
        assert!(!index.overlaps(i64::MIN, i64::MAX));
        assert_eq!(BlobIndex::from_bytes(&index.to_bytes()).unwrap(), index);
    }

    #[test]
    fn round_trip() {
        let index = sample_index();
        let bytes = index.to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(json["version"], 1);
        assert_eq!(json["min_time"], "2026-11-22T10:00:00.123456789Z");
        assert_eq!(json["max_time"], "2026-11-22T10:00:59.000000000Z");
        assert_eq!(json["levels"]["ERROR"], 2);
        assert_eq!(json["bloom"]["m"], 128);
        assert_eq!(json["bloom"]["bits"].as_str().unwrap().len(), 24);
        assert_eq!(BlobIndex::from_bytes(&bytes).unwrap(), index);
    }

    #[test]
    fn module_doc_example_is_exact() {
        let doc_example = concat!(
            r#"{"version":1,"app":"shop","#,
            r#""min_ts":1795341600123456789,"min_time":"2026-11-22T10:00:00.123456789Z","#,
            r#""max_ts":1795341659000000000,"max_time":"2026-11-22T10:00:59.000000000Z","#,
            r#""records":3,"levels":{"ERROR":2,"INFO":1},"services":["billing","checkout"],"#,
            r#""raw_bytes":730,"compressed_bytes":301,"sorted":false,"#,
            r#""bloom":{"m":128,"k":7,"bits":"GVSEpSiua2UefE/7t3cK8w=="},"#,
            r#""minutes":[[29922360,2,1,1],[29922360,4,0,1],[29922360,4,1,1]]}"#,
        );
        assert_eq!(
            String::from_utf8(sample_index().to_bytes()).unwrap(),
            doc_example
        );
    }

    #[test]
    fn a_compaction_output_names_what_it_replaces_and_older_sidecars_name_nothing() {
        let mut builder = IndexBuilder::new("shop");
        for r in sample_records() {
            builder.push(&r, 100);
        }
        let replaces = Replaces {
            run: "01JRUN".into(),
            part: 1,
            last: true,
            inputs: vec![
                "part-01JA-f1.ndjson.gz".into(),
                "part-01JB-f1.ndjson.gz".into(),
            ],
        };
        builder.set_replaces(replaces.clone());
        let index = builder.finish(1, true);
        let bytes = index.to_bytes();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(
            text.ends_with(r#""replaces":{"run":"01JRUN","part":1,"last":true,"inputs":["part-01JA-f1.ndjson.gz","part-01JB-f1.ndjson.gz"]}}"#),
            "{text}"
        );
        assert_eq!(
            BlobIndex::from_bytes(&bytes).unwrap().replaces,
            Some(replaces)
        );
        // A sidecar written before the field existed (the documented example
        // has none) reads as replacing nothing.
        assert!(
            !String::from_utf8(sample_index().to_bytes())
                .unwrap()
                .contains("replaces")
        );
        assert_eq!(
            BlobIndex::from_bytes(&sample_index().to_bytes())
                .unwrap()
                .replaces,
            None
        );
    }

    #[test]
    fn minute_counts_add_up_and_are_checked() {
        let mut builder = IndexBuilder::new("shop");
        let base = parse_ts("2026-11-22T10:00:00Z").unwrap();
        let services = ["web", "api", "db"];
        for i in 0..600i64 {
            let mut r = sample_records()[0].clone();
            r.ts = base + i * 6_000_000_000;
            r.service = services[i as usize % 3].into();
            r.level = Level::ALL[i as usize % 6];
            builder.push(&r, 100);
        }
        let index = builder.finish(1, true);
        let cells = index
            .minutes
            .clone()
            .expect("a small blob keeps minute counts");
        assert_eq!(cells.iter().map(|c| c.count).sum::<u64>(), 600);
        assert!(cells.windows(2).all(|w| w[0] < w[1]), "cells are sorted");
        // Ten records a minute, over 60 minutes; service positions follow
        // the sorted set (api, db, web).
        let first: Vec<_> = cells
            .iter()
            .filter(|c| c.minute == cells[0].minute)
            .collect();
        assert_eq!(first.iter().map(|c| c.count).sum::<u64>(), 10);
        assert!(
            first.iter().any(|c| c.level == 0 && c.service == 2),
            "TRACE on web"
        );
        let back = BlobIndex::from_bytes(&index.to_bytes()).unwrap();
        assert_eq!(back, index);

        // Counts that do not add up, or a cell out of range, are refused.
        for broken in [
            |c: &mut Vec<MinuteCell>| c[0].count += 1,
            |c: &mut Vec<MinuteCell>| c[0].service = 3,
            |c: &mut Vec<MinuteCell>| c[0].level = 6,
            |c: &mut Vec<MinuteCell>| c[0].minute -= 1,
        ] {
            let mut bad = index.clone();
            broken(bad.minutes.as_mut().unwrap());
            assert!(BlobIndex::from_bytes(&bad.to_bytes()).is_err());
        }
        // A sidecar written without them still reads.
        let mut older = index.clone();
        older.minutes = None;
        assert_eq!(
            BlobIndex::from_bytes(&older.to_bytes()).unwrap().minutes,
            None
        );
    }

    #[test]
    fn too_many_minute_cells_are_left_out() {
        let mut builder = IndexBuilder::new("shop");
        let base = parse_ts("2026-11-22T10:00:00Z").unwrap();
        for i in 0..(MAX_MINUTE_CELLS as i64 + 1) {
            let mut r = sample_records()[0].clone();
            r.ts = base + (i % 60) * 60_000_000_000;
            r.service = format!("s{}", i / 60);
            builder.push(&r, 100);
        }
        assert_eq!(builder.finish(1, false).minutes, None);
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let mut json: serde_json::Value =
            serde_json::from_slice(&sample_index().to_bytes()).unwrap();
        json["future_field"] = serde_json::json!({"x": [1, 2]});
        json.as_object_mut().unwrap().remove("min_time");
        let bytes = serde_json::to_vec(&json).unwrap();
        assert_eq!(BlobIndex::from_bytes(&bytes).unwrap(), sample_index());
    }

    #[test]
    fn may_contain_every_inserted_token() {
        let index = sample_index();
        for r in sample_records() {
            assert!(index.may_contain(&r.msg), "{}", r.msg);
            for token in tokens(&r.msg) {
                assert!(index.may_contain(&token), "{token}");
            }
            for value in r.attrs.values() {
                assert!(index.may_contain(value), "{value}");
                assert!(index.may_contain_value(value), "{value}");
                for token in tokens(value) {
                    assert!(index.may_contain(&token), "{token}");
                }
            }
        }
        for term in [
            "req-123",
            "REQ-123",
            "req",
            "123",
            "payment declined",
            "ZOË",
            "zoë",
        ] {
            assert!(index.may_contain(term), "{term}");
        }
        assert!(index.may_contain_value("Req-123"));
        assert!(index.may_contain_value("4BF92F3577B34DA6"));
        assert!(index.may_contain(""));
        assert!(index.may_contain("!!! x"));
        assert!(index.may_contain_value(""));
        // A 128-bit filter with 13 tokens has false positives of its own
        // (about 1 %), so absent words are checked in bulk.
        let absent = (0..200)
            .filter(|i| !index.may_contain(&format!("absent{i}")))
            .count();
        assert!(absent >= 190, "only {absent} of 200 absent words ruled out");
        assert!(!index.may_contain("payment absent0 absent1 absent2"));
        assert!(!index.may_contain_value("req-999"));
    }

    #[test]
    fn value_token_hash_matches_value_token() {
        for value in ["req-123", "Zoë", "İstanbul", "", "x", &"Ab".repeat(100)] {
            assert_eq!(
                value_token_hash(value),
                value_token(value).map(|t| token_hash(&t)),
                "{value}"
            );
        }
        assert_eq!(value_token("ReQ-123").as_deref(), Some("req-123"));
        assert_eq!(value_token("x").as_deref(), Some("x"));
        assert_eq!(value_token(""), None);
        assert_eq!(value_token(&"A".repeat(100)).unwrap(), "a".repeat(64));
    }

    #[test]
    fn hash_test_vectors() {
        assert_eq!(token_hash(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(token_hash("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(token_hash("foobar"), 0x8594_4171_f739_67e8);
        assert_eq!(token_hash("req"), 0x89e9_ab19_60f4_a1d3);
        let bloom = Bloom::empty(64, 3);
        assert_eq!(
            bloom.probes(token_hash("req")).collect::<Vec<_>>(),
            [30, 49, 4]
        );
    }

    #[test]
    fn bit_layout_is_little_endian_words() {
        let mut bloom = Bloom::empty(128, 1);
        let hash = token_hash("req");
        bloom.insert_hash(hash);
        let bit = bloom.probes(hash).next().unwrap();
        let json = serde_json::to_value(&bloom).unwrap();
        let bytes = BASE64.decode(json["bits"].as_str().unwrap()).unwrap();
        assert_eq!(bytes.len(), 16);
        for (i, byte) in bytes.iter().enumerate() {
            let expected = if i as u64 == bit / 8 {
                1u8 << (bit % 8)
            } else {
                0
            };
            assert_eq!(*byte, expected, "byte {i}");
        }
    }

    #[test]
    fn sizing() {
        let bloom = Bloom::with_capacity(10_000, 0.01);
        // -10000 ln 0.01 / ln²2 = 95851 bits, rounded up to 64.
        assert_eq!(bloom.bits(), 95_872);
        assert_eq!(bloom.hashes(), 7);
        assert_eq!(bloom.words().len(), 95_872 / 64);
        assert_eq!(Bloom::with_capacity(1, 0.01).bits(), 64);
        assert_eq!(Bloom::with_capacity(1, 0.01).hashes(), MAX_BLOOM_HASHES);
        let huge = Bloom::with_capacity(usize::MAX, 0.01);
        assert_eq!(huge.bits(), MAX_BLOOM_BITS);
        for p in [
            f64::NAN,
            0.0,
            -1.0,
            1.0,
            7.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ] {
            let bloom = Bloom::with_capacity(100, p);
            assert!(bloom.bits() >= 64 && bloom.bits().is_multiple_of(64), "{p}");
            assert!((1..=MAX_BLOOM_HASHES).contains(&bloom.hashes()), "{p}");
        }
    }

    fn random_token(rng: &mut StdRng) -> String {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        (0..12)
            .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
            .collect()
    }

    #[test]
    fn false_positive_rate() {
        let mut rng = StdRng::seed_from_u64(7);
        let present: HashSet<String> = (0..10_000).map(|_| random_token(&mut rng)).collect();
        let mut bloom = Bloom::with_capacity(present.len(), FALSE_POSITIVE_RATE);
        for token in &present {
            bloom.insert_hash(token_hash(token));
        }
        assert!(present.iter().all(|t| bloom.contains_hash(token_hash(t))));
        let mut absent = 0;
        let mut hits = 0;
        while absent < 10_000 {
            let token = random_token(&mut rng);
            if present.contains(&token) {
                continue;
            }
            absent += 1;
            hits += usize::from(bloom.contains_hash(token_hash(&token)));
        }
        assert!(hits <= 300, "{hits} false positives in 10000");
    }

    #[test]
    fn false_positive_rate_through_builder() {
        // Short, similar tokens stress the hash more than random ones do.
        let mut builder = IndexBuilder::new("shop");
        for i in 0..2_500 {
            let r = record(
                "2026-11-22T10:00:00Z",
                Level::Info,
                "svc",
                &format!("w{i}a w{i}b w{i}c"),
                &[("request_id", &format!("r{i}"))],
            );
            builder.push(&r, 100);
        }
        let index = builder.finish(0, false);
        // 7500 message tokens + 2500 attribute values (value token and token
        // coincide).
        assert_eq!(
            index.bloom.bits(),
            Bloom::with_capacity(10_000, 0.01).bits()
        );
        for i in 0..2_500 {
            assert!(index.may_contain(&format!("w{i}b")));
            assert!(index.may_contain_value(&format!("R{i}")));
        }
        let hits = (10_000..20_000)
            .filter(|i| index.may_contain(&format!("w{i}a")))
            .count();
        assert!(hits <= 300, "{hits} false positives in 10000");
    }

    #[test]
    fn tokenizer_table() {
        let long = "x".repeat(100);
        let cases: &[(&str, &[&str])] = &[
            ("", &[]),
            (
                "Payment DECLINED: order #8812 (req-123), ünïcode x",
                &[
                    "payment",
                    "declined",
                    "order",
                    "8812",
                    "req",
                    "123",
                    "ünïcode",
                ],
            ),
            ("hello", &["hello"]),
            ("Hello, World!", &["hello", "world"]),
            (
                "payment declined: order #8812",
                &["payment", "declined", "order", "8812"],
            ),
            ("req-123/abc_def.ghi", &["req", "123", "abc", "def", "ghi"]),
            ("a b cd e", &["cd"]),
            ("x", &[]),
            ("  --==++  ", &[]),
            ("CamelCase HTTP500", &["camelcase", "http500"]),
            ("Zoë naïve ÉCOLE", &["zoë", "naïve", "école"]),
            ("東京 タワー", &["東京", "タワー"]),
            ("ΣΊΣΥΦΟΣ", &["σίσυφοσ"]),
            ("İs", &["i\u{307}s"]),
            ("Straße STRASSE", &["straße", "strasse"]),
            ("x²³ ½½", &["x²³", "½½"]),
            ("tab\tnew\nline\u{0}nul", &["tab", "new", "line", "nul"]),
            ("emoji😀between", &["emoji", "between"]),
        ];
        for (text, want) in cases {
            assert_eq!(toks(text), *want, "{text:?}");
        }
        assert_eq!(toks(&format!("{long} ok")), [&"x".repeat(64), "ok"]);
        // 64 is exact: "İ" lower-cases to two scalar values, cut at the cap.
        let dotted = format!("{}İ", "a".repeat(63));
        assert_eq!(toks(&dotted), [format!("{}i", "a".repeat(63))]);
        let many: String = (0..300).map(|i| format!("t{i} ")).collect();
        let got = toks(&many);
        assert_eq!(got.len(), MAX_TOKENS_PER_TEXT);
        assert_eq!(got.last().unwrap(), "t255");
        // Dropped short runs do not count towards the cap.
        let sparse: String = (0..300).map(|i| format!("a t{i} ")).collect();
        assert_eq!(toks(&sparse).len(), MAX_TOKENS_PER_TEXT);
    }

    #[test]
    fn truncated_tokens_still_match() {
        let mut builder = IndexBuilder::new("shop");
        let word = "y".repeat(200);
        builder.push(
            &record("2026-11-22T10:00:00Z", Level::Info, "s", &word, &[]),
            10,
        );
        let index = builder.finish(0, false);
        assert!(index.may_contain(&word));
        assert!(index.may_contain(&"Y".repeat(64)));
    }

    #[test]
    fn overlaps() {
        let index = sample_index();
        let (lo, hi) = (index.min_ts, index.max_ts);
        assert!(index.overlaps(lo, hi));
        assert!(index.overlaps(lo - 10, lo));
        assert!(index.overlaps(hi, hi + 10));
        assert!(index.overlaps(lo + 1, lo + 2));
        assert!(index.overlaps(i64::MIN, i64::MAX));
        assert!(!index.overlaps(lo - 10, lo - 1));
        assert!(!index.overlaps(hi + 1, hi + 10));
        assert!(!index.overlaps(hi, lo));
    }

    fn corrupt(edit: impl FnOnce(&mut serde_json::Value)) -> Result<BlobIndex, IndexError> {
        let mut json: serde_json::Value =
            serde_json::from_slice(&sample_index().to_bytes()).unwrap();
        edit(&mut json);
        BlobIndex::from_bytes(&serde_json::to_vec(&json).unwrap())
    }

    #[test]
    fn corrupt_inputs_are_rejected() {
        let bytes = sample_index().to_bytes();
        for cut in [0, 1, bytes.len() / 2, bytes.len() - 1] {
            assert!(
                BlobIndex::from_bytes(&bytes[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        assert!(BlobIndex::from_bytes(b"null").is_err());
        assert!(BlobIndex::from_bytes(b"{}").is_err());
        assert!(BlobIndex::from_bytes(&[0xff, 0xfe, 0x00]).is_err());

        assert!(matches!(
            corrupt(|j| j["version"] = 2.into()),
            Err(IndexError::UnsupportedVersion(2))
        ));
        assert!(matches!(
            corrupt(|j| *j = serde_json::json!({"version": 9, "new": "layout"})),
            Err(IndexError::UnsupportedVersion(9))
        ));
        assert!(corrupt(|j| j["version"] = (-1).into()).is_err());
        assert!(corrupt(|j| j["bloom"]["m"] = 0.into()).is_err());
        assert!(corrupt(|j| j["bloom"]["m"] = 256.into()).is_err());
        assert!(corrupt(|j| j["bloom"]["m"] = (MAX_BLOOM_BITS + 1).into()).is_err());
        assert!(corrupt(|j| j["bloom"]["m"] = u64::MAX.into()).is_err());
        assert!(corrupt(|j| j["bloom"]["k"] = 0.into()).is_err());
        assert!(corrupt(|j| j["bloom"]["k"] = 33.into()).is_err());
        assert!(corrupt(|j| j["bloom"]["bits"] = "AAAA".into()).is_err());
        // Right length, wrong alphabet or padding.
        assert!(corrupt(|j| j["bloom"]["bits"] = "AAAAAAAAAA*=".into()).is_err());
        assert!(corrupt(|j| j["bloom"]["bits"] = "AAAAAAAAAAA".into()).is_err());
        // 12 characters that decode to 9 bytes rather than 8.
        assert!(corrupt(|j| j["bloom"]["bits"] = "AAAAAAAAAAAA".into()).is_err());
        assert!(corrupt(|j| j["bloom"]["bits"] = 5.into()).is_err());
        assert!(corrupt(|j| j["min_ts"] = (j["max_ts"].as_i64().unwrap() + 1).into()).is_err());
        assert!(
            corrupt(|j| {
                j.as_object_mut().unwrap().remove("records");
            })
            .is_err()
        );
        // A non-multiple of 64 is valid: ceil(100 / 64) = 2 words.
        let odd = corrupt(|j| {
            j["bloom"] = serde_json::json!({"m": 100, "k": 2, "bits": "AAAAAAAAAAAAAAAAAAAAAA=="});
        })
        .unwrap();
        assert_eq!(odd.bloom.words().len(), 2);
        assert!(!odd.may_contain("payment"));
    }

    #[test]
    fn from_parts_checks_shape() {
        assert!(Bloom::from_parts(64, 1, vec![0]).is_ok());
        assert!(Bloom::from_parts(65, 1, vec![0]).is_err());
        assert!(Bloom::from_parts(0, 1, vec![]).is_err());
        assert!(Bloom::from_parts(64, 0, vec![0]).is_err());
    }

    #[test]
    fn sidecar_key_appends_suffix() {
        assert_eq!(
            sidecar_key("shop/app=shop/dt=2026-11-22/hour=10/x.ndjson.gz"),
            "shop/app=shop/dt=2026-11-22/hour=10/x.ndjson.gz.idx"
        );
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = BlobIndex::from_bytes(&bytes);
        }

        #[test]
        fn mutated_sidecars_never_panic(
            cut in 0usize..2_000,
            flips in proptest::collection::vec((0usize..2_000, any::<u8>()), 0..4),
        ) {
            let mut bytes = sample_index().to_bytes();
            for (at, byte) in flips {
                let len = bytes.len();
                bytes[at % len] = byte;
            }
            bytes.truncate(cut);
            if let Ok(index) = BlobIndex::from_bytes(&bytes) {
                let _ = index.may_contain("payment declined");
                let _ = index.may_contain_value("req-123");
                let _ = index.overlaps(0, i64::MAX);
            }
        }

        #[test]
        fn random_bloom_fields_never_panic(m in any::<u64>(), k in any::<u32>(), bits in ".{0,40}") {
            let json = serde_json::json!({
                "version": 1, "app": "a", "min_ts": 0, "max_ts": 0, "records": 0,
                "levels": {}, "services": [], "raw_bytes": 0, "compressed_bytes": 0,
                "sorted": false, "bloom": {"m": m, "k": k, "bits": bits},
            });
            if let Ok(index) = BlobIndex::from_bytes(&serde_json::to_vec(&json).unwrap()) {
                prop_assert!(index.bloom.words().len() as u64 == m.div_ceil(64));
                let _ = index.may_contain("anything at all");
            }
        }

        #[test]
        fn tokens_obey_the_caps(text in "\\PC{0,2000}") {
            let got = toks(&text);
            prop_assert!(got.len() <= MAX_TOKENS_PER_TEXT);
            for token in &got {
                let n = token.chars().count();
                prop_assert!((MIN_TOKEN_CHARS..=MAX_TOKEN_CHARS).contains(&n));
            }
            // Tokenizing is idempotent for each token (the query side
            // re-tokenizes terms), except when lowercasing yields non-word
            // characters such as a combining dot.
            for token in &got {
                if token.chars().all(char::is_alphanumeric) {
                    prop_assert_eq!(toks(token), vec![token.clone()]);
                }
            }
        }

        #[test]
        fn inserted_text_is_always_found(msg in "\\PC{0,200}", value in "\\PC{0,80}") {
            let mut builder = IndexBuilder::new("shop");
            let r = record("2026-11-22T10:00:00Z", Level::Warn, "s", &msg, &[("k", &value)]);
            builder.push(&r, 0);
            let index = BlobIndex::from_bytes(&builder.finish(0, false).to_bytes()).unwrap();
            prop_assert!(index.may_contain(&msg));
            prop_assert!(index.may_contain(&value));
            prop_assert!(index.may_contain_value(&value));
        }
    }
}
