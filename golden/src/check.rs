//! Checks on send streams shared by the golden tests and sim: decoding, `zstream dump` text,
//! and the writer rules of zfs-send-stream.md §3 and §6 (record order, FREE/FREEOBJECTS
//! merging, the FREEOBJECTS bound of #5/#6, zero WRITE_EMBEDDED padding of #16). Each check
//! returns the violations it found as readable lines (empty = the stream is well formed).
//! Reads streams through `engine::stream`; reads pools only for the meta-dnode size.

use engine::dmu::Objset;
use engine::limits::DNODES_PER_BLOCK;
use engine::stream::dump::{dump, DumpOptions};
use engine::stream::record::{DrrFree, DMU_OBJECT_END};
use engine::stream::{Record, StreamError, StreamReader};
use engine::Spa;

use crate::GoldenError;
pub use oracle::resend::{decode, normalized, summary, StreamSummary};

/// Byte span of one record in a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordSpan {
    /// `drr_type`.
    pub drr_type: u32,
    /// Offset of the header.
    pub start: usize,
    /// Offset just past the record's payload.
    pub end: usize,
}

/// The span of every record of `stream` (checksums verified), for tests that cut or
/// corrupt a stream at chosen places.
///
/// # Errors
/// The first framing or checksum error.
pub fn record_spans(stream: &[u8]) -> Result<Vec<RecordSpan>, StreamError> {
    let mut reader = StreamReader::new(stream);
    let mut out = Vec::new();
    let mut start = 0;
    while let Some(rec) = reader.next_record()? {
        let end = usize::try_from(reader.bytes_read()).expect("stream in memory");
        out.push(RecordSpan { drr_type: rec.drr_type(), start, end });
        start = end;
    }
    assert_eq!(start, stream.len(), "trailing bytes after the last record");
    Ok(out)
}

/// What `dump` printed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DumpText {
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// Exit status.
    pub status: i32,
}

impl DumpText {
    /// The checksum complaints of §5.3 (empty when the stream is accepted).
    #[must_use]
    pub fn complaints(&self) -> Vec<String> {
        let bad = ["Incorrect checksum", "Expected checksum differs", "invalid checksum"];
        self.stdout
            .lines()
            .chain(self.stderr.lines())
            .filter(|l| bad.iter().any(|b| l.contains(b)))
            .map(str::to_owned)
            .collect()
    }
}

/// `zstream dump` of `stream` with `verbose` `-v`s (1 = one line per record).
///
/// # Panics
/// If writing to memory fails (it cannot).
#[must_use]
pub fn dump_text(stream: &[u8], opts: &DumpOptions) -> DumpText {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let status = dump(&mut &stream[..], opts, &mut out, &mut err).expect("dump into memory");
    DumpText {
        stdout: String::from_utf8_lossy(&out).into_owned(),
        stderr: String::from_utf8_lossy(&err).into_owned(),
        status,
    }
}

/// `dump -v` of `stream`.
#[must_use]
pub fn dump_v(stream: &[u8]) -> DumpText {
    dump_text(stream, &DumpOptions { verbose: 1, dump_payload: false, no_checksum: false })
}

/// `32 * (meta-dnode maxblkid + 1)` of snapshot `snap` of `pool/fs`: the object bound no
/// FREEOBJECTS of a stream of that snapshot may reach past (§3.2, §6 #5/#6).
///
/// # Errors
/// Read errors; `Dmu(NoSuchDataset)` if `snap` is not a snapshot of the pool.
pub fn meta_maxobj(spa: &mut Spa, snap: &str) -> Result<u64, GoldenError> {
    let missing = || engine::DmuError::NoSuchDataset(snap.to_owned());
    let (fs, short) = snap.split_once('@').ok_or_else(missing)?;
    let (trees, _) = spa.pool_trees();
    let root = trees
        .iter()
        .filter(|t| t.name == fs)
        .flat_map(|t| t.snapshots.iter())
        .find(|(name, _, _)| name == short)
        .map(|(_, _, root)| *root)
        .ok_or_else(missing)?;
    let os = Objset::open(spa.zio_mut(), &root, true)?;
    assert!(os.meta.attrs.maxblkid < u64::MAX / DNODES_PER_BLOCK, "meta-dnode maxblkid");
    Ok(DNODES_PER_BLOCK * (os.meta.attrs.maxblkid + 1))
}

