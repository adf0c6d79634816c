//! Re-sent streams compared with what was sent (property 3's "sending the received snapshot
//! again gives the same records"): a stream reduced to what it says, independent of how the
//! sender's block trees were shaped, and the normalizations a non-raw stream needs (it
//! carries no maxblkid and no meta-dnode length). Used by `replica` (send/receive inside
//! every workload), the golden tests and the round-trip properties; reads streams through
//! `engine::stream` decoding only (the records are compared here, field by field).

use std::collections::BTreeMap;

use engine::limits::DNODES_PER_BLOCK;
use engine::stream::record::{DdtKey, DrrBegin, DrrEnd, DrrObject, DrrWrite, DMU_OBJECT_END};
use engine::stream::{Record, StreamError, StreamReader};

fn short_name(snapshot: &str) -> &str {
    snapshot.split_once('@').map_or(snapshot, |(_, s)| s)
}

/// Every record of `stream`, checksums verified.
///
/// # Errors
/// The first framing or checksum error.
pub fn decode(stream: &[u8]) -> Result<Vec<Record>, StreamError> {
    let mut reader = StreamReader::new(stream);
    let mut out = Vec::new();
    while let Some(rec) = reader.next_record()? {
        out.push(rec);
    }
    Ok(out)
}

/// `records` with what legitimately differs between two sends of the same snapshot from
/// different pools cleared: BEGIN's dataset name, the END checksum (which covers it), and
/// in WRITEs the fields taken from the block pointer (checksum type, dedup flag, key),
/// which follow the receiving dataset's compression and checksum properties. Object,
/// offset, type, sizes and data stay.
#[must_use]
pub fn normalized(records: &[Record]) -> Vec<Record> {
    records
        .iter()
        .map(|r| match r {
            Record::Begin { drr, payload } => {
                let mut drr = drr.clone();
                drr.set_toname(&format!("@{}", short_name(&drr.toname_str())));
                Record::Begin { drr, payload: payload.clone() }
            }
            Record::End(e) => Record::End(DrrEnd { checksum: [0; 4], ..*e }),
            Record::Write { drr, data } => {
                let lsize = usize::try_from(drr.logical_size).unwrap_or(usize::MAX);
                match logical(drr.compressiontype, data, lsize) {
                    Some(data) => plain_write(drr.object, drr.offset, drr.toguid, data),
                    None => {
                        let drr =
                            DrrWrite { checksumtype: 0, flags: 0, key: DdtKey::default(), ..*drr };
                        Record::Write { drr, data: data.clone() }
                    }
                }
            }
            Record::WriteEmbedded { drr, data } => {
                let lsize = usize::try_from(drr.lsize).unwrap_or(usize::MAX);
                match logical(drr.compression, data, lsize) {
                    Some(data) => plain_write(drr.object, drr.offset, drr.toguid, data),
                    None => r.clone(),
                }
            }
            other => other.clone(),
        })
        .collect()
}

/// ZIO_COMPRESS_LZ4, the one compression whose payloads are normalized here.
const ZIO_COMPRESS_LZ4: u8 = 15;
/// ZFS's lz4 payloads start with the compressed length, 4 bytes big-endian.
const LZ4_HEADER_BYTES: usize = 4;

/// The logical bytes of a payload stored with `compression`, if this module can tell
/// (uncompressed, or lz4 as ZFS frames it); decompressed with `lz4_flex`, not the engine.
fn logical(compression: u8, payload: &[u8], lsize: usize) -> Option<Vec<u8>> {
    match compression {
        0 => (payload.len() == lsize).then(|| payload.to_vec()),
        ZIO_COMPRESS_LZ4 => {
            let (head, body) = payload.split_first_chunk::<LZ4_HEADER_BYTES>()?;
            let body = body.get(..usize::try_from(u32::from_be_bytes(*head)).ok()?)?;
            let mut out = vec![0; lsize];
            let got = lz4_flex::block::decompress_into(body, &mut out).ok()?;
            (got == lsize).then_some(out)
        }
        _ => None,
    }
}

