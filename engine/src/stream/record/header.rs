//! The 312-byte record header: `encode_header` and `decode_header` in either byte order, one
//! function per record type holding the field offsets of `dmu_replay_record_t`. Input: a
//! `Record`, or header bytes from a stream. Must hold: decoding an encoded header gives the
//! record back (payload aside); decoding never panics; an unknown `drr_type` gives `None`.

use crate::zio::checksum::ZioCksum;

use super::drr::{
    DdtKey, DrrBegin, DrrEnd, DrrFree, DrrFreeObjects, DrrObject, DrrObjectRange, DrrRedact,
    DrrSpill, DrrWrite, DrrWriteByref, DrrWriteEmbedded, Record,
};
use super::{
    field, ByteOrder, Dec, Enc, DRR_BEGIN, DRR_CHECKSUM_OFFSET, DRR_END, DRR_FREE, DRR_FREEOBJECTS,
    DRR_HEADER_SIZE, DRR_OBJECT, DRR_OBJECT_RANGE, DRR_REDACT, DRR_SPILL, DRR_WRITE,
    DRR_WRITE_BYREF, DRR_WRITE_EMBEDDED,
};

/// Encodes a record's 312-byte header in `order`, zero-filled, with a zero checksum overlay
/// (BEGIN: toname's tail as given). BEGIN's `drr_payloadlen` is the payload's length.
#[must_use]
pub fn encode_header(rec: &Record, order: ByteOrder) -> [u8; DRR_HEADER_SIZE] {
    let mut e = Enc::new(order, rec.drr_type());
    match rec {
        Record::Begin { drr, payload } => {
            let len = u32::try_from(payload.len()).expect("invariant: BEGIN payload < 4 GiB");
            e.u32(4, len);
            encode_begin(&mut e, drr);
        }
        Record::End(drr) => {
            e.cksum(8, &drr.checksum);
            e.u64(40, drr.toguid);
        }
        Record::Object { drr, .. } => encode_object(&mut e, drr),
        Record::FreeObjects(drr) => {
            e.u64(8, drr.firstobj);
            e.u64(16, drr.numobjs);
            e.u64(24, drr.toguid);
        }
        Record::Write { drr, .. } => encode_write(&mut e, drr),
        Record::Free(drr) => encode_range(&mut e, drr.object, drr.offset, drr.length, drr.toguid),
        Record::WriteByref(drr) => encode_write_byref(&mut e, drr),
        Record::Spill { drr, .. } => encode_spill(&mut e, drr),
        Record::WriteEmbedded { drr, .. } => encode_write_embedded(&mut e, drr),
        Record::ObjectRange(drr) => encode_object_range(&mut e, drr),
        Record::Redact(drr) => encode_range(&mut e, drr.object, drr.offset, drr.length, drr.toguid),
    }
    e.hdr
}

fn encode_begin(e: &mut Enc, drr: &DrrBegin) {
    e.u64(8, drr.magic);
    e.u64(16, drr.versioninfo);
    e.u64(24, drr.creation_time);
    e.u32(32, drr.objset_type);
    e.u32(36, drr.flags);
    e.u64(40, drr.toguid);
    e.u64(48, drr.fromguid);
    e.bytes(56, &drr.toname);
}

fn encode_object(e: &mut Enc, drr: &DrrObject) {
    e.u64(8, drr.object);
    e.u32(16, drr.object_type);
    e.u32(20, drr.bonustype);
    e.u32(24, drr.blksz);
    e.u32(28, drr.bonuslen);
    e.u8(32, drr.checksumtype);
    e.u8(33, drr.compress);
    e.u8(34, drr.dn_slots);
    e.u8(35, drr.flags);
    e.u32(36, drr.raw_bonuslen);
    e.u64(40, drr.toguid);
    e.u8(48, drr.indblkshift);
    e.u8(49, drr.nlevels);
    e.u8(50, drr.nblkptr);
    e.u64(56, drr.maxblkid);
}

fn encode_write(e: &mut Enc, drr: &DrrWrite) {
    e.u64(8, drr.object);
    e.u32(16, drr.object_type);
    e.u64(24, drr.offset);
    e.u64(32, drr.logical_size);
    e.u64(40, drr.toguid);
    e.u8(48, drr.checksumtype);
    e.u8(49, drr.flags);
    e.u8(50, drr.compressiontype);
    e.cksum(56, &drr.key.cksum);
    e.u64(88, drr.key.prop);
    e.u64(96, drr.compressed_size);
    e.bytes(104, &drr.salt);
    e.bytes(112, &drr.iv);
    e.bytes(124, &drr.mac);
}

