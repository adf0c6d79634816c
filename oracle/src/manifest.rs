//! The v1 manifest of a snapshot (golden/fixtures/openzfs/README.md, "Manifest format (v1)"):
//! one line per object with its attributes and the SHA-256 of its contents and bonus.
//! OpenZFS counterpart: none; the fixtures' manifests were made from OpenZFS pools by the
//! same rules. Used by golden (real-stream comparisons), sim (`zsim recv`, `zsim gen`) and
//! round-trip tests; reads through the public `Spa` API or the model. Invariants: size =
//! (maxblkid + 1) * bs; holes hash as zeros; lines ascend by object.

use engine::{DmuError, Spa};
use sha2::{Digest, Sha256};

use crate::model::{Model, ModelError, ModelObject};

/// Bytes read per call while hashing an object.
pub const MANIFEST_CHUNK_BYTES: u64 = 1 << 20;
/// Largest object size hashed; larger objects make `manifest` fail with `OffsetOverflow`
/// (hashing them is impractical: SHA-256 has no shortcut over zeros).
pub const MANIFEST_SIZE_MAX_BYTES: u64 = 4 << 30;

/// One object line of a manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestLine {
    /// Object number.
    pub obj: u64,
    /// DMU object type.
    pub ot: u8,
    /// Data block size.
    pub bs: u32,
    /// Highest block id.
    pub maxblkid: u64,
    /// (maxblkid + 1) * bs.
    pub size: u64,
    /// Bonus type.
    pub bonustype: u8,
    /// Bonus length.
    pub bonuslen: u16,
    /// SHA-256 of the contents over `size` bytes, lowercase hex.
    pub sha256: String,
    /// SHA-256 of the bonus buffer, lowercase hex.
    pub bonus_sha256: String,
}

impl ManifestLine {
    /// The line as the manifest prints it (no newline).
    #[must_use]
    pub fn format(&self) -> String {
        format!(
            "obj={} type={} bs={} maxblkid={} size={} bonustype={} bonuslen={} sha256={} \
             bonus_sha256={}",
            self.obj,
            self.ot,
            self.bs,
            self.maxblkid,
            self.size,
            self.bonustype,
            self.bonuslen,
            self.sha256,
            self.bonus_sha256
        )
    }
}

fn hex(digest: &[u8]) -> String {
    hex::encode(digest)
}

/// SHA-256 of `bytes`, lowercase hex.
#[must_use]
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn header(snapshot_full_name: &str) -> String {
    let short = snapshot_full_name.split_once('@').map_or(snapshot_full_name, |(_, s)| s);
    format!("# manifest v1 snapshot=@{short}\n")
}

/// Attributes of one object, as both the engine and the model report them.
struct ObjectAttrs {
    ot: u8,
    bs: u32,
    maxblkid: u64,
    bonustype: u8,
    bonus: Vec<u8>,
}

/// Trailing blocks that read as zeros: kept (`Keep`, the v1 manifest) or dropped
/// (`Trim`: `manifest_trimmed`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Tail {
    Keep,
    Trim,
}

/// The manifest line of `obj`; `read(offset, len)` reads its contents. With `Tail::Trim`,
/// maxblkid is lowered past trailing all-zero blocks (to 0 at least).
fn object_line<E>(
    obj: u64,
    a: ObjectAttrs,
    tail: Tail,
    too_large: impl FnOnce(u64) -> E,
    mut read: impl FnMut(u64, u64) -> Result<Vec<u8>, E>,
) -> Result<ManifestLine, E> {
    let bs = u64::from(a.bs);
    let mut maxblkid = a.maxblkid;
    let size = (maxblkid + 1).saturating_mul(bs);
    if size > MANIFEST_SIZE_MAX_BYTES {
        return Err(too_large(size));
    }
    if tail == Tail::Trim {
        while maxblkid > 0 && read(maxblkid * bs, bs)?.iter().all(|&b| b == 0) {
            maxblkid -= 1;
        }
    }
    let size = (maxblkid + 1) * bs;
    let mut h = Sha256::new();
    let mut at = 0;
    while at < size {
        let len = MANIFEST_CHUNK_BYTES.min(size - at);
        h.update(read(at, len)?);
        at += len;
    }
    Ok(ManifestLine {
        obj,
        ot: a.ot,
        bs: a.bs,
        maxblkid,
        size,
        bonustype: a.bonustype,
        bonuslen: u16::try_from(a.bonus.len()).expect("bonus <= 320 bytes"),
        sha256: hex(&h.finalize()),
        bonus_sha256: sha256_hex(&a.bonus),
    })
}

fn engine_manifest(spa: &mut Spa, name: &str, tail: Tail) -> Result<String, DmuError> {
    let mut out = header(name);
    for obj in spa.objects(name)? {
        let info = spa.object_info(name, obj)?;
        let (bonustype, bonus) = spa.bonus(name, obj)?;
        assert_eq!(bonus.len(), usize::from(info.bonuslen), "bonus length vs object_info");
        let a =
            ObjectAttrs { ot: info.ot, bs: info.blksz, maxblkid: info.maxblkid, bonustype, bonus };
        let too_large = |len| DmuError::OffsetOverflow { offset: 0, len };
        let line = object_line(obj, a, tail, too_large, |at, len| spa.read(name, obj, at, len))?;
        out.push_str(&line.format());
        out.push('\n');
    }
    Ok(out)
}

fn model_line(obj: u64, ob: &ModelObject, tail: Tail) -> Result<ManifestLine, ModelError> {
    let info = ob.info();
    let a = ObjectAttrs {
        ot: info.ot,
        bs: info.blksz,
        maxblkid: info.maxblkid,
        bonustype: info.bonustype,
        bonus: ob.bonus.clone(),
    };
    let read = |at, len: u64| Ok(ob.read_bytes(at, usize::try_from(len).expect("chunk")));
    object_line(obj, a, tail, |_| ModelError::OffsetOverflow, read)
}

