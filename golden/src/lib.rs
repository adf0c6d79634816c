//! The golden scenario catalog: named, deterministic pool histories whose send streams are
//! snapshotted (`tests/dump.rs`), round-tripped (`tests/roundtrip.rs`) and written out by
//! `zsim gen SCENARIO OUTDIR` in the layout of `golden/fixtures/openzfs/`.
//! OpenZFS counterpart: the rsend/zstream test suites (tests/zfs-tests/tests/functional).
//! Calls only the engine's public API (`Spa`, `Spa::send`, `stream`) and drives
//! `oracle::Model` beside it (every step applied to both); sim calls into it.
//! Invariants: a scenario is a pure function of its name (fixed guid seed and clock), so its
//! streams are byte-for-byte stable; every scenario has at least two snapshots of `pool/fs`.
//!
//! ```no_run
//! let mut sc = golden::build("basic").expect("known scenario");
//! let streams = golden::streams(&mut sc, &engine::dmu::send::SendOptions::default());
//! assert!(!streams.full_before.is_empty());
//! golden::gen("basic", std::path::Path::new("/tmp/basic")).expect("gen");
//! ```

pub mod check;
mod scenarios;

use std::path::{Path, PathBuf};

use engine::dmu::send::{SendError, SendOptions};
use engine::{DmuError, DslError, Spa, SpaError, ZioError};
use sha2::{Digest, Sha256};

pub use scenarios::{about, names};

/// Name of every scenario's pool.
pub const POOL_NAME: &str = "pool";
/// The dataset every scenario builds and sends.
pub const FS_NAME: &str = "pool/fs";
/// Size of the in-memory device of a scenario pool (and of the pools tests receive into).
pub const POOL_DEVICE_BYTES: u64 = 96 << 20;
/// Host time a scenario pool is created at; each snapshot advances it by an hour.
pub const SCENARIO_EPOCH_SECS: u64 = 1_700_000_000;
/// Bytes read per call while hashing an object for a manifest.
pub const MANIFEST_CHUNK_BYTES: u64 = 1 << 20;

