//! The historical send/receive bugs of zfs-send-stream.md §6 that are checked on streams
//! rather than by a scenario's round trip: #5/#6 (FREEOBJECTS bound, and old senders' huge
//! counts accepted), #7 (dn_slots = 0 means 1), #16 (WRITE_EMBEDDED padding is zero), #27
//! (blocks near the largest offset), #29 (`dump -C` prints records). #1-#4 are catalog
//! scenarios (roundtrip.rs), #15 is the two-hop compressed round trip, #17 is in
//! atomicity.rs, #23 in roundtrip.rs (big-endian). Not applicable to this engine: spill
//! (#10-12), raw (#19, #21, #22, #26), large blocks (#13, #14), large dnodes (#8, #9, #25),
//! compound streams (#18), resume (#20, #28), redaction (#24).

mod common;

use common::{pool, recv_ok, COPY};
use engine::dmu::object::ObjectSpec;
use engine::dmu::send::SendOptions;
use engine::stream::dump::DumpOptions;
use engine::stream::record::{
    dmu_versioninfo, DrrBegin, DrrEnd, DrrFree, DrrFreeObjects, DrrObject, DrrWrite,
    DMU_BACKUP_FEATURE_SA_SPILL, DMU_OBJECT_END, DMU_SUBSTREAM, DRR_FLAG_FREERECORDS,
    DRR_FLAG_SPILL_BLOCK, DRR_HEADER_SIZE, DRR_WRITE,
};
use engine::stream::{ByteOrder, Record, StreamWriter};
use engine::{DatasetProps, DmuError};
use golden::check::{
    decode, dump_text, dump_v, embedded_padding_violations, freeobjects_violations, meta_maxobj,
    record_spans, summary,
};

/// §6 #5/#6: no FREEOBJECTS reaches past 32 x (meta-dnode maxblkid + 1), in any stream of
/// any scenario, with any options or byte order.
#[test]
fn every_freeobjects_stays_within_the_meta_dnode() {
    let option_sets = [
        SendOptions::default(),
        SendOptions { embed: true, compressed: true, ..SendOptions::default() },
        SendOptions { byte_order: ByteOrder::Big, ..SendOptions::default() },
    ];
    for name in golden::names() {
        let mut sc = golden::build(name).expect("build");
        for opts in &option_sets {
            let streams = golden::streams(&mut sc, opts);
            for s in streams.named(&sc) {
                let maxobj = meta_maxobj(&mut sc.spa, &sc.snapshots[s.to]).expect("maxobj");
                let records = decode(s.bytes).expect("decode");
                let bad = freeobjects_violations(&records, maxobj);
                assert!(bad.is_empty(), "{name} {} {opts:?}: {bad:?}", s.stem);
            }
        }
    }
}

/// §6 #16: WRITE_EMBEDDED payloads are zero-padded, in every scenario sent with `-e`; the
/// `bug-embedded-padding` scenario has payloads whose psize is not a multiple of 8.
#[test]
fn write_embedded_padding_is_zero() {
    let opts = SendOptions { embed: true, ..SendOptions::default() };
    let mut unaligned = 0;
    for name in golden::names() {
        let mut sc = golden::build(name).expect("build");
        let streams = golden::streams(&mut sc, &opts);
        for s in streams.named(&sc) {
            let records = decode(s.bytes).expect("decode");
            let bad = embedded_padding_violations(&records);
            assert!(bad.is_empty(), "{name} {}: {bad:?}", s.stem);
            if *name == "bug-embedded-padding" {
                unaligned += records
                    .iter()
                    .filter(
                        |r| matches!(r, Record::WriteEmbedded { drr, .. } if drr.psize % 8 != 0),
                    )
                    .count();
            }
        }
    }
    assert!(unaligned >= 3, "bug-embedded-padding has only {unaligned} unaligned psizes");
}