fn encode_range(e: &mut Enc, object: u64, offset: u64, length: u64, toguid: u64) {
    e.u64(8, object);
    e.u64(16, offset);
    e.u64(24, length);
    e.u64(32, toguid);
}

fn encode_write_byref(e: &mut Enc, drr: &DrrWriteByref) {
    encode_range(e, drr.object, drr.offset, drr.length, drr.toguid);
    e.u64(40, drr.refguid);
    e.u64(48, drr.refobject);
    e.u64(56, drr.refoffset);
    e.u8(64, drr.checksumtype);
    e.u8(65, drr.flags);
    e.cksum(72, &drr.key.cksum);
    e.u64(104, drr.key.prop);
}

fn encode_spill(e: &mut Enc, drr: &DrrSpill) {
    e.u64(8, drr.object);
    e.u64(16, drr.length);
    e.u64(24, drr.toguid);
    e.u8(32, drr.flags);
    e.u8(33, drr.compressiontype);
    e.u64(40, drr.compressed_size);
    e.bytes(48, &drr.salt);
    e.bytes(56, &drr.iv);
    e.bytes(68, &drr.mac);
    e.u32(84, drr.object_type);
}

fn encode_write_embedded(e: &mut Enc, drr: &DrrWriteEmbedded) {
    encode_range(e, drr.object, drr.offset, drr.length, drr.toguid);
    e.u8(40, drr.compression);
    e.u8(41, drr.etype);
    e.u32(48, drr.lsize);
    e.u32(52, drr.psize);
}

fn encode_object_range(e: &mut Enc, drr: &DrrObjectRange) {
    e.u64(8, drr.firstobj);
    e.u64(16, drr.numslots);
    e.u64(24, drr.toguid);
    e.bytes(32, &drr.salt);
    e.bytes(40, &drr.iv);
    e.bytes(52, &drr.mac);
    e.u8(68, drr.flags);
}

/// A decoded header: the record (with an empty payload) and the payload length its fields
/// call for (§1.4; BEGIN: `drr_payloadlen`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodedHeader {
    /// The record, payload not yet read.
    pub record: Record,
    /// Bytes of payload that follow the header.
    pub payload_len: u64,
}

/// `drr_type` of a header in `order`.
#[must_use]
pub fn header_drr_type(hdr: &[u8; DRR_HEADER_SIZE], order: ByteOrder) -> u32 {
    order.u32(field(hdr, 0))
}

/// The stored per-record checksum (offset 280) of a header in `order`.
#[must_use]
pub fn header_checksum(hdr: &[u8; DRR_HEADER_SIZE], order: ByteOrder) -> ZioCksum {
    order.cksum(&field(hdr, DRR_CHECKSUM_OFFSET))
}

/// Decodes a header; `byteswap` means the stream is in the opposite order of this host.
/// Every integer field is swapped as the kernel's `byteswap_record()` does. `None` if
/// `drr_type` is not a record type (≥ DRR_NUMTYPES). Never panics.
#[must_use]
pub fn decode_header(hdr: &[u8; DRR_HEADER_SIZE], byteswap: bool) -> Option<DecodedHeader> {
    let order = if byteswap { ByteOrder::HOST.opposite() } else { ByteOrder::HOST };
    decode_header_in(hdr, order)
}