/// §6 #5/#6: every FREEOBJECTS ends at or below `maxobj`.
#[must_use]
pub fn freeobjects_violations(records: &[Record], maxobj: u64) -> Vec<String> {
    let mut out = Vec::new();
    for (i, rec) in records.iter().enumerate() {
        if let Record::FreeObjects(f) = rec {
            match f.firstobj.checked_add(f.numobjs) {
                Some(end) if end <= maxobj => {}
                _ => out.push(format!(
                    "record {i}: FREEOBJECTS {}+{} past maxobj {maxobj}",
                    f.firstobj, f.numobjs
                )),
            }
        }
    }
    out
}

/// §6 #16: every WRITE_EMBEDDED payload is `roundup8(psize)` bytes, zero after `psize`.
#[must_use]
pub fn embedded_padding_violations(records: &[Record]) -> Vec<String> {
    let mut out = Vec::new();
    for (i, rec) in records.iter().enumerate() {
        if let Record::WriteEmbedded { drr, data } = rec {
            let psize = drr.psize as usize;
            if data.len() != psize.next_multiple_of(8) {
                out.push(format!("record {i}: payload {} for psize {psize}", data.len()));
            } else if data[psize..].iter().any(|&b| b != 0) {
                out.push(format!("record {i}: nonzero padding after psize {psize}"));
            }
        }
    }
    out
}

/// The sender rules of §3 a 2.x `zfs send` follows, checked record by record.
#[derive(Default)]
struct ShapeCheck {
    out: Vec<String>,
    /// (object, blksz) of the last OBJECT.
    current: Option<(u64, u64)>,
    /// Highest object number named so far by OBJECT or FREEOBJECTS.
    last_object: Option<u64>,
    /// Offset past the last WRITE or FREE of the current object (not FREE-to-end).
    data_end: u64,
    /// True right after an OBJECT: the next record must be its FREE-to-end.
    want_free_to_end: bool,
    prev: Option<Record>,
}

impl ShapeCheck {
    fn fail(&mut self, i: usize, why: String) {
        self.out.push(format!("record {i}: {why}"));
    }

    fn object_ahead(&mut self, i: usize, first: u64, what: &str) {
        if self.last_object.is_some_and(|last| first <= last) {
            self.fail(i, format!("{what} {first} not after object {:?}", self.last_object));
        }
    }

    fn free(&mut self, i: usize, f: &DrrFree) {
        let Some((obj, bs)) = self.current else {
            return self.fail(i, format!("FREE of object {} before any OBJECT", f.object));
        };
        if f.object != obj {
            return self.fail(i, format!("FREE of object {} inside object {obj}", f.object));
        }
        if std::mem::take(&mut self.want_free_to_end) {
            if f.length != DMU_OBJECT_END || !f.offset.is_multiple_of(bs) {
                self.fail(i, format!("OBJECT {obj} not followed by its FREE-to-end: {f:?}"));
            }
            return;
        }
        if f.length == DMU_OBJECT_END || f.offset < self.data_end || !f.offset.is_multiple_of(bs) {
            self.fail(i, format!("FREE out of order or unaligned: {f:?}"));
        }
        if let Some(Record::Free(p)) = &self.prev {
            if p.object == f.object && p.offset.checked_add(p.length) == Some(f.offset) {
                self.fail(i, format!("FREE not merged with the previous one: {f:?}"));
            }
        }
        self.data_end = f.offset.saturating_add(f.length);
    }

    fn data(&mut self, i: usize, object: u64, offset: u64, len: u64) {
        match self.current {
            Some((obj, bs)) if obj == object => {
                if offset < self.data_end || !offset.is_multiple_of(bs) || len != bs {
                    self.fail(i, format!("data at {offset}+{len} out of order or not a block"));
                }
            }
            _ => self.fail(i, format!("data of object {object} outside its OBJECT")),
        }
        if self.want_free_to_end {
            self.fail(i, format!("data of object {object} before its FREE-to-end"));
        }
        self.data_end = offset + len;
    }

