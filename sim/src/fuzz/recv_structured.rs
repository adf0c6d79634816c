//! Target `recv_structured`: a `StreamSpec` (see `stream_spec`) is encoded as a stream with
//! valid checksums, together with what receiving it must produce (`Planned`): the reasons §4
//! of the spec gives to refuse it, and the objects, attributes, bonus buffers and sectors the
//! received snapshot holds. Input: fuzzer bytes read as a `StreamSpec`. Must hold: a failure
//! changes nothing; a success is not one §4 refuses, holds exactly what the records say (both
//! outcomes of a reallocation accepted), and passes the checks of `receive_checked`.

use std::collections::{BTreeMap, BTreeSet};

use arbitrary::{Arbitrary, Unstructured};
use engine::dmu::recv::RecvOptions;
use engine::limits::{DMU_MAX_OFFSET, DMU_OBJECT_END, DN_MAX_OBJECT};
use engine::stream::record::{
    dmu_versioninfo, roundup8_u32, DrrBegin, DrrEnd, DrrFree, DrrFreeObjects, DrrObject,
    DrrObjectRange, DrrRedact, DrrSpill, DrrWrite, DrrWriteByref, DrrWriteEmbedded,
    DMU_BACKUP_FEATURE_MASK, DMU_COMPOUNDSTREAM, DMU_SUBSTREAM, DRR_CHECKSUM_OFFSET,
    DRR_FLAG_CLONE, DRR_PAYLOAD_MAX_BYTES, DRR_SPILL_UNMODIFIED, DRR_TONAME_MAX_LEN,
};
use engine::stream::{byteswap_in_place, ot_byteswap_kind, ot_is_valid};
use engine::stream::{encode_header, StreamWriter};
use engine::stream::{ByteOrder, Record};
use engine::zio::checksum::Fletcher4;
use engine::zio::compress::lz4_compress;
use engine::Spa;
use oracle::op::pattern;

use super::recv_common::{receive_checked, with_recv_pool, BaseKind, RecvBase, RecvCase};
use super::stream_spec::{
    BeginQuirk, EndQuirk, ObjNum, ObjectQuirk, RecSpec, Source, StreamSpec, WriteCompress,
    FEATURE_CHOICES,
};
use super::{FUZZ_BASE_FS, FUZZ_NEW_FS, FUZZ_NOW_SECS, SECTOR, SECTOR_BYTES};
use super::{STRUCTURED_PAYLOAD_MAX_BYTES, STRUCTURED_RECORDS_MAX, STRUCTURED_WRITE_MAX_BYTES};

// ---------------------------------------------------------------------------------------
// Structured streams: arbitrary records, valid checksums, and what they must produce.
// ---------------------------------------------------------------------------------------

/// Sector index -> its 512 bytes; absent sectors are zeros.
pub(super) type SectorMap = BTreeMap<u64, Vec<u8>>;

pub(super) fn map_write(map: &mut SectorMap, offset: u64, data: &[u8]) {
    let mut at = 0usize;
    while at < data.len() {
        let pos = offset + at as u64;
        let (sector, within) = (pos / SECTOR, (pos % SECTOR) as usize);
        let n = (SECTOR_BYTES - within).min(data.len() - at);
        let s = map.entry(sector).or_insert_with(|| vec![0; SECTOR_BYTES]);
        s[within..within + n].copy_from_slice(&data[at..at + n]);
        at += n;
    }
}

/// Zero `[offset, end)`.
fn map_zero(map: &mut SectorMap, offset: u64, end: u64) {
    let keys: Vec<u64> =
        map.range(offset / SECTOR..end.div_ceil(SECTOR)).map(|(k, _)| *k).collect();
    for k in keys {
        let start = k * SECTOR;
        let from = usize::try_from(offset.max(start) - start).expect("< 512");
        let to = usize::try_from(end.min(start + SECTOR) - start).expect("<= 512");
        let s = map.get_mut(&k).expect("listed");
        s[from..to].fill(0);
        if s.iter().all(|&b| b == 0) {
            map.remove(&k);
        }
    }
}

/// A built structured stream and what receiving it must produce.
pub(super) struct Planned {
    fs: String,
    fromguid: u64,
    stream: Vec<u8>,
    byteswap: bool,
    features: u64,
    /// `FUZZ_BASE_FS` snapshot an incremental starts from.
    from: Option<String>,
    records: Vec<Record>,
    /// Plain data of each WRITE / WRITE_EMBEDDED (None: unknown, e.g. garbage compressed).
    plains: Vec<Option<Vec<u8>>>,
    /// Reasons the spec (§4) gives for refusing this stream, found while building.
    must_fail: Vec<String>,
}