/// Why a scenario could not be built, sent or written.
#[derive(Debug, thiserror::Error)]
pub enum GoldenError {
    /// No scenario of that name (`zsim gen --list` prints the names).
    #[error("unknown scenario {0:?}")]
    UnknownScenario(String),
    /// A dataset operation failed while building.
    #[error(transparent)]
    Dsl(#[from] DslError),
    /// An object operation failed while building or reading.
    #[error(transparent)]
    Dmu(#[from] DmuError),
    /// Pool creation or a txg sync failed.
    #[error(transparent)]
    Spa(#[from] SpaError),
    /// Re-import after a simulated crash failed.
    #[error(transparent)]
    Import(#[from] engine::ImportError),
    /// A block could not be read.
    #[error(transparent)]
    Zio(#[from] ZioError),
    /// A send failed.
    #[error(transparent)]
    Send(#[from] SendError),
    /// A receive failed.
    #[error(transparent)]
    Recv(#[from] engine::RecvError),
    /// The reference model refused a step the engine made (a model or engine bug).
    #[error("step #{step} ({name}): the engine did it, the model refuses: {reason}")]
    Model {
        /// Index of the step, as a `build_on` hook counts them (pool creation is 0).
        step: usize,
        /// The step's name (`"write"`, `"recv"`, ...).
        name: String,
        /// The model's answer.
        reason: String,
    },
    /// Writing an output file failed.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
}

/// A built scenario: the pool after its last phase, with one snapshot per phase.
pub struct Scenario {
    /// Catalog name.
    pub name: &'static str,
    /// The pool (in memory), holding `FS_NAME` and its snapshots.
    pub spa: Spa,
    /// The reference model of the pool, driven by the same steps (`oracle::Model`).
    pub model: oracle::Model,
    /// The dataset sent, `pool/fs`.
    pub fs: String,
    /// Full snapshot names, oldest first; at least two.
    pub snapshots: Vec<String>,
}

impl Scenario {
    /// The `@before` snapshot of the five-file contract: the first snapshot.
    #[must_use]
    pub fn before(&self) -> &str {
        assert!(self.snapshots.len() >= 2, "{}: fewer than two snapshots", self.name);
        &self.snapshots[0]
    }

    /// The `@after` snapshot of the five-file contract: the last snapshot.
    #[must_use]
    pub fn after(&self) -> &str {
        assert!(self.snapshots.len() >= 2, "{}: fewer than two snapshots", self.name);
        &self.snapshots[self.snapshots.len() - 1]
    }
}

/// The streams of a scenario, sent with one set of options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Streams {
    /// Full stream of the first snapshot.
    pub full_before: Vec<u8>,
    /// Incremental from the first to the last snapshot.
    pub incr_before_after: Vec<u8>,
    /// Full stream of the last snapshot.
    pub full_after: Vec<u8>,
    /// Incrementals between consecutive snapshots (`steps[i]`: snapshot i to i + 1). For a
    /// two-snapshot scenario this is `[incr_before_after]`.
    pub steps: Vec<Vec<u8>>,
}

/// One stream of a scenario with its file stem and snapshots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedStream<'s> {
    /// File stem: `full-before`, `incr-before-after`, `full-after`, `incr-a-b`, ...
    pub stem: String,
    /// Index in `Scenario::snapshots` of the source snapshot (`None`: a full stream).
    pub from: Option<usize>,
    /// Index in `Scenario::snapshots` of the snapshot sent.
    pub to: usize,
    /// The stream.
    pub bytes: &'s [u8],
}

impl Streams {
    /// Every distinct stream, in the order `gen` writes them: the five-file contract's
    /// three, then (only for scenarios with more than two snapshots) `incr-<x>-<y>` per
    /// consecutive pair; for two snapshots that step is `incr-before-after` itself.
    #[must_use]
    pub fn named<'s>(&'s self, sc: &Scenario) -> Vec<NamedStream<'s>> {
        assert_eq!(self.steps.len() + 1, sc.snapshots.len(), "{}: one step per pair", sc.name);
        let last = sc.snapshots.len() - 1;
        let stream =
            |stem: &str, from, to, bytes| NamedStream { stem: stem.to_owned(), from, to, bytes };
        let mut out = vec![
            stream("full-before", None, 0, &self.full_before[..]),
            stream("incr-before-after", Some(0), last, &self.incr_before_after[..]),
            stream("full-after", None, last, &self.full_after[..]),
        ];
        if sc.snapshots.len() > 2 {
            for (i, step) in self.steps.iter().enumerate() {
                let from = short_name(&sc.snapshots[i]);
                let to = short_name(&sc.snapshots[i + 1]);
                out.push(stream(&format!("incr-{from}-{to}"), Some(i), i + 1, &step[..]));
            }
        }
        out
    }
}

/// The part of a snapshot name after `@`.
#[must_use]
pub fn short_name(snapshot: &str) -> &str {
    snapshot.split_once('@').map_or(snapshot, |(_, s)| s)
}

/// Build scenario `name` from scratch (a fresh in-memory pool).
///
/// # Errors
/// `UnknownScenario`, or an engine error while building (an engine bug: scenarios only
/// do what the engine documents as valid).
pub fn build(name: &str) -> Result<Scenario, GoldenError> {
    scenarios::build(name)
}

/// Build scenario `name` on a caller-supplied device (e.g. a recording simulated disk) of
/// at least `SPA_MINDEVSIZE` bytes, calling `hook(spa, model, step)` after every step: pool
/// creation (`"create"`), the creation of `pool/fs`, each object or snapshot operation
/// (`"write"`, `"snapshot"`, ...) and the final sync. Each step commits at most one txg, so
/// a hook polling `Spa::last_synced_txg` sees every committed txg, with the pool clean.
/// `model` is the reference model after the same step (after `"import"`: as of the newest
/// step that committed a txg or was an fsync). Same guid seed and clock as `build`; only
/// the device (and so block offsets) differs.
///
/// # Errors
/// `UnknownScenario`; an engine error (e.g. `Suspended` or no space on a small device);
/// `Model` when the model refuses a step the engine made.
pub fn build_on(
    name: &str,
    dev: Box<dyn engine::BlockDevice>,
    hook: &mut dyn FnMut(&mut Spa, &oracle::Model, &str),
) -> Result<Scenario, GoldenError> {
    scenarios::build_on(name, dev, Some(hook))
}

/// Send the streams of `sc` with `opts`.
///
/// # Errors
/// A send or read error (an engine bug on an in-memory pool).
pub fn try_streams(sc: &mut Scenario, opts: &SendOptions) -> Result<Streams, GoldenError> {
    let (before, after) = (sc.before().to_owned(), sc.after().to_owned());
    let full_before = send(&mut sc.spa, &before, None, opts)?;
    let incr_before_after = send(&mut sc.spa, &after, Some(&before), opts)?;
    let full_after = send(&mut sc.spa, &after, None, opts)?;
    let mut steps = Vec::new();
    for pair in sc.snapshots.windows(2) {
        steps.push(send(&mut sc.spa, &pair[1], Some(&pair[0]), opts)?);
    }
    assert_eq!(steps.len() + 1, sc.snapshots.len());
    Ok(Streams { full_before, incr_before_after, full_after, steps })
}

/// `try_streams`, for callers that treat a send failure of a built scenario as a bug.
///
/// # Panics
/// If a send fails.
#[must_use]
pub fn streams(sc: &mut Scenario, opts: &SendOptions) -> Streams {
    try_streams(sc, opts).unwrap_or_else(|e| panic!("scenario {}: send failed: {e}", sc.name))
}

/// Send `tosnap` (fully, or from `fromsnap`) into a new buffer.
///
/// # Errors
/// The send's error.
pub fn send(
    spa: &mut Spa,
    tosnap: &str,
    fromsnap: Option<&str>,
    opts: &SendOptions,
) -> Result<Vec<u8>, GoldenError> {
    let mut out = Vec::new();
    let stats = spa.send(tosnap, fromsnap, opts, &mut out)?;
    assert_eq!(stats.bytes, out.len() as u64, "send stats disagree with the stream");
    Ok(out)
}

fn hex(digest: &[u8]) -> String {
    hex::encode(digest)
}

/// The v1 manifest line of one object (`golden/fixtures/openzfs/README.md`), no newline.
///
/// # Errors
/// Read errors.
pub fn manifest_line(spa: &mut Spa, snap: &str, obj: u64) -> Result<String, GoldenError> {
    let info = spa.object_info(snap, obj)?;
    let size = (info.maxblkid + 1) * u64::from(info.blksz);
    let mut sha = Sha256::new();
    let mut at = 0;
    while at < size {
        let len = MANIFEST_CHUNK_BYTES.min(size - at);
        sha.update(spa.read(snap, obj, at, len)?);
        at += len;
    }
    let (bonustype, bonus) = spa.bonus(snap, obj)?;
    assert_eq!(bonus.len(), usize::from(info.bonuslen), "object {obj}: bonus length");
    assert_eq!(bonustype, info.bonustype, "object {obj}: bonus type");
    Ok(format!(
        "obj={obj} type={} bs={} maxblkid={} size={size} bonustype={bonustype} bonuslen={} \
         sha256={} bonus_sha256={}",
        info.ot,
        info.blksz,
        info.maxblkid,
        info.bonuslen,
        hex(&sha.finalize()),
        hex(&Sha256::digest(&bonus)),
    ))
}

/// The v1 manifest of `snap` (`pool/fs@x`, or a head): the header line
/// `# manifest v1 snapshot=@x`, then one line per allocated object, each ending in `\n`.
///
/// # Errors
/// Read errors.
pub fn try_manifest(spa: &mut Spa, snap: &str) -> Result<String, GoldenError> {
    let mut out = format!("# manifest v1 snapshot=@{}\n", short_name(snap));
    for obj in spa.objects(snap)? {
        out.push_str(&manifest_line(spa, snap, obj)?);
        out.push('\n');
    }
    Ok(out)
}

/// `try_manifest`, for snapshots that must be readable (every test and scenario pool).
///
/// # Panics
/// On a read error.
#[must_use]
pub fn manifest(spa: &mut Spa, snap: &str) -> String {
    try_manifest(spa, snap).unwrap_or_else(|e| panic!("manifest of {snap}: {e}"))
}

fn write_file(dir: &Path, file: &str, bytes: &[u8]) -> Result<(), GoldenError> {
    let path = dir.join(file);
    std::fs::write(&path, bytes).map_err(|source| GoldenError::Io { path, source })
}

/// `zsim gen SCENARIO OUTDIR`: build `name` and write `full-before.zstream`,
/// `incr-before-after.zstream`, `full-after.zstream`, `manifest-before.txt` and
/// `manifest-after.txt` into `outdir` (created if missing). `@before` is the first snapshot
/// and `@after` the last; a scenario with more snapshots (`chain`: `@a @b @c`) also gets
/// `incr-<x>-<y>.zstream` per consecutive pair and `manifest-<x>.txt` per snapshot. The
/// manifest headers name the real snapshots (`# manifest v1 snapshot=@a`).
///
/// # Errors
/// `UnknownScenario`, engine errors, `Io`.
pub fn gen(name: &str, outdir: &Path) -> Result<(), GoldenError> {
    let mut sc = build(name)?;
    let streams = try_streams(&mut sc, &SendOptions::default())?;
    std::fs::create_dir_all(outdir)
        .map_err(|source| GoldenError::Io { path: outdir.to_owned(), source })?;
    for s in streams.named(&sc) {
        write_file(outdir, &format!("{}.zstream", s.stem), s.bytes)?;
    }
    let (before, after) = (sc.before().to_owned(), sc.after().to_owned());
    write_file(outdir, "manifest-before.txt", try_manifest(&mut sc.spa, &before)?.as_bytes())?;
    write_file(outdir, "manifest-after.txt", try_manifest(&mut sc.spa, &after)?.as_bytes())?;
    if sc.snapshots.len() > 2 {
        for snap in sc.snapshots.clone() {
            let text = try_manifest(&mut sc.spa, &snap)?;
            write_file(outdir, &format!("manifest-{}.txt", short_name(&snap)), text.as_bytes())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_on_another_device_builds_the_same_scenario() {
        for name in ["basic", "chain"] {
            let mut txgs = Vec::new();
            let mut steps = 0;
            let dev = Box::new(engine::MemoryDevice::new(16 << 20));
            let mut hook = |spa: &mut Spa, _: &oracle::Model, _: &str| {
                steps += 1;
                if txgs.last() != Some(&spa.last_synced_txg()) {
                    txgs.push(spa.last_synced_txg());
                }
            };
            let mut on = build_on(name, dev, &mut hook).expect("builds on 16 MiB");
            let mut sc = build(name).expect("builds");
            let opts = SendOptions::default();
            assert_eq!(streams(&mut on, &opts), streams(&mut sc, &opts), "{name}");
            assert!(steps > txgs.len(), "{name}: a hook call per step");
            let first = txgs[0];
            let expected: Vec<u64> = (first..first + txgs.len() as u64).collect();
            assert_eq!(txgs, expected, "{name}: every committed txg seen, one at a time");
        }
    }

    /// The model the builder drives beside the engine ends where the engine does: every
    /// head and snapshot of every scenario, receives and the crash of `zil-replay` included.
    #[test]
    fn every_scenario_ends_equal_to_its_model() {
        for &name in names() {
            let mut sc = build(name).expect("builds");
            assert_eq!(sc.model.snapshots(FS_NAME).expect("pool/fs"), sc.snapshots, "{name}");
            if let Err(d) = oracle::conformance::check(&mut sc.spa, &sc.model) {
                panic!("{name}: {d}");
            }
        }
    }
}
