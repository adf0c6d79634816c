//! Receive validation field by field, as OpenZFS's receive_object, receive_write and
//! receive_write_embedded (dmu_recv.c) check them: a valid stream with one field changed and
//! its checksums recomputed is refused with EINVAL and leaves no dataset behind, so only the
//! field check can have refused it; the boundary cases OpenZFS accepts are accepted.

use engine::dmu::recv::RecvOptions;
use engine::dmu::send::SendOptions;
use engine::error::RecvError;
use engine::limits::SPA_MAXBLOCKSIZE;
use engine::stream::record::{ByteOrder, DrrObject, Record, StreamReader, StreamWriter};
use engine::{Compress, DatasetProps, MemoryDevice, ObjectSpec, Spa, SpaConfig};

const MIB: u64 = 1 << 20;

/// A pool whose `tank/src@s` holds an object with two incompressible 4 KiB blocks and a
/// tiny compressible one (sent as WRITE_EMBEDDED with `-e`), and the records of its full
/// stream.
fn source() -> (Spa, Vec<Record>) {
    let mut spa = Spa::create(Box::new(MemoryDevice::new(64 * MIB)), "tank", SpaConfig::default())
        .expect("create");
    let props = DatasetProps { compress: Compress::Lz4, ..DatasetProps::default() };
    spa.dataset_create("tank/src", props).expect("dataset");
    let obj = spa.object_alloc("tank/src", &ObjectSpec::new(19, 4096, 26, 32)).expect("alloc");
    let noise: Vec<u8> =
        (0..8192u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    spa.write("tank/src", obj, 0, &noise).expect("write");
    spa.write("tank/src", obj, 3 * 4096, &[7; 64]).expect("write a tiny block");
    spa.snapshot("tank/src@s").expect("snapshot");
    let mut stream = Vec::new();
    let opts = SendOptions { embed: true, ..SendOptions::default() };
    spa.send("tank/src@s", None, &opts, &mut stream).expect("send");
    let mut r = StreamReader::new(&stream[..]);
    let mut recs = Vec::new();
    while let Some(rec) = r.next_record().expect("a valid stream") {
        recs.push(rec);
    }
    let embedded = recs.iter().filter(|r| matches!(r, Record::WriteEmbedded { .. })).count();
    assert_eq!(embedded, 1, "the tiny block goes out embedded");
    (spa, recs)
}

fn encode(recs: &[Record]) -> Vec<u8> {
    let mut w = StreamWriter::new(Vec::new(), ByteOrder::Little);
    for r in recs {
        w.write_record(r).expect("write to a Vec");
    }
    w.into_inner().expect("a Vec")
}

fn receive(spa: &mut Spa, name: &str, recs: &[Record]) -> Result<(), RecvError> {
    let stream = encode(recs);
    spa.recv(name, &mut stream.as_slice(), &RecvOptions::default()).map(|_| ())
}

/// A change to one record; true if it applied.
type Change = Box<dyn Fn(&mut Record) -> bool>;

/// A change to the first OBJECT record.
fn on_object(f: fn(&mut DrrObject)) -> Change {
    Box::new(move |r: &mut Record| match r {
        Record::Object { drr, .. } => {
            f(drr);
            true
        }
        _ => false,
    })
}

/// Each case changes one field of the first record of its kind.
fn mutated(recs: &[Record], change: &dyn Fn(&mut Record) -> bool) -> Vec<Record> {
    let mut out = recs.to_vec();
    let hit = out.iter_mut().any(change);
    assert!(hit, "the case found no record to change");
    out
}

#[test]
fn a_field_openzfs_refuses_is_refused_and_changes_nothing() {
    let (mut spa, recs) = source();
    let cases: Vec<(&str, Change)> = vec![
        ("OBJECT checksum type past the table", on_object(|d| d.checksumtype = 15)),
        ("OBJECT compression past the table", on_object(|d| d.compress = 200)),
        ("OBJECT nblkptr set in a non-raw stream", on_object(|d| d.nblkptr = 1)),
        ("OBJECT raw bonus length set in a non-raw stream", on_object(|d| d.raw_bonuslen = 32)),
        (
            "WRITE_EMBEDDED lsize past SPA_MAXBLOCKSIZE",
            Box::new(|r: &mut Record| match r {
                Record::WriteEmbedded { drr, .. } => {
                    drr.lsize = u32::try_from(SPA_MAXBLOCKSIZE).expect("fits") + 512;
                    drr.length = u64::from(drr.lsize);
                    true
                }
                _ => false,
            }),
        ),
    ];
    for (i, (what, change)) in cases.iter().enumerate() {
        let name = format!("tank/bad{i}");
        let err = receive(&mut spa, &name, &mutated(&recs, change.as_ref()))
            .expect_err(&format!("{what}: accepted"));
        assert!(matches!(err, RecvError::Invalid { .. }), "{what}: {err}");
        assert!(!spa.datasets().contains(&name), "{what}: a refused receive left {name}");
    }
    receive(&mut spa, "tank/good", &recs).expect("the unchanged stream is received");
}

/// OpenZFS refuses a WRITE only when it goes backwards: (object, offset) below the last
/// one. The same block written twice in a row is accepted, the second write winning.
#[test]
fn a_write_repeated_at_the_same_offset_is_accepted() {
    let (mut spa, recs) = source();
    let mut out = Vec::new();
    let mut repeated = false;
    for r in &recs {
        out.push(r.clone());
        if let (false, Record::Write { drr, data }) = (repeated, r) {
            let mut again = data.clone();
            again.iter_mut().for_each(|b| *b ^= 0xff);
            out.push(Record::Write { drr: *drr, data: again.clone() });
            repeated = true;
        }
    }
    assert!(repeated, "the stream has a WRITE");
    receive(&mut spa, "tank/twice", &out).expect("a repeated WRITE is accepted");
    let Some(Record::Write { drr, data }) =
        out.iter().filter(|r| matches!(r, Record::Write { .. })).nth(1)
    else {
        panic!("two WRITEs")
    };
    let got = spa.read("tank/twice@s", drr.object, drr.offset, drr.logical_size).expect("read");
    assert_eq!(&got, data, "the second WRITE wins");
}