/// `decode_header` for an explicit stream byte order.
#[must_use]
pub fn decode_header_in(hdr: &[u8; DRR_HEADER_SIZE], order: ByteOrder) -> Option<DecodedHeader> {
    let d = Dec { hdr, order };
    let record = match d.u32(0) {
        DRR_BEGIN => Record::Begin { drr: decode_begin(&d), payload: Vec::new() },
        DRR_END => Record::End(DrrEnd { checksum: d.cksum(8), toguid: d.u64(40) }),
        DRR_OBJECT => Record::Object { drr: decode_object(&d), bonus: Vec::new() },
        DRR_FREEOBJECTS => Record::FreeObjects(DrrFreeObjects {
            firstobj: d.u64(8),
            numobjs: d.u64(16),
            toguid: d.u64(24),
        }),
        DRR_WRITE => Record::Write { drr: decode_write(&d), data: Vec::new() },
        DRR_FREE => {
            let (object, offset, length, toguid) = decode_range(&d);
            Record::Free(DrrFree { object, offset, length, toguid })
        }
        DRR_WRITE_BYREF => Record::WriteByref(decode_write_byref(&d)),
        DRR_SPILL => Record::Spill { drr: decode_spill(&d), data: Vec::new() },
        DRR_WRITE_EMBEDDED => {
            Record::WriteEmbedded { drr: decode_write_embedded(&d), data: Vec::new() }
        }
        DRR_OBJECT_RANGE => Record::ObjectRange(decode_object_range(&d)),
        DRR_REDACT => {
            let (object, offset, length, toguid) = decode_range(&d);
            Record::Redact(DrrRedact { object, offset, length, toguid })
        }
        _ => return None,
    };
    let payload_len = match &record {
        Record::Begin { .. } => u64::from(d.u32(4)),
        other => other.payload_len_from_header(),
    };
    Some(DecodedHeader { record, payload_len })
}

fn decode_begin(d: &Dec<'_>) -> DrrBegin {
    DrrBegin {
        magic: d.u64(8),
        versioninfo: d.u64(16),
        creation_time: d.u64(24),
        objset_type: d.u32(32),
        flags: d.u32(36),
        toguid: d.u64(40),
        fromguid: d.u64(48),
        toname: d.bytes(56),
    }
}

fn decode_object(d: &Dec<'_>) -> DrrObject {
    DrrObject {
        object: d.u64(8),
        object_type: d.u32(16),
        bonustype: d.u32(20),
        blksz: d.u32(24),
        bonuslen: d.u32(28),
        checksumtype: d.u8(32),
        compress: d.u8(33),
        dn_slots: d.u8(34),
        flags: d.u8(35),
        raw_bonuslen: d.u32(36),
        toguid: d.u64(40),
        indblkshift: d.u8(48),
        nlevels: d.u8(49),
        nblkptr: d.u8(50),
        maxblkid: d.u64(56),
    }
}

fn decode_write(d: &Dec<'_>) -> DrrWrite {
    DrrWrite {
        object: d.u64(8),
        object_type: d.u32(16),
        offset: d.u64(24),
        logical_size: d.u64(32),
        toguid: d.u64(40),
        checksumtype: d.u8(48),
        flags: d.u8(49),
        compressiontype: d.u8(50),
        key: DdtKey { cksum: d.cksum(56), prop: d.u64(88) },
        compressed_size: d.u64(96),
        salt: d.bytes(104),
        iv: d.bytes(112),
        mac: d.bytes(124),
    }
}

fn decode_range(d: &Dec<'_>) -> (u64, u64, u64, u64) {
    (d.u64(8), d.u64(16), d.u64(24), d.u64(32))
}

fn decode_write_byref(d: &Dec<'_>) -> DrrWriteByref {
    let (object, offset, length, toguid) = decode_range(d);
    DrrWriteByref {
        object,
        offset,
        length,
        toguid,
        refguid: d.u64(40),
        refobject: d.u64(48),
        refoffset: d.u64(56),
        checksumtype: d.u8(64),
        flags: d.u8(65),
        key: DdtKey { cksum: d.cksum(72), prop: d.u64(104) },
    }
}

fn decode_spill(d: &Dec<'_>) -> DrrSpill {
    DrrSpill {
        object: d.u64(8),
        length: d.u64(16),
        toguid: d.u64(24),
        flags: d.u8(32),
        compressiontype: d.u8(33),
        compressed_size: d.u64(40),
        salt: d.bytes(48),
        iv: d.bytes(56),
        mac: d.bytes(68),
        object_type: d.u32(84),
    }
}

fn decode_write_embedded(d: &Dec<'_>) -> DrrWriteEmbedded {
    let (object, offset, length, toguid) = decode_range(d);
    DrrWriteEmbedded {
        object,
        offset,
        length,
        toguid,
        compression: d.u8(40),
        etype: d.u8(41),
        lsize: d.u32(48),
        psize: d.u32(52),
    }
}

fn decode_object_range(d: &Dec<'_>) -> DrrObjectRange {
    DrrObjectRange {
        firstobj: d.u64(8),
        numslots: d.u64(16),
        toguid: d.u64(24),
        salt: d.bytes(32),
        iv: d.bytes(40),
        mac: d.bytes(52),
        flags: d.u8(68),
    }
}