/// A full stream of filesystem `pool/h@s` made by hand from `records` (between BEGIN and
/// END), checksummed by the engine's writer.
fn handmade(records: &[Record]) -> Vec<u8> {
    let toguid = 0x7e57_0000_0000_0007;
    let mut begin = DrrBegin {
        versioninfo: dmu_versioninfo(DMU_SUBSTREAM, DMU_BACKUP_FEATURE_SA_SPILL),
        creation_time: 0x6600_0000,
        objset_type: 2,
        flags: DRR_FLAG_FREERECORDS | DRR_FLAG_SPILL_BLOCK,
        toguid,
        ..DrrBegin::default()
    };
    begin.set_toname("pool/h@s");
    let mut w = StreamWriter::new(Vec::new(), ByteOrder::Little);
    w.write_record(&Record::Begin { drr: begin, payload: Vec::new() }).expect("BEGIN");
    for r in records {
        w.write_record(r).expect("record");
    }
    w.write_record(&Record::End(DrrEnd { checksum: [0; 4], toguid })).expect("END");
    w.into_inner().expect("flush")
}

/// OBJECT 1 (a 512 B file) with `dn_slots`, its FREE-to-end and one WRITE of `data`.
fn one_file(dn_slots: u8, data: &[u8]) -> Vec<Record> {
    let object =
        DrrObject { object: 1, object_type: 19, blksz: 512, dn_slots, ..DrrObject::default() };
    let mut block = data.to_vec();
    block.resize(512, 0);
    let write = DrrWrite {
        object: 1,
        object_type: 19,
        logical_size: 512,
        checksumtype: 2,
        ..DrrWrite::default()
    };
    vec![
        Record::Object { drr: object, bonus: Vec::new() },
        Record::Free(DrrFree { object: 1, offset: 512, length: DMU_OBJECT_END, toguid: 0 }),
        Record::Write { drr: write, data: block },
    ]
}

/// §6 #7: streams from senders without large_dnode carry `drr_dn_slots = 0`, meaning 1.
#[test]
fn object_with_dn_slots_zero_is_received_as_one_slot() {
    let mut records = one_file(0, b"dn_slots = 0\n");
    records.push(Record::FreeObjects(DrrFreeObjects { firstobj: 2, numobjs: 30, toguid: 0 }));
    let stream = handmade(&records);
    let dump = dump_v(&stream);
    assert!(dump.complaints().is_empty(), "{:?}", dump.complaints());
    assert!(dump.stdout.contains("blksz = 512 bonuslen = 0 dn_slots = 0 "), "{}", dump.stdout);
    let mut spa = pool(0x07);
    let snap = recv_ok(&mut spa, COPY, &stream, "dn_slots 0");
    assert_eq!(spa.objects(&snap).expect("objects"), vec![1]);
    assert_eq!(&spa.read(&snap, 1, 0, 13).expect("read")[..], b"dn_slots = 0\n");
}

/// §6 #6: 0.8-era senders wrote the trailing FREEOBJECTS with numobjs = 2^64 - 1 - firstobj
/// (the zvol sample: firstobj 3, numobjs 18446744073709551612); receivers accept it.
#[test]
fn old_huge_freeobjects_counts_are_accepted() {
    let mut records = one_file(1, b"old sender\n");
    let numobjs = u64::MAX - 3;
    records.push(Record::FreeObjects(DrrFreeObjects { firstobj: 3, numobjs, toguid: 0 }));
    let stream = handmade(&records);
    let dump = dump_v(&stream);
    assert!(dump.stdout.contains("FREEOBJECTS firstobj = 3 numobjs = 18446744073709551612"));
    let mut spa = pool(0x06);
    let snap = recv_ok(&mut spa, COPY, &stream, "huge FREEOBJECTS");
    assert_eq!(spa.objects(&snap).expect("objects"), vec![1]);
}