/// Builds a structured stream record by record.
struct Builder {
    base_objects: Vec<u64>,
    blksz: BTreeMap<u64, u32>,
    toguid: u64,
    records: Vec<Record>,
    plains: Vec<Option<Vec<u8>>>,
    oversize: Option<Record>,
    payload_bytes: usize,
}

impl Builder {
    fn resolve(&self, n: ObjNum) -> u64 {
        resolve_obj(&self.base_objects, n)
    }

    fn blksz_of(&self, obj: u64) -> u64 {
        u64::from(self.blksz.get(&obj).copied().unwrap_or(512)).max(SECTOR)
    }

    fn push(&mut self, rec: Record, plain: Option<Vec<u8>>) {
        self.payload_bytes += rec.payload().len();
        self.records.push(rec);
        self.plains.push(plain);
    }

    fn add(&mut self, spec: &RecSpec) {
        let toguid = self.toguid;
        match spec {
            RecSpec::Object { object, ot, bonustype, blksz, bonuslen, seed, quirk } => {
                let (o, blksz) = (self.resolve(*object), blksz.value());
                self.blksz.insert(o, blksz);
                let rec = object_record(
                    o,
                    *ot,
                    *bonustype,
                    blksz,
                    bonuslen.value(),
                    *seed,
                    *quirk,
                    toguid,
                );
                self.push(rec, None);
            }
            RecSpec::FreeObjects { first, count } => {
                let firstobj = self.resolve(*first);
                let numobjs = count.value(firstobj);
                self.push(Record::FreeObjects(DrrFreeObjects { firstobj, numobjs, toguid }), None);
            }
            RecSpec::Write { object, offset, lsize, seed, ot, compress } => {
                let o = self.resolve(*object);
                let bs = self.blksz_of(o);
                let (offset, lsize) = (offset.value(bs), lsize.value(bs));
                if lsize > DRR_PAYLOAD_MAX_BYTES {
                    self.oversize = Some(oversize_record(0, 0, toguid));
                    return;
                }
                let lsize = lsize.min(STRUCTURED_WRITE_MAX_BYTES);
                let (rec, plain) = write_record(o, offset, lsize, *seed, *ot, compress, toguid);
                self.push(rec, plain);
            }
            RecSpec::Embedded { object, offset, lsize, fill, mode, etype } => {
                let o = self.resolve(*object);
                let offset = offset.value(self.blksz_of(o));
                let (rec, plain) = embedded_record(o, offset, *lsize, *fill, *mode, *etype, toguid);
                self.push(rec, plain);
            }
            other => self.add_other(other),
        }
    }

    fn add_other(&mut self, spec: &RecSpec) {
        let toguid = self.toguid;
        let rec = match spec {
            RecSpec::Free { object, offset, length }
            | RecSpec::Redact { object, offset, length } => {
                let o = self.resolve(*object);
                let bs = self.blksz_of(o);
                let (offset, length) = (offset.value(bs), length.value(bs));
                if matches!(spec, RecSpec::Free { .. }) {
                    Record::Free(DrrFree { object: o, offset, length, toguid })
                } else {
                    Record::Redact(DrrRedact { object: o, offset, length, toguid })
                }
            }
            RecSpec::Spill { object, sectors, unmodified } => {
                let length = u64::from(*sectors) * SECTOR;
                let flags = if *unmodified { DRR_SPILL_UNMODIFIED } else { 0 };
                let drr = DrrSpill {
                    object: self.resolve(*object),
                    length,
                    toguid,
                    flags,
                    ..DrrSpill::default()
                };
                Record::Spill { drr, data: vec![0x5a; usize::from(*sectors) * SECTOR_BYTES] }
            }
            RecSpec::ObjectRange { first, numslots } => Record::ObjectRange(DrrObjectRange {
                firstobj: *first,
                numslots: *numslots,
                toguid,
                ..DrrObjectRange::default()
            }),
            RecSpec::WriteByref { object } => Record::WriteByref(DrrWriteByref {
                object: self.resolve(*object),
                length: 512,
                toguid,
                ..DrrWriteByref::default()
            }),
            RecSpec::Oversize { kind, extra } => {
                self.oversize = Some(oversize_record(*kind, *extra, toguid));
                return;
            }
            _ => unreachable!("handled by add"),
        };
        self.push(rec, None);
    }
}

