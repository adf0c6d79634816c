//! Tests of the record module: the checksums of the §2.6 worked example, every record type
//! round-tripping in both byte orders, payload padding, compound streams, and the reader's and
//! `rechecksum`'s handling of corrupt, truncated and mutated streams (never a panic).

use super::*;

const TOGUID: u64 = 0x1111_2222_3333_4444;

fn hex(c: &ZioCksum) -> String {
    format!("{:x}/{:x}/{:x}/{:x}", c[0], c[1], c[2], c[3])
}

fn begin(toname: &str, toguid: u64, fromguid: u64) -> Record {
    let mut drr = DrrBegin {
        versioninfo: dmu_versioninfo(DMU_SUBSTREAM, 0),
        creation_time: 0x6600_0000,
        objset_type: 3,
        flags: DRR_FLAG_FREERECORDS | DRR_FLAG_SPILL_BLOCK,
        toguid,
        fromguid,
        ..DrrBegin::default()
    };
    drr.set_toname(toname);
    Record::Begin { drr, payload: Vec::new() }
}

fn object(object: u64, object_type: u32, blksz: u32) -> Record {
    let drr = DrrObject {
        object,
        object_type,
        blksz,
        dn_slots: 1,
        toguid: TOGUID,
        ..DrrObject::default()
    };
    Record::Object { drr, bonus: Vec::new() }
}

fn free(object: u64, offset: u64, length: u64) -> Record {
    Record::Free(DrrFree { object, offset, length, toguid: TOGUID })
}

fn write(object: u64, object_type: u32, data: Vec<u8>) -> Record {
    let drr = DrrWrite {
        object,
        object_type,
        logical_size: data.len() as u64,
        toguid: TOGUID,
        checksumtype: 2,
        ..DrrWrite::default()
    };
    Record::Write { drr, data }
}

/// The records of the §2.6 worked example (a full send of a volume, 20016 bytes).
pub(crate) fn spec_example_records() -> Vec<Record> {
    let zvol: Vec<u8> = (0..16384u32).map(|i| (i * 7) as u8).collect();
    let mut mzap = vec![0u8; 512];
    mzap[..8].copy_from_slice(&0x8000_0000_0000_0003u64.to_le_bytes());
    mzap[8..16].copy_from_slice(&0x1234u64.to_le_bytes());
    mzap[64..72].copy_from_slice(&65536u64.to_le_bytes());
    mzap[78..82].copy_from_slice(b"size");
    vec![
        begin("pool/vol@a", TOGUID, 0),
        object(1, 23, 16384),
        free(1, 16384, DMU_OBJECT_END),
        write(1, 23, zvol),
        object(2, 24, 512),
        free(2, 512, DMU_OBJECT_END),
        write(2, 24, mzap),
        free(2, 512, 1024),
        Record::FreeObjects(DrrFreeObjects { firstobj: 3, numobjs: 29, toguid: TOGUID }),
        Record::End(DrrEnd { checksum: [0; 4], toguid: TOGUID }),
    ]
}

pub(crate) fn write_stream(recs: &[Record], order: ByteOrder) -> Vec<u8> {
    let mut w = StreamWriter::new(Vec::new(), order);
    for r in recs {
        w.write_record(r).expect("write to Vec");
    }
    w.into_inner().expect("flush Vec")
}

fn read_all(bytes: &[u8]) -> Result<Vec<Record>, StreamError> {
    let mut r = StreamReader::new(bytes);
    let mut out = Vec::new();
    while let Some(rec) = r.next_record()? {
        out.push(rec);
    }
    assert_eq!(r.bytes_read(), bytes.len() as u64);
    Ok(out)
}

fn stored_checksum(stream: &[u8], offset: usize) -> ZioCksum {
    let mut hdr = [0u8; DRR_HEADER_SIZE];
    hdr.copy_from_slice(&stream[offset..offset + DRR_HEADER_SIZE]);
    header_checksum(&hdr, ByteOrder::Little)
}