/// A WRITE of logical `data`: how a block reads, whatever record carried it (`-c` sends
/// blocks as the sender stored them, `-e` embeds small ones, and a receiver stores them
/// per its own compression property, as OpenZFS does).
fn plain_write(object: u64, offset: u64, toguid: u64, data: Vec<u8>) -> Record {
    let drr =
        DrrWrite { object, offset, toguid, logical_size: data.len() as u64, ..DrrWrite::default() };
    Record::Write { drr, data }
}

/// Half-open ranges `[start, end)`, merged and sorted.
fn merge(mut ranges: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    ranges.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for (s, e) in ranges.into_iter().filter(|(s, e)| s < e) {
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

/// What a stream says, independent of how the sender's block trees were shaped: two sends
/// of equal snapshots from pools with other indirect block sizes or tree depths (a receive
/// uses its own defaults, as OpenZFS does) split and bound their hole FREEs differently.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamSummary {
    /// BEGIN with toname reduced to `@snap`.
    pub begin: DrrBegin,
    /// OBJECT records with their bonus, and the object's end (its FREE-to-end offset).
    pub objects: BTreeMap<u64, (DrrObject, Vec<u8>, u64)>,
    /// WRITE and WRITE_EMBEDDED records (normalized as `normalized` does), by (object,
    /// offset).
    pub data: BTreeMap<(u64, u64), Record>,
    /// Per object, the byte ranges FREE records cover below the object's end, merged.
    pub holes: BTreeMap<u64, Vec<(u64, u64)>>,
    /// Object ranges FREEOBJECTS records cover, merged.
    pub freeobjects: Vec<(u64, u64)>,
}

impl StreamSummary {
    /// The summary without `holes` and FREEOBJECTS: for incrementals, where which holes are
    /// sent depends on which subtrees of the sender's trees changed (a receive rewrites the
    /// objset block, if only for its intent-log header, so a re-send visits the meta-dnode's
    /// never-written holes again). The views compared next to it still check every object.
    #[must_use]
    pub fn without_holes(mut self) -> Self {
        self.holes.clear();
        self.freeobjects.clear();
        self
    }
}

/// The `StreamSummary` of `records` (a well-formed stream: see `shape_violations`).
#[must_use]
pub fn summary(records: &[Record]) -> StreamSummary {
    let records = normalized(records);
    let mut begin = DrrBegin::default();
    let mut objects = BTreeMap::new();
    let mut data = BTreeMap::new();
    let mut frees: BTreeMap<u64, Vec<(u64, u64)>> = BTreeMap::new();
    let mut freeobjects = Vec::new();
    for rec in records {
        match rec {
            Record::Begin { drr, .. } => begin = drr,
            Record::Object { drr, bonus } => {
                objects.insert(drr.object, (drr, bonus, u64::MAX));
            }
            Record::Free(f) if f.length == DMU_OBJECT_END => {
                if let Some(o) = objects.get_mut(&f.object) {
                    o.2 = o.2.min(f.offset);
                }
            }
            Record::Free(f) => {
                let end = f.offset.saturating_add(f.length);
                frees.entry(f.object).or_default().push((f.offset, end));
            }
            Record::FreeObjects(f) => {
                freeobjects.push((f.firstobj, f.firstobj.saturating_add(f.numobjs)));
            }
            // A block of zeros reads as a hole does, and a receiver that compresses stores
            // it as one (so its re-send carries a FREE there).
            Record::Write { ref drr, data: ref bytes } if bytes.iter().all(|&b| b == 0) => {
                let end = drr.offset.saturating_add(drr.logical_size);
                frees.entry(drr.object).or_default().push((drr.offset, end));
            }
            Record::Write { ref drr, .. } => {
                data.insert((drr.object, drr.offset), rec.clone());
            }
            Record::WriteEmbedded { ref drr, .. } => {
                data.insert((drr.object, drr.offset), rec.clone());
            }
            _ => {}
        }
    }
    let holes = frees
        .into_iter()
        .map(|(obj, ranges)| {
            let end = objects.get(&obj).map_or(u64::MAX, |o| o.2);
            let clipped = ranges.into_iter().map(|(s, e)| (s.min(end), e.min(end))).collect();
            (obj, merge(clipped))
        })
        .filter(|(_, r)| !r.is_empty())
        .collect();
    StreamSummary { begin, objects, data, holes, freeobjects: merge(freeobjects) }
}

/// Every object's end (its FREE-to-end offset) lowered to the end of its last WRITE, and its
/// holes clipped there: the received object keeps no trailing holes (`model::as_received`).
/// FREEOBJECTS past the last object's dnode block are clipped too: the meta-dnode's length
/// is not carried either (a receive never wrote the blocks of objects freed before).
pub fn trim_tails(s: &mut StreamSummary) {
    for (obj, (drr, _, end)) in &mut s.objects {
        let bs = u64::from(drr.blksz);
        let last = s.data.range((*obj, 0)..=(*obj, u64::MAX)).next_back();
        *end = last.map_or(0, |((_, offset), _)| (offset / bs + 1) * bs);
        if let Some(holes) = s.holes.get_mut(obj) {
            holes.retain_mut(|h| {
                h.1 = h.1.min(*end);
                h.0 < h.1
            });
        }
    }
    s.holes.retain(|_, h| !h.is_empty());
    let last = s.objects.keys().next_back().map_or(0, |o| o + 1);
    let end = last.div_ceil(DNODES_PER_BLOCK).max(1) * DNODES_PER_BLOCK;
    s.freeobjects.retain_mut(|r| {
        r.1 = r.1.min(end);
        r.0 < r.1
    });
}

/// What differs between two summaries, briefly (empty if nothing).
#[must_use]
pub fn differences(a: &StreamSummary, b: &StreamSummary) -> String {
    let mut out = Vec::new();
    if a.begin != b.begin {
        out.push(format!("BEGIN {:?} vs {:?}", a.begin, b.begin));
    }
    for (obj, x) in &a.objects {
        match b.objects.get(obj) {
            Some(y) if y == x => {}
            y => out.push(format!("OBJECT {obj}: {:?} vs {:?}", (x.0, x.2), y.map(|y| (y.0, y.2)))),
        }
    }
    let extra: Vec<_> = b.objects.keys().filter(|o| !a.objects.contains_key(o)).collect();
    if !extra.is_empty() {
        out.push(format!("objects only re-sent: {extra:?}"));
    }
    let keys = |s: &StreamSummary| s.data.keys().copied().collect::<Vec<_>>();
    if keys(a) != keys(b) {
        out.push(format!("WRITEs at {:?} vs {:?}", keys(a), keys(b)));
    } else if a.data != b.data {
        out.push("WRITE payloads differ".to_owned());
    }
    if a.holes != b.holes || a.freeobjects != b.freeobjects {
        out.push(format!(
            "holes {:?} vs {:?}",
            (&a.holes, &a.freeobjects),
            (&b.holes, &b.freeobjects)
        ));
    }
    out.join("; ")
}

/// Check that `resent` (the received snapshot sent again, the same way) says what `sent`
/// said: the same BEGIN (guids, names, flags), objects, bonuses, data and, for full
/// streams, holes, after `trim_tails` on both.
///
/// # Errors
/// A readable account of the first differences, or a stream that does not decode.
pub fn same_records(sent: &[u8], resent: &[u8], incremental: bool) -> Result<(), String> {
    let a = decode(sent).map_err(|e| format!("sent stream: {e}"))?;
    let b = decode(resent).map_err(|e| format!("re-sent stream: {e}"))?;
    let (mut a, mut b) = (summary(&a), summary(&b));
    if incremental {
        (a, b) = (a.without_holes(), b.without_holes());
    }
    trim_tails(&mut a);
    trim_tails(&mut b);
    if a == b {
        return Ok(());
    }
    Err(format!("re-sent records differ: {}", differences(&a, &b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_joins_overlapping_and_adjacent_ranges() {
        assert_eq!(merge(vec![(5, 7), (0, 2), (2, 3), (6, 9), (4, 4)]), vec![(0, 3), (5, 9)]);
        assert_eq!(merge(Vec::new()), Vec::<(u64, u64)>::new());
    }
}