fn resolve_obj(base_objects: &[u64], n: ObjNum) -> u64 {
    match n {
        ObjNum::Low(v) => 1 + u64::from(v % 40),
        ObjNum::Base(i) => {
            base_objects.get(usize::from(i) % base_objects.len().max(1)).copied().unwrap_or(1)
        }
        ObjNum::Zero => 0,
        ObjNum::NearMax(d) => DN_MAX_OBJECT - 2 + u64::from(d % 4),
        ObjNum::Raw(v) => v,
    }
}

#[allow(clippy::too_many_arguments)] // one per OBJECT field the input chooses
fn object_record(
    object: u64,
    ot: u8,
    bonustype: u8,
    blksz: u32,
    bonuslen: u32,
    seed: u8,
    quirk: ObjectQuirk,
    toguid: u64,
) -> Record {
    let ot = [19, 19, 20, 21, 26, 0x89, 0, 54, 0xc4][usize::from(ot % 9)];
    let bonustype = [0, 44, 26, 16, 0, 54, 0x80][usize::from(bonustype % 7)];
    let mut drr = DrrObject {
        object,
        object_type: ot,
        bonustype,
        blksz,
        bonuslen,
        checksumtype: 7,
        compress: 2,
        dn_slots: 1,
        toguid,
        ..DrrObject::default()
    };
    match quirk {
        ObjectQuirk::None => {}
        ObjectQuirk::DnSlots(v) => drr.dn_slots = v,
        ObjectQuirk::Flags(v) => drr.flags = v,
        ObjectQuirk::Checksum(v) => drr.checksumtype = v,
        ObjectQuirk::Compress(v) => drr.compress = v,
        ObjectQuirk::RawFields(v) => {
            (drr.nlevels, drr.nblkptr, drr.indblkshift) = (v & 3, (v >> 2) & 3, (v >> 4) & 15);
            drr.maxblkid = u64::from(v >> 6);
        }
        ObjectQuirk::RawBonuslen(v) => drr.raw_bonuslen = u32::from(v % 4097),
    }
    let len = usize::try_from(drr.payload_len()).expect("bounded bonus");
    let mut bonus = pattern(seed | 1, 0, len);
    bonus[usize::try_from(bonuslen).expect("small").min(len)..].fill(0);
    Record::Object { drr, bonus }
}

fn write_record(
    object: u64,
    offset: u64,
    lsize: u64,
    seed: u8,
    ot: u8,
    compress: &WriteCompress,
    toguid: u64,
) -> (Record, Option<Vec<u8>>) {
    let object_type = [19, 19, 20, 21, 26, 0x89, 0, 60][usize::from(ot % 8)];
    let plain = pattern(seed, offset, usize::try_from(lsize).expect("bounded lsize"));
    let mut drr = DrrWrite {
        object,
        object_type,
        offset,
        logical_size: lsize,
        toguid,
        checksumtype: 7,
        ..DrrWrite::default()
    };
    let (data, known) = match compress {
        WriteCompress::Off => (plain.clone(), true),
        WriteCompress::Lz4 => match lz4_compress(&plain, plain.len().saturating_sub(1)) {
            Some(c) => {
                (drr.compressiontype, drr.compressed_size) = (15, c.len() as u64);
                (c, true)
            }
            None => (plain.clone(), true),
        },
        WriteCompress::Garbage(bytes) => {
            let mut c = bytes.clone();
            c.truncate(plain.len());
            (drr.compressiontype, drr.compressed_size) = (15, c.len() as u64);
            (c, false)
        }
        WriteCompress::Type(t) => {
            (drr.compressiontype, drr.compressed_size) = (*t, lsize);
            (plain.clone(), *t == 0)
        }
    };
    (Record::Write { drr, data }, known.then_some(plain))
}