fn model_manifest(model: &Model, name: &str, tail: Tail) -> Result<String, ModelError> {
    let mut out = header(name);
    for obj in model.objects(name)? {
        out.push_str(&model_line(obj, model.object(name, obj)?, tail)?.format());
        out.push('\n');
    }
    Ok(out)
}

/// The line of object number `obj` of the model in `manifest_of_model` (callers that
/// cache lines per object; a manifest is its header, then these lines in object order).
///
/// # Errors
/// `OffsetOverflow` for an object over `MANIFEST_SIZE_MAX_BYTES`.
pub fn manifest_line_of_model(obj: u64, ob: &ModelObject) -> Result<ManifestLine, ModelError> {
    model_line(obj, ob, Tail::Keep)
}

/// The manifest of a snapshot (or head) of the engine.
///
/// # Errors
/// Engine read errors; `OffsetOverflow` for an object over `MANIFEST_SIZE_MAX_BYTES`.
pub fn manifest(spa: &mut Spa, snapshot_full_name: &str) -> Result<String, DmuError> {
    engine_manifest(spa, snapshot_full_name, Tail::Keep)
}

/// The manifest with trailing all-zero blocks of every object dropped (maxblkid lowered to
/// the last block holding a non-zero byte): what a non-raw send stream preserves, since it
/// carries no maxblkid (OpenZFS's neither), so an object whose last blocks were punched is
/// received shorter with the same contents.
///
/// # Errors
/// As `manifest`.
pub fn manifest_trimmed(spa: &mut Spa, snapshot_full_name: &str) -> Result<String, DmuError> {
    engine_manifest(spa, snapshot_full_name, Tail::Trim)
}

/// The manifest of a snapshot (or head) of the model.
///
/// # Errors
/// `NoSuchDataset`; `OffsetOverflow` for an object over `MANIFEST_SIZE_MAX_BYTES`.
pub fn manifest_of_model(model: &Model, snapshot_full_name: &str) -> Result<String, ModelError> {
    model_manifest(model, snapshot_full_name, Tail::Keep)
}

/// `manifest_trimmed` of the model.
///
/// # Errors
/// As `manifest_of_model`.
pub fn manifest_of_model_trimmed(
    model: &Model,
    snapshot_full_name: &str,
) -> Result<String, ModelError> {
    model_manifest(model, snapshot_full_name, Tail::Trim)
}

/// Why a manifest did not parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestParseError {
    /// 1-based line number.
    pub line: usize,
    /// What was wrong.
    pub reason: String,
}

impl std::fmt::Display for ManifestParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "manifest line {}: {}", self.line, self.reason)
    }
}

impl std::error::Error for ManifestParseError {}

const MANIFEST_KEYS: [&str; 9] =
    ["obj", "type", "bs", "maxblkid", "size", "bonustype", "bonuslen", "sha256", "bonus_sha256"];

fn parse_line(text: &str) -> Result<ManifestLine, String> {
    let fields: Vec<&str> = text.split_whitespace().collect();
    if fields.len() != MANIFEST_KEYS.len() {
        return Err(format!("{} fields, want {}", fields.len(), MANIFEST_KEYS.len()));
    }
    let mut v = Vec::with_capacity(MANIFEST_KEYS.len());
    for (field, key) in fields.iter().zip(MANIFEST_KEYS) {
        match field.split_once('=') {
            Some((k, val)) if k == key => v.push(val),
            _ => return Err(format!("field {field:?}, want {key}=...")),
        }
    }
    let num = |i: usize| v[i].parse::<u64>().map_err(|e| format!("{}: {e}", MANIFEST_KEYS[i]));
    let small = |i: usize, max: u64| {
        num(i).and_then(|n| {
            if n <= max {
                Ok(n)
            } else {
                Err(format!("{} too large", MANIFEST_KEYS[i]))
            }
        })
    };
    let digest = |i: usize| {
        let ok = v[i].len() == 64
            && v[i].bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if ok {
            Ok(v[i].to_owned())
        } else {
            Err(format!("{} is not a sha256", MANIFEST_KEYS[i]))
        }
    };
    let line = ManifestLine {
        obj: num(0)?,
        ot: u8::try_from(small(1, 255)?).expect("checked"),
        bs: u32::try_from(small(2, u64::from(u32::MAX))?).expect("checked"),
        maxblkid: num(3)?,
        size: num(4)?,
        bonustype: u8::try_from(small(5, 255)?).expect("checked"),
        bonuslen: u16::try_from(small(6, u64::from(u16::MAX))?).expect("checked"),
        sha256: digest(7)?,
        bonus_sha256: digest(8)?,
    };
    if line.maxblkid.checked_add(1).and_then(|n| n.checked_mul(u64::from(line.bs)))
        != Some(line.size)
    {
        return Err("size != (maxblkid + 1) * bs".to_owned());
    }
    Ok(line)
}

/// Parse a v1 manifest: `#` lines and blank lines are skipped; object lines must ascend.
///
/// # Errors
/// `ManifestParseError` with the line number.
pub fn parse_manifest(text: &str) -> Result<Vec<ManifestLine>, ManifestParseError> {
    let mut out: Vec<ManifestLine> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let t = raw.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let err = |reason| ManifestParseError { line: i + 1, reason };
        let line = parse_line(t).map_err(err)?;
        if out.last().is_some_and(|l| l.obj >= line.obj) {
            return Err(err(format!("object {} out of order", line.obj)));
        }
        out.push(line);
    }
    Ok(out)
}