    fn record(&mut self, i: usize, rec: &Record) {
        if self.want_free_to_end && !matches!(rec, Record::Free(_)) {
            self.fail(i, "OBJECT not followed by its FREE-to-end".to_owned());
            self.want_free_to_end = false;
        }
        match rec {
            Record::Object { drr, .. } => {
                self.object_ahead(i, drr.object, "OBJECT");
                self.current = Some((drr.object, u64::from(drr.blksz)));
                self.last_object = Some(drr.object);
                self.data_end = 0;
                self.want_free_to_end = true;
            }
            Record::FreeObjects(f) => {
                self.object_ahead(i, f.firstobj, "FREEOBJECTS");
                if let Some(Record::FreeObjects(p)) = &self.prev {
                    if p.firstobj + p.numobjs == f.firstobj {
                        self.fail(i, "FREEOBJECTS not merged with the previous one".to_owned());
                    }
                }
                self.current = None;
                let last = f.firstobj.saturating_add(f.numobjs).saturating_sub(1);
                self.last_object = Some(last);
            }
            Record::Free(f) => self.free(i, f),
            Record::Write { drr, .. } => self.data(i, drr.object, drr.offset, drr.logical_size),
            Record::WriteEmbedded { drr, .. } => self.data(i, drr.object, drr.offset, drr.length),
            Record::Begin { .. } if i != 0 => self.fail(i, "BEGIN inside the stream".to_owned()),
            Record::End(_) | Record::Begin { .. } => {}
            other => self.fail(i, format!("record type {} not expected", other.drr_type())),
        }
        self.prev = Some(rec.clone());
    }
}

/// §3.1-3.4: BEGIN first and END last; objects ascending; each OBJECT followed by its
/// FREE-to-end; data and holes of the current object only, block-aligned, in offset order;
/// adjacent FREEs and FREEOBJECTS merged.
#[must_use]
pub fn shape_violations(records: &[Record]) -> Vec<String> {
    let mut c = ShapeCheck::default();
    if !matches!(records.first(), Some(Record::Begin { .. })) {
        c.fail(0, "stream does not start with BEGIN".to_owned());
    }
    if !matches!(records.last(), Some(Record::End(_))) {
        c.fail(records.len(), "stream does not end with END".to_owned());
    }
    for (i, rec) in records.iter().enumerate() {
        c.record(i, rec);
    }
    c.out
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::stream::record::{DrrBegin, DrrEnd, DrrObject};

    #[test]
    fn shape_check_reports_unmerged_and_out_of_order_records() {
        let obj = DrrObject { object: 1, blksz: 512, object_type: 19, ..DrrObject::default() };
        let free = |offset, length| Record::Free(DrrFree { object: 1, offset, length, toguid: 0 });
        let begin = Record::Begin { drr: DrrBegin::default(), payload: Vec::new() };
        let end = Record::End(DrrEnd::default());
        let good = vec![
            begin.clone(),
            Record::Object { drr: obj, bonus: Vec::new() },
            free(4096, DMU_OBJECT_END),
            free(0, 1024),
            end.clone(),
        ];
        assert_eq!(shape_violations(&good), Vec::<String>::new());
        let unmerged = [&good[..4], &[free(1024, 512), end.clone()]].concat();
        assert_eq!(shape_violations(&unmerged).len(), 1, "{:?}", shape_violations(&unmerged));
        let no_free_to_end = [&good[..2], &[free(0, 1024), end]].concat();
        assert!(!shape_violations(&no_free_to_end).is_empty());
    }

    #[test]
    fn summary_clips_holes_to_the_object_end() {
        let obj = DrrObject { object: 1, blksz: 512, object_type: 21, ..DrrObject::default() };
        let free = |offset, length| Record::Free(DrrFree { object: 1, offset, length, toguid: 0 });
        let records = vec![
            Record::Object { drr: obj, bonus: Vec::new() },
            free(512, DMU_OBJECT_END),
            free(512, 1024),
        ];
        let s = summary(&records);
        assert_eq!(s.objects[&1].2, 512);
        assert!(s.holes.is_empty(), "holes past the end are clipped away: {:?}", s.holes);
    }
}