fn embedded_record(
    object: u64,
    offset: u64,
    lsize: u16,
    fill: u8,
    mode: u8,
    etype: u8,
    toguid: u64,
) -> (Record, Option<Vec<u8>>) {
    let lsize = u32::from(lsize) % (128 << 10) + 1;
    let plain = vec![fill; lsize as usize];
    let etype = etype.saturating_sub(200);
    let (compression, payload, known) = match mode % 4 {
        0 | 1 => match lz4_compress(&plain, 112) {
            Some(c) => (15, c, true),
            None => (15, vec![fill; 112], false),
        },
        2 if lsize <= 112 => (2, plain.clone(), true),
        _ => (mode, vec![fill; usize::from(mode)], false),
    };
    let psize = u32::try_from(payload.len()).expect("small");
    let drr = DrrWriteEmbedded {
        object,
        offset,
        length: u64::from(lsize),
        toguid,
        compression,
        etype,
        lsize,
        psize,
    };
    let mut data = payload;
    data.resize(usize::try_from(roundup8_u32(psize)).expect("small"), 0);
    (Record::WriteEmbedded { drr, data }, known.then_some(plain))
}

/// A record whose payload is past its limit (§6 #17): its header only, then the stream ends.
fn oversize_record(kind: u8, extra: u16, toguid: u64) -> Record {
    let len = DRR_PAYLOAD_MAX_BYTES + u64::from(extra) * SECTOR + SECTOR;
    match kind % 3 {
        0 => Record::Write {
            drr: DrrWrite {
                object: 1,
                object_type: 19,
                logical_size: len,
                toguid,
                ..DrrWrite::default()
            },
            data: Vec::new(),
        },
        1 => Record::Object {
            drr: DrrObject {
                object: 1,
                object_type: 19,
                blksz: 512,
                raw_bonuslen: u32::try_from(len).expect("< 4 GiB"),
                dn_slots: 1,
                toguid,
                ..DrrObject::default()
            },
            bonus: Vec::new(),
        },
        _ => Record::Spill {
            drr: DrrSpill { object: 1, length: len, toguid, ..DrrSpill::default() },
            data: Vec::new(),
        },
    }
}

impl StreamSpec {
    fn source(&self, base: &RecvBase) -> (String, u64, Option<String>) {
        let guid_of =
            |snap: &str| base.state.snapshots.iter().find(|s| s.name == snap).map_or(0, |s| s.guid);
        let base_fs = FUZZ_BASE_FS.to_owned();
        match self.source {
            Source::Full => (FUZZ_NEW_FS.to_owned(), 0, None),
            Source::FullIntoBase => (base_fs, 0, None),
            Source::Newest => (base_fs, guid_of("pool/base@s1"), Some("pool/base@s1".to_owned())),
            Source::Older => (base_fs, guid_of("pool/base@s0"), Some("pool/base@s0".to_owned())),
            Source::Guid(g) => {
                let from = ["pool/base@s0", "pool/base@s1"].into_iter().find(|s| guid_of(s) == g);
                (base_fs, g, from.map(str::to_owned))
            }
        }
    }

    fn features(&self) -> u64 {
        let mut features = 0;
        for (i, f) in FEATURE_CHOICES.iter().enumerate() {
            if self.features & (1 << i) != 0 {
                features |= f;
            }
        }
        if let BeginQuirk::Feature(bit) = self.begin {
            features |= 1 << (bit % 30);
        }
        features
    }

    fn begin(&self, fs: &str, fromguid: u64, features: u64, toguid: u64) -> Record {
        let mut hdrtype = DMU_SUBSTREAM;
        let mut drr = DrrBegin {
            creation_time: FUZZ_NOW_SECS + 7,
            objset_type: engine::dmu::objset::DMU_OST_ZFS as u32,
            toguid,
            fromguid,
            ..DrrBegin::default()
        };
        let mut snap = "r".to_owned();
        let mut payload = Vec::new();
        match &self.begin {
            BeginQuirk::None | BeginQuirk::ZeroToguid | BeginQuirk::Feature(_) => {}
            BeginQuirk::Compound => hdrtype = DMU_COMPOUNDSTREAM,
            BeginQuirk::ObjsetType(t) => drr.objset_type = u32::from(*t),
            BeginQuirk::CloneFlag => drr.flags |= DRR_FLAG_CLONE,
            BeginQuirk::Flags(f) => drr.flags = *f,
            BeginQuirk::SnapName(i) => {
                snap = ["s0", "s1", "", "a b", "x@y", "%recv", "r"][usize::from(i % 7)].to_owned()
            }
            BeginQuirk::Payload(p) => payload = p.clone(),
        }
        drr.versioninfo = dmu_versioninfo(hdrtype, features);
        let name = format!("{fs}@{snap}");
        drr.set_toname(&name[..name.len().min(DRR_TONAME_MAX_LEN)]);
        Record::Begin { drr, payload }
    }