#[test]
fn spec_2_6_worked_example_checksums_match() {
    let s = write_stream(&spec_example_records(), ByteOrder::Little);
    assert_eq!(s.len(), 20016);
    assert_eq!(&s[8..16], &[0xac, 0xcb, 0xba, 0xf5, 0x02, 0, 0, 0]);
    assert_eq!(&s[0x38..0x40], b"pool/vol");
    let expect = [
        (312, "2bd241f82/16a7c0a0715/61980f25bc97/11ec16d5dce7a9"),
        (624, "71fabdfdc/36e94b5e440/11aab4af327ae/480b33c858189c"),
        (936, "92be6b418/62e0dd593f7/29155a07d8c4c/d2799bee6de73c"),
    ];
    for (off, want) in expect {
        assert_eq!(hex(&stored_checksum(&s, off)), want, "record at {off}");
    }
    let end = s.len() - DRR_HEADER_SIZE;
    let fo = end - DRR_HEADER_SIZE;
    assert_eq!(
        hex(&stored_checksum(&s, fo)),
        "8147c53a1a6/507891c08e50bc/ea1c8d776af662e2/3be803c808c7ac86"
    );
    let mut hdr = [0u8; DRR_HEADER_SIZE];
    hdr.copy_from_slice(&s[end..]);
    let Some(DecodedHeader { record: Record::End(e), .. }) =
        decode_header_in(&hdr, ByteOrder::Little)
    else {
        panic!("last record is END");
    };
    assert_eq!(hex(&e.checksum), "8175348b554/50b942c25773a6/eca1751237dd2885/98212e130c6e6b57");
    assert_eq!(
        hex(&stored_checksum(&s, end)),
        "81a768c3d13/52f06b3b38f4ec/302c0ff139c4298/633caa4c2ed0ad24"
    );
    assert_eq!(read_all(&s).expect("valid stream").len(), 10);
}

const SALT: [u8; ZIO_DATA_SALT_LEN] = [1, 2, 3, 4, 5, 6, 7, 8];
const IV: [u8; ZIO_DATA_IV_LEN] = [9; ZIO_DATA_IV_LEN];
const MAC: [u8; ZIO_DATA_MAC_LEN] = [0xee; ZIO_DATA_MAC_LEN];
const KEY: DdtKey = DdtKey { cksum: [1, 2, 3, u64::MAX - 4], prop: 0x2_0001_0001 };

/// An OBJECT with every field set.
fn full_object() -> Record {
    let drr = DrrObject {
        object: 5,
        object_type: 19,
        bonustype: 44,
        blksz: 131_072,
        bonuslen: 13,
        checksumtype: 7,
        compress: 15,
        dn_slots: 2,
        flags: DRR_OBJECT_SPILL,
        raw_bonuslen: 0,
        toguid: 77,
        indblkshift: 17,
        nlevels: 2,
        nblkptr: 1,
        maxblkid: 0x1_0000_0001,
    };
    Record::Object { drr, bonus: (0..13).collect() }
}

/// A compressed, dedup-flagged WRITE with every field set.
fn full_write() -> Record {
    let drr = DrrWrite {
        object: 5,
        object_type: 19,
        offset: 1 << 40,
        logical_size: 4096,
        toguid: 77,
        checksumtype: 8,
        flags: DRR_CHECKSUM_DEDUP,
        compressiontype: 15,
        key: KEY,
        compressed_size: 24,
        salt: SALT,
        iv: IV,
        mac: MAC,
    };
    Record::Write { drr, data: (0..24).collect() }
}

/// WRITE_BYREF, SPILL and WRITE_EMBEDDED with every field set.
fn full_byref_spill_embedded() -> Vec<Record> {
    let byref = DrrWriteByref {
        object: 5,
        offset: 4096,
        length: 4096,
        toguid: 77,
        refguid: 55,
        refobject: 4,
        refoffset: 0,
        checksumtype: 8,
        flags: 1,
        key: KEY,
    };
    let spill = DrrSpill {
        object: 5,
        length: 512,
        toguid: 77,
        flags: DRR_SPILL_UNMODIFIED,
        compressiontype: 0,
        compressed_size: 0,
        salt: SALT,
        iv: IV,
        mac: MAC,
        object_type: 44,
    };
    let embedded = DrrWriteEmbedded {
        object: 5,
        offset: 0,
        length: 512,
        toguid: 77,
        compression: 15,
        etype: 0,
        lsize: 512,
        psize: 45,
    };
    let data = (0..48).map(|i| if i < 45 { i as u8 + 1 } else { 0 }).collect();
    vec![
        Record::WriteByref(byref),
        Record::Spill { drr: spill, data: vec![0x5a; 512] },
        Record::WriteEmbedded { drr: embedded, data },
    ]
}

/// One record of each of the 11 types, BEGIN first and END last.
fn every_record_type() -> Vec<Record> {
    let mut b = begin("pool/fs@snap", 77, 66);
    if let Record::Begin { payload, .. } = &mut b {
        *payload = vec![1, 0, 0, 0, 0xaa, 0xbb, 0xcc, 0xdd];
    }
    let range = DrrObjectRange {
        firstobj: 32,
        numslots: 32,
        toguid: 77,
        salt: SALT,
        iv: IV,
        mac: MAC,
        flags: DRR_RAW_BYTESWAP,
    };
    let mut v = vec![
        b,
        full_object(),
        Record::FreeObjects(DrrFreeObjects { firstobj: 6, numobjs: u64::MAX - 6, toguid: 77 }),
        full_write(),
        free(5, 8192, DMU_OBJECT_END),
    ];
    v.extend(full_byref_spill_embedded());
    v.push(Record::ObjectRange(range));
    v.push(Record::Redact(DrrRedact { object: 5, offset: 0, length: 512, toguid: 77 }));
    v.push(Record::End(DrrEnd { checksum: [0; 4], toguid: 77 }));
    v
}