/// §6 #27: a sparse object with its last block just below the engine's largest offset
/// (DMU_MAX_OFFSET = 2^62; OpenZFS's bug was near 2^63 for exabyte files): FREE offsets
/// and lengths must not overflow, and full + incremental streams round-trip.
#[test]
fn blocks_near_the_largest_offset_roundtrip() {
    const MAX_OFFSET: u64 = engine::limits::DMU_MAX_OFFSET;
    const BS: u64 = 128 << 10;
    let mut spa = pool(0x27);
    let fs = "pool/fs";
    spa.dataset_create(fs, DatasetProps::default()).expect("dataset");
    spa.object_claim(fs, 2, &ObjectSpec::new(19, BS as u32, 0, 0)).expect("claim");
    spa.write(fs, 2, 0, b"first block").expect("write at 0");
    spa.write(fs, 2, MAX_OFFSET - BS, b"last block").expect("write the last block");
    let err = spa.write(fs, 2, MAX_OFFSET - 4, b"past the end");
    assert!(matches!(err, Err(DmuError::OffsetOverflow { .. })), "{err:?}");
    spa.snapshot("pool/fs@before").expect("snapshot");
    spa.write(fs, 2, MAX_OFFSET / 2, b"middle").expect("write the middle");
    spa.free_range(fs, 2, 0, BS).expect("punch block 0");
    spa.snapshot("pool/fs@after").expect("snapshot");
    let opts = SendOptions::default();
    let full = golden::send(&mut spa, "pool/fs@before", None, &opts).expect("full");
    let incr =
        golden::send(&mut spa, "pool/fs@after", Some("pool/fs@before"), &opts).expect("incr");
    for stream in [&full, &incr] {
        let dump = dump_v(stream);
        assert!(dump.complaints().is_empty(), "{:?}", dump.complaints());
        assert!(dump
            .stdout
            .contains(&format!("FREE object = 2 offset = {MAX_OFFSET} length = -1")));
    }
    let mut dst = pool(0x72);
    recv_ok(&mut dst, COPY, &full, "full near 2^62");
    let got = recv_ok(&mut dst, COPY, &incr, "incremental near 2^62");
    let info = dst.object_info(&got, 2).expect("object 2");
    assert_eq!(info.maxblkid, MAX_OFFSET / BS - 1);
    assert_eq!(&dst.read(&got, 2, MAX_OFFSET - BS, 10).expect("read")[..], b"last block");
    assert_eq!(&dst.read(&got, 2, MAX_OFFSET / 2, 6).expect("read")[..], b"middle");
    assert_eq!(dst.read(&got, 2, 0, 11).expect("read"), vec![0; 11]);
    let resent = golden::send(&mut dst, &got, None, &opts).expect("re-send");
    let source = golden::send(&mut spa, "pool/fs@after", None, &opts).expect("full after");
    assert_eq!(
        summary(&decode(&resent).expect("re-sent")),
        summary(&decode(&source).expect("src"))
    );
}

/// §6 #29: `zstream dump -C` does no checksum work, so a stream with a corrupted payload
/// still prints every record (and without -C the corruption is reported).
#[test]
fn dump_without_checksums_prints_every_record_of_a_corrupt_stream() {
    let mut sc = golden::build("basic").expect("build");
    let streams = golden::streams(&mut sc, &SendOptions::default());
    let mut bad = streams.full_before.clone();
    let write = *record_spans(&bad)
        .expect("spans")
        .iter()
        .find(|s| s.drr_type == DRR_WRITE)
        .expect("WRITE");
    bad[write.start + DRR_HEADER_SIZE + 1] ^= 0x01;
    let no_checksum = DumpOptions { verbose: 1, no_checksum: true, ..DumpOptions::default() };
    let clean = dump_text(&streams.full_before, &no_checksum);
    let corrupt = dump_text(&bad, &no_checksum);
    assert!(corrupt.complaints().is_empty(), "{:?}", corrupt.complaints());
    assert_eq!(corrupt.stdout, clean.stdout);
    assert!(!dump_v(&bad).complaints().is_empty(), "the corruption goes unnoticed with checksums");
}

/// OpenZFS stores a block uncompressed (BP compress OFF) when its compressed size, rounded
/// up to whole sectors, saves nothing (zio_write_compress); so no WRITE's key says LZ4 with
/// psize = lsize (what OpenZFS 2.3 sends for such a block is `props = 200000000`).
#[test]
fn blocks_that_do_not_shrink_are_stored_uncompressed() {
    let mut found = Vec::new();
    for name in golden::names() {
        let mut sc = golden::build(name).expect("build");
        let streams = golden::streams(&mut sc, &SendOptions::default());
        for s in streams.named(&sc) {
            for rec in decode(s.bytes).expect("decode") {
                let Record::Write { drr, .. } = rec else { continue };
                let prop = drr.key.prop;
                let (lsize, psize, comp) =
                    (prop & 0xffff, (prop >> 16) & 0xffff, (prop >> 32) & 0x7f);
                if comp == 15 && psize >= lsize && drr.checksumtype != 2 {
                    found.push(format!(
                        "{name} {}: object {} offset {}",
                        s.stem, drr.object, drr.offset
                    ));
                }
            }
        }
    }
    assert!(found.is_empty(), "LZ4 blocks that did not shrink: {found:?}");
}