    fn records(&self, base: &RecvBase, from: Option<&str>, toguid: u64) -> Builder {
        let objset = from.and_then(|f| base.objsets.get(f));
        let base_objects: Vec<u64> =
            objset.map(|o| o.keys().copied().collect()).unwrap_or_default();
        let blksz =
            objset.map(|o| o.iter().map(|(k, v)| (*k, v.blksz)).collect()).unwrap_or_default();
        let mut specs: Vec<&RecSpec> = self.records.iter().take(STRUCTURED_RECORDS_MAX).collect();
        if self.canonical {
            let resolve = |n: ObjNum| resolve_obj(&base_objects, n);
            specs.sort_by_key(|s| s.rank(&resolve));
        }
        let mut b = Builder {
            base_objects,
            blksz,
            toguid,
            records: Vec::new(),
            plains: Vec::new(),
            oversize: None,
            payload_bytes: 0,
        };
        for s in specs {
            if b.oversize.is_some() || b.payload_bytes > STRUCTURED_PAYLOAD_MAX_BYTES {
                break;
            }
            b.add(s);
        }
        b
    }

    fn build(&self, base: &RecvBase) -> Planned {
        let (fs, fromguid, from) = self.source(base);
        let toguid = if matches!(self.begin, BeginQuirk::ZeroToguid) {
            0
        } else {
            0x5eed_0000_0000 | u64::from(self.toguid)
        };
        let features = self.features();
        let order = if self.big_endian { ByteOrder::Big } else { ByteOrder::Little };
        let begin = self.begin(&fs, fromguid, features, toguid);
        let b = self.records(base, from.as_deref(), toguid);
        let mut w = StreamWriter::new(Vec::new(), order);
        w.write_record(&begin).expect("writing to a Vec cannot fail");
        for r in &b.records {
            w.write_record(r).expect("writing to a Vec cannot fail");
        }
        let mut stream = w.into_inner().expect("a Vec flushes");
        match &b.oversize {
            Some(rec) => append_header_only(&mut stream, rec, order),
            None => append_end(&mut stream, &self.end, order, toguid),
        }
        let must_fail = must_fail(&begin, &b, base, from.as_deref(), &self.end);
        let byteswap = order != ByteOrder::HOST;
        let (records, plains) = (b.records, b.plains);
        Planned { fs, fromguid, stream, byteswap, features, from, records, plains, must_fail }
    }
}

/// Append `rec`'s header with a valid checksum and no payload (the stream ends there).
fn append_header_only(stream: &mut Vec<u8>, rec: &Record, order: ByteOrder) {
    let mut hdr = encode_header(rec, order);
    let mut f = Fletcher4::new();
    order.fletcher4_update(&mut f, stream);
    order.fletcher4_update(&mut f, &hdr[..DRR_CHECKSUM_OFFSET]);
    hdr[DRR_CHECKSUM_OFFSET..].copy_from_slice(&order.cksum_bytes(&f.finish()));
    assert!(rec.payload_len_from_header() > DRR_PAYLOAD_MAX_BYTES, "not oversize");
    stream.extend_from_slice(&hdr);
}

/// Append the END `quirk` asks for, checksummed over everything since BEGIN.
fn append_end(stream: &mut Vec<u8>, quirk: &EndQuirk, order: ByteOrder, toguid: u64) {
    let end = |toguid| Record::End(DrrEnd { checksum: [0; 4], toguid });
    let rec = match quirk {
        EndQuirk::Missing => return,
        EndQuirk::Toguid(g) => end(*g),
        EndQuirk::ZeroToguid => end(0),
        _ => end(toguid),
    };
    let mut f = Fletcher4::new();
    order.fletcher4_update(&mut f, stream);
    let before = f.finish();
    let mut hdr = encode_header(&rec, order);
    hdr[8..40].copy_from_slice(&order.cksum_bytes(&before));
    order.fletcher4_update(&mut f, &hdr[..DRR_CHECKSUM_OFFSET]);
    hdr[DRR_CHECKSUM_OFFSET..].copy_from_slice(&order.cksum_bytes(&f.finish()));
    stream.extend_from_slice(&hdr);
    match quirk {
        EndQuirk::Trailing(bytes) => stream.extend_from_slice(bytes),
        EndQuirk::Twice => stream.extend_from_slice(&hdr),
        _ => {}
    }
}