#[test]
fn every_record_type_round_trips_in_both_byte_orders() {
    let recs = every_record_type();
    for order in [ByteOrder::Little, ByteOrder::Big] {
        for rec in &recs {
            let hdr = encode_header(rec, order);
            let dec = decode_header_in(&hdr, order).expect("valid type");
            assert_eq!(dec.payload_len, rec.payload_len_from_header());
            let mut want = rec.clone();
            if let Some(p) = want.payload_mut() {
                p.clear();
            }
            assert_eq!(dec.record, want, "{order:?}");
            let swapped = order != ByteOrder::HOST;
            assert_eq!(decode_header(&hdr, swapped).expect("valid"), dec);
        }
        let stream = write_stream(&recs, order);
        let mut r = StreamReader::new(&stream[..]);
        let mut back = Vec::new();
        while let Some(rec) = r.next_record().expect("valid stream") {
            back.push(rec);
        }
        assert_eq!(r.is_byteswapped(), order != ByteOrder::HOST);
        assert_eq!(back.len(), recs.len());
        for (got, sent) in back.iter().zip(&recs) {
            let mut want = sent.clone();
            let need = want.payload_len_from_header() as usize;
            if let Some(p) = want.payload_mut() {
                p.resize(need, 0);
            }
            if let (Record::End(g), Record::End(s)) = (got, &want) {
                assert_eq!(g.toguid, s.toguid);
                assert_ne!(g.checksum, [0; 4], "writer fills END checksum");
            } else {
                assert_eq!(got, &want, "{order:?}");
            }
        }
    }
}

#[test]
fn writer_pads_short_payloads_with_zeros() {
    let mut recs = every_record_type();
    if let Record::WriteEmbedded { data, .. } = &mut recs[7] {
        data.truncate(45);
    }
    if let Record::Object { bonus, .. } = &mut recs[1] {
        assert_eq!(bonus.len(), 13);
    }
    let stream = write_stream(&recs, ByteOrder::Little);
    let back = read_all(&stream).expect("valid");
    assert_eq!(back[1].payload().len(), 16);
    assert_eq!(&back[1].payload()[13..], &[0, 0, 0]);
    assert_eq!(back[7].payload().len(), 48);
    assert_eq!(&back[7].payload()[45..], &[0, 0, 0]);
}

#[test]
fn reader_rejects_flipped_bit_with_record_index() {
    let mut s = write_stream(&spec_example_records(), ByteOrder::Little);
    s[312 + 20] ^= 0x40;
    let err = read_all(&s).expect_err("corrupt");
    assert_eq!(err, StreamError::Checksum { record: 1 });
    // Flipping a payload bit is caught by the next header.
    let mut s = write_stream(&spec_example_records(), ByteOrder::Little);
    s[4 * 312 + 100] ^= 1;
    assert_eq!(read_all(&s).expect_err("corrupt"), StreamError::Checksum { record: 4 });
}

#[test]
fn reader_skips_zero_checksums_but_checks_end() {
    let mut s = write_stream(&spec_example_records(), ByteOrder::Little);
    let end = s.len() - DRR_HEADER_SIZE;
    s[end + DRR_CHECKSUM_OFFSET..].fill(0);
    assert_eq!(read_all(&s).expect("zero checksum skipped").len(), 10);
    s[end + 8] ^= 1;
    assert_eq!(read_all(&s).expect_err("bad END"), StreamError::EndChecksum { record: 9 });
}