/// Why §4 of the spec requires a receiver to refuse this stream (empty: it may succeed).
fn must_fail(
    begin: &Record,
    b: &Builder,
    base: &RecvBase,
    from: Option<&str>,
    end: &EndQuirk,
) -> Vec<String> {
    let mut why = Vec::new();
    if let Record::Begin { drr, .. } = begin {
        if drr.features() & !DMU_BACKUP_FEATURE_MASK != 0 {
            why.push("unknown feature flags".to_owned());
        }
        if drr.hdrtype() != DMU_SUBSTREAM || drr.objset_type >= 6 || drr.flags & DRR_FLAG_CLONE != 0
        {
            why.push("compound, bad objset type or a clone without origin".to_owned());
        }
    }
    if b.oversize.is_some() || matches!(end, EndQuirk::Missing) {
        why.push("payload past its limit, or no END".to_owned());
    }
    let mut exists: BTreeSet<u64> = from
        .and_then(|f| base.objsets.get(f))
        .map(|o| o.keys().copied().collect())
        .unwrap_or_default();
    let mut last_write = None;
    for (i, rec) in b.records.iter().enumerate() {
        if let Some(reason) = record_must_fail(rec, &mut exists, &mut last_write) {
            why.push(format!("record {}: {reason}", i + 1));
        }
    }
    why
}

/// §4.3's checks of one record that hold for every receiver (and this pool: 512-byte
/// dnodes, 128 KiB blocks), tracking which objects exist.
fn record_must_fail(
    rec: &Record,
    exists: &mut BTreeSet<u64>,
    last: &mut Option<(u64, u64)>,
) -> Option<&'static str> {
    match rec {
        Record::Object { drr, .. } => {
            let bad_obj = drr.object == 0 || drr.object >= DN_MAX_OBJECT;
            let bs = u64::from(drr.blksz);
            let bad_bs = bs < SECTOR || bs % SECTOR != 0 || bs > engine::limits::SPA_MAXBLOCKSIZE;
            let raw = drr.raw_bonuslen != 0
                || drr.nblkptr != 0
                || drr.indblkshift != 0
                || drr.nlevels != 0;
            let bad_enum = drr.checksumtype >= 15 || drr.compress >= 17;
            let bad_type = drr.object_type == 0 || !ot_is_valid(drr.object_type);
            let bad_bonus = drr.bonuslen > 320 || !ot_is_valid(drr.bonustype);
            exists.insert(drr.object);
            (bad_obj || bad_bs || raw || bad_enum || bad_type || bad_bonus)
                .then_some("OBJECT with an invalid field")
        }
        Record::FreeObjects(f) => {
            let Some(end) = f.firstobj.checked_add(f.numobjs) else {
                return Some("FREEOBJECTS firstobj + numobjs overflows");
            };
            let first = f.firstobj.max(1);
            let gone: Vec<u64> = exists.range(first..end.max(first)).copied().collect();
            gone.iter().for_each(|o| {
                exists.remove(o);
            });
            None
        }
        Record::Write { drr, .. } => {
            let over = drr.offset.checked_add(drr.logical_size).is_none();
            let over = over || !ot_is_valid(drr.object_type);
            let order = last.is_some_and(|l| (drr.object, drr.offset) < l);
            *last = Some((drr.object, drr.offset));
            (over || order || !exists.contains(&drr.object))
                .then_some("WRITE overflows, out of order or to a missing object")
        }
        Record::Free(f) => {
            let over = f.length != DMU_OBJECT_END && f.offset.checked_add(f.length).is_none();
            (over || !exists.contains(&f.object))
                .then_some("FREE overflows or names a missing object")
        }
        Record::WriteEmbedded { drr, .. } => {
            let bad = drr.psize > 112
                || drr.etype >= 3
                || drr.compression >= 17
                || drr.offset.checked_add(drr.length).is_none();
            (bad || !exists.contains(&drr.object)).then_some("WRITE_EMBEDDED with an invalid field")
        }
        Record::Spill { drr, .. } if drr.flags & DRR_SPILL_UNMODIFIED == 0 => (drr.length < SECTOR
            || !exists.contains(&drr.object))
        .then_some("SPILL too short or to a missing object"),
        Record::ObjectRange(_) => Some("OBJECT_RANGE in a non-raw stream"),
        Record::WriteByref(_) => Some("WRITE_BYREF"),
        _ => None,
    }
}

/// What the receiver holds of one object after the stream: attributes, bonus, and the
/// candidate contents (two after a reallocation: kept or freed; none if unknown).
#[derive(Clone, Debug)]
struct ExpObj {
    ot: u8,
    blksz: u32,
    bonustype: u8,
    bonus: Vec<u8>,
    data: Vec<SectorMap>,
    touched: BTreeSet<u64>,
}

impl Planned {
    /// The objects the received snapshot must hold, replaying the records on the source.
    fn expected(&self, base: &RecvBase) -> BTreeMap<u64, ExpObj> {
        let mut objs: BTreeMap<u64, ExpObj> = BTreeMap::new();
        if let Some(from) = self.from.as_deref().and_then(|f| base.objsets.get(f)) {
            for (o, b) in from {
                let (ot, blksz, bonustype, bonus) = (b.ot, b.blksz, b.bonustype, b.bonus.clone());
                let touched = b.data.keys().copied().collect();
                objs.insert(
                    *o,
                    ExpObj { ot, blksz, bonustype, bonus, data: vec![b.data.clone()], touched },
                );
            }
        }
        for (rec, plain) in self.records.iter().zip(&self.plains) {
            self.replay(&mut objs, rec, plain.as_deref());
        }
        objs
    }

    fn replay(&self, objs: &mut BTreeMap<u64, ExpObj>, rec: &Record, plain: Option<&[u8]>) {
        match rec {
            Record::Object { drr, bonus } => {
                let mut bonus = bonus[..(drr.bonuslen as usize).min(bonus.len())].to_vec();
                if self.byteswap {
                    if let Some(kind) = ot_byteswap_kind(drr.bonustype) {
                        byteswap_in_place(kind, &mut bonus);
                    }
                }
                let (data, touched) = match objs.get(&drr.object) {
                    Some(old) if old.data.is_empty() => (Vec::new(), old.touched.clone()),
                    Some(old) => {
                        ([old.data.clone(), vec![SectorMap::new()]].concat(), old.touched.clone())
                    }
                    None => (vec![SectorMap::new()], BTreeSet::new()),
                };
                let (ot, bonustype) = (drr.object_type as u8, drr.bonustype as u8);
                objs.insert(
                    drr.object,
                    ExpObj { ot, blksz: drr.blksz, bonustype, bonus, data, touched },
                );
            }
            Record::FreeObjects(f) => {
                let end = f.firstobj.saturating_add(f.numobjs).min(DN_MAX_OBJECT);
                let start = f.firstobj.max(1);
                let gone: Vec<u64> = objs.range(start..end.max(start)).map(|(k, _)| *k).collect();
                gone.iter().for_each(|o| {
                    objs.remove(o);
                });
            }
            Record::Write { drr, .. } => {
                let mut plain = plain.map(<[u8]>::to_vec);
                if let (Some(p), true, 0) = (plain.as_mut(), self.byteswap, drr.compressiontype) {
                    if let Some(kind) = ot_byteswap_kind(drr.object_type) {
                        byteswap_in_place(kind, p);
                    }
                }
                apply_write(objs, drr.object, drr.offset, plain.as_deref());
            }
            Record::WriteEmbedded { drr, .. } => apply_write(objs, drr.object, drr.offset, plain),
            Record::Free(DrrFree { object, offset, length, .. })
            | Record::Redact(DrrRedact { object, offset, length, .. }) => {
                let end = if *length == DMU_OBJECT_END {
                    u64::MAX
                } else {
                    offset.saturating_add(*length)
                };
                if let Some(x) = objs.get_mut(object) {
                    x.data.iter_mut().for_each(|m| map_zero(m, *offset, end));
                }
            }
            _ => {}
        }
    }

    /// The received snapshot holds what the records say (only called after a success).
    pub(super) fn verify(&self, spa: &mut Spa, base: &RecvBase, snap: &str) -> Result<(), String> {
        if !self.must_fail.is_empty() {
            return Err(format!("stream received though §4 refuses it: {:?}", self.must_fail));
        }
        let want = self.expected(base);
        let got = spa.objects(snap).map_err(|e| format!("objects({snap}): {e}"))?;
        let keys: Vec<u64> = want.keys().copied().collect();
        if got != keys {
            return Err(format!("objects of {snap}: engine {got:?}, records say {keys:?}"));
        }
        for (&obj, x) in &want {
            verify_object(spa, snap, obj, x)
                .map_err(|e| format!("{e} (features {:#x})", self.features))?;
        }
        Ok(())
    }
}