#[test]
fn reader_reports_truncation_magic_type_and_size() {
    let s = write_stream(&spec_example_records(), ByteOrder::Little);
    assert_eq!(read_all(&s[..100]).expect_err("cut"), StreamError::Truncated { record: 0 });
    assert_eq!(read_all(&s[..1000]).expect_err("cut"), StreamError::Truncated { record: 3 });
    let mut bad = s.clone();
    bad[8] ^= 1;
    assert_eq!(read_all(&bad).expect_err("magic"), StreamError::BadMagic { record: 0 });
    let mut bad = s.clone();
    bad[312] = 11;
    let bad = rechecksum(&bad).expect_err("type 11");
    assert_eq!(bad, StreamError::InvalidType { record: 1, drr_type: 11 });
    // WRITE of 32 MiB: refused before allocating.
    let mut recs = spec_example_records();
    recs.truncate(3);
    let mut s = write_stream(&recs, ByteOrder::Little);
    let mut hdr = encode_header(&write(1, 23, Vec::new()), ByteOrder::Little);
    hdr[32..40].copy_from_slice(&(32u64 << 20).to_le_bytes());
    s.extend_from_slice(&hdr);
    let s = rechecksum(&s).expect_err("too large");
    assert_eq!(s, StreamError::TooLarge { record: 3, len: 32 << 20 });
    let mut b = write_stream(&spec_example_records()[..1], ByteOrder::Little);
    b[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    let err = read_all(&b).expect_err("huge BEGIN payload");
    assert_eq!(err, StreamError::TooLarge { record: 0, len: u64::from(u32::MAX) });
}

#[test]
fn compound_stream_with_double_end_reads_through() {
    let mut hdr = begin("pool/fs@snap", 0, 0);
    if let Record::Begin { drr, payload } = &mut hdr {
        drr.versioninfo = dmu_versioninfo(DMU_COMPOUNDSTREAM, 0);
        drr.flags = 0;
        drr.objset_type = 0;
        drr.creation_time = 0;
        *payload = vec![1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
    }
    for order in [ByteOrder::Little, ByteOrder::Big] {
        let mut w = StreamWriter::new(Vec::new(), order);
        w.write_record(&hdr).expect("vec");
        w.write_compound_end().expect("vec");
        for r in spec_example_records().iter().chain(&spec_example_records()) {
            w.write_record(r).expect("vec");
        }
        w.write_compound_end().expect("vec");
        let s = w.into_inner().expect("vec");
        let mut package_end = [0u8; DRR_HEADER_SIZE];
        package_end[..4].copy_from_slice(&order.u32_bytes(DRR_END));
        assert!(s.ends_with(&package_end), "final END is all zero but its type");
        let e = DRR_HEADER_SIZE + 20;
        let hdr_end = &s[e + DRR_CHECKSUM_OFFSET..e + DRR_HEADER_SIZE];
        assert!(hdr_end.iter().all(|&b| b == 0), "libzfs leaves it unchecksummed");
        assert_eq!(read_all(&s).expect("valid compound").len(), 2 + 20 + 1);
    }
}

#[test]
fn rechecksum_restores_and_repairs() {
    let good = write_stream(&every_record_type(), ByteOrder::Big);
    let mut broken = good.clone();
    let offsets = record_offsets(&good, ByteOrder::Big);
    assert_eq!(offsets.len(), 11);
    for rec_off in &offsets[1..4] {
        broken[rec_off + DRR_CHECKSUM_OFFSET] ^= 0xff;
    }
    assert!(read_all(&broken).is_err());
    let fixed = rechecksum(&broken).expect("framing intact");
    let diff = fixed.iter().zip(&good).position(|(a, b)| a != b);
    assert_eq!(diff, None, "lengths {} {}", fixed.len(), good.len());
    let mut mutated = good.clone();
    mutated[offsets[1] + 15] ^= 0x10; // OBJECT's object number
    let fixed = rechecksum(&mutated).expect("framing intact");
    assert_eq!(read_all(&fixed).expect("valid again").len(), 11);
}

#[test]
fn reader_never_panics_on_garbage_or_mutations() {
    let good = write_stream(&every_record_type(), ByteOrder::Little);
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        x ^= x << 7;
        x ^= x >> 9;
        x
    };
    for round in 0..3000usize {
        let mut s = good.clone();
        for _ in 0..(round % 7) + 1 {
            let i = (next() as usize) % s.len();
            s[i] = next() as u8;
        }
        let cut = (next() as usize) % (s.len() + 1);
        let s = if round.is_multiple_of(3) { &s[..cut] } else { &s[..] };
        let _ = read_all_lenient(s);
        if let Ok(fixed) = rechecksum(s) {
            let _ = read_all_lenient(&fixed);
        }
    }
    let junk: Vec<u8> = (0..5000).map(|_| next() as u8).collect();
    let _ = read_all_lenient(&junk);
}

fn record_offsets(stream: &[u8], order: ByteOrder) -> Vec<usize> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < stream.len() {
        out.push(pos);
        let mut hdr = [0u8; DRR_HEADER_SIZE];
        hdr.copy_from_slice(&stream[pos..pos + DRR_HEADER_SIZE]);
        let dec = decode_header_in(&hdr, order).expect("valid");
        pos += DRR_HEADER_SIZE + dec.payload_len as usize;
    }
    out
}

fn read_all_lenient(bytes: &[u8]) -> usize {
    let mut r = StreamReader::new(bytes);
    let mut n = 0;
    while let Ok(Some(_)) = r.next_record() {
        n += 1;
    }
    assert!(r.next_record().is_err() || r.bytes_read() == bytes.len() as u64);
    n
}