fn apply_write(objs: &mut BTreeMap<u64, ExpObj>, obj: u64, offset: u64, plain: Option<&[u8]>) {
    let Some(x) = objs.get_mut(&obj) else { return };
    match plain {
        None => x.data.clear(),
        Some(p) => {
            x.data.iter_mut().for_each(|m| map_write(m, offset, p));
            let end = offset.saturating_add(p.len() as u64);
            x.touched.extend((offset / SECTOR..end.div_ceil(SECTOR)).take(1 << 12));
        }
    }
}

fn verify_object(spa: &mut Spa, snap: &str, obj: u64, x: &ExpObj) -> Result<(), String> {
    let info = spa.object_info(snap, obj).map_err(|e| format!("{snap} obj {obj}: {e}"))?;
    let got = (info.ot, info.blksz, info.bonustype, usize::from(info.bonuslen));
    let want = (x.ot, x.blksz, x.bonustype, x.bonus.len());
    if got != want {
        return Err(format!(
            "obj {obj} (ot, blksz, bonustype, bonuslen): engine {got:?}, records {want:?}"
        ));
    }
    let (_, bonus) = spa.bonus(snap, obj).map_err(|e| format!("bonus {obj}: {e}"))?;
    if bonus != x.bonus {
        return Err(format!("obj {obj} bonus: engine {bonus:02x?}, records {:02x?}", x.bonus));
    }
    if x.data.is_empty() {
        return Ok(());
    }
    let mut sectors = x.touched.clone();
    x.data.iter().for_each(|m| sectors.extend(m.keys()));
    sectors.retain(|s| (s + 1).saturating_mul(SECTOR) <= DMU_MAX_OFFSET);
    let read = read_sectors(spa, snap, obj, &sectors)?;
    let zero = vec![0u8; SECTOR_BYTES];
    let matches = |m: &SectorMap| sectors.iter().find(|s| read[s] != *m.get(s).unwrap_or(&zero));
    let mismatch = x.data.iter().map(matches).collect::<Vec<_>>();
    if mismatch.iter().any(Option::is_none) {
        return Ok(());
    }
    let s = mismatch[0].expect("every candidate mismatched");
    Err(format!(
        "obj {obj} sector {s} (offset {:#x}): engine {:02x?}.., records {:02x?}.. ({} candidates)",
        s * SECTOR,
        &read[s][..16],
        &x.data[0].get(s).unwrap_or(&zero)[..16],
        x.data.len()
    ))
}

/// Read the given sectors of an object, in runs.
fn read_sectors(
    spa: &mut Spa,
    snap: &str,
    obj: u64,
    sectors: &BTreeSet<u64>,
) -> Result<BTreeMap<u64, Vec<u8>>, String> {
    let mut out = BTreeMap::new();
    let list: Vec<u64> = sectors.iter().copied().collect();
    let mut i = 0;
    while i < list.len() {
        let mut j = i + 1;
        while j < list.len() && list[j] == list[j - 1] + 1 && j - i < 2048 {
            j += 1;
        }
        let (start, n) = (list[i], (j - i) as u64);
        let bytes = spa
            .read(snap, obj, start * SECTOR, n * SECTOR)
            .map_err(|e| format!("read {snap} obj {obj} sector {start}: {e}"))?;
        for (k, chunk) in bytes.chunks_exact(SECTOR_BYTES).enumerate() {
            out.insert(start + k as u64, chunk.to_vec());
        }
        i = j;
    }
    Ok(out)
}

/// Target `recv_structured`: `data` drives an arbitrary record sequence (`StreamSpec`) that
/// is encoded with valid checksums in either byte order: full or incremental from
/// `FUZZ_BASE_FS`'s @s0/@s1 (forced or not), reallocations, frees past the end, huge offsets
/// and object numbers, odd block sizes, bonus lengths at and past 320, payloads past their
/// limits. A failure must change nothing; a success must hold exactly what the records say
/// (objects, attributes, bonus, data; both outcomes of a reallocation are accepted), refuse
/// nothing §4 refuses, and pass the checks of `receive_checked`.
pub fn recv_structured(data: &[u8]) {
    let Ok(spec) = StreamSpec::arbitrary_take_rest(Unstructured::new(data)) else { return };
    with_recv_pool(BaseKind::Structured, |pool, base| {
        let planned = spec.build(base);
        let case = RecvCase {
            fs: &planned.fs,
            fromguid: planned.fromguid,
            opts: RecvOptions { force: spec.force },
            expect: Some(&planned),
            full_checks: true,
        };
        let _ = receive_checked(pool, base, &case, &planned.stream);
    });
}
