//! The real OpenZFS streams in golden/fixtures/openzfs against our stream layer: `dump -v`
//! must print byte for byte what OpenZFS's own `zstream dump -v` printed, StreamReader must
//! accept every stream, rechecksum must be the identity on them, and the embedded LZ4 blocks
//! must decompress to the manifest's contents.

use std::fs;
use std::path::{Path, PathBuf};

use engine::stream::dump::{dump, DumpOptions};
use engine::stream::record::{rechecksum, Record, StreamReader};
use engine::zio::checksum::sha256;
use engine::zio::compress::lz4_decompress;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../golden/fixtures/openzfs");

/// Every `*.zstream` under the fixture folders, sorted.
fn streams() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let root = Path::new(FIXTURES);
    let dirs = fs::read_dir(root).unwrap_or_else(|e| panic!("{FIXTURES}: {e}"));
    for dir in dirs {
        let dir = dir.expect("fixture dir entry").path();
        if !dir.is_dir() {
            continue;
        }
        for f in fs::read_dir(&dir).expect("fixture folder") {
            let p = f.expect("fixture entry").path();
            if p.extension().is_some_and(|e| e == "zstream") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn hex(c: [u64; 4]) -> String {
    c.iter().map(|w| format!("{w:016x}")).collect()
}

#[test]
fn dump_v_matches_zstream_dump_on_every_fixture() {
    let all = streams();
    assert_eq!(all.len(), 15, "expected 5 folders x 3 streams in {FIXTURES}");
    for path in all {
        let stream = fs::read(&path).expect("read stream");
        let want = fs::read(path.with_extension("zstream.dump.txt")).expect("read dump");
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let opts = DumpOptions { verbose: 1, ..DumpOptions::default() };
        let status = dump(&mut &stream[..], &opts, &mut out, &mut err).expect("write to Vec");
        assert_eq!(status, 0, "{}", path.display());
        assert!(err.is_empty(), "{}: {}", path.display(), String::from_utf8_lossy(&err));
        if out != want {
            let got = String::from_utf8_lossy(&out);
            let exp = String::from_utf8_lossy(&want);
            let line = got.lines().zip(exp.lines()).position(|(a, b)| a != b);
            panic!(
                "{}: dump differs at line {line:?}\n--- got\n{got}\n--- want\n{exp}",
                path.display()
            );
        }
    }
}

#[test]
fn stream_reader_accepts_every_fixture_and_rechecksum_is_identity() {
    for path in streams() {
        let stream = fs::read(&path).expect("read stream");
        let mut r = StreamReader::new(&stream[..]);
        let mut n = 0u64;
        let mut ends = 0;
        while let Some(rec) = r.next_record().unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        {
            n += 1;
            ends += u32::from(matches!(rec, Record::End(_)));
        }
        assert!(!r.is_byteswapped(), "fixtures are little-endian");
        assert_eq!(r.bytes_read(), stream.len() as u64, "{}", path.display());
        assert_eq!((r.records_read(), ends), (n, 1), "{}", path.display());
        let again = rechecksum(&stream).expect("framing");
        assert!(again == stream, "{}: rechecksum changed bytes", path.display());
    }
}

#[test]
fn embedded_lz4_blocks_decompress_to_the_manifest_contents() {
    let path = Path::new(FIXTURES).join("basic-ec/full-before.zstream");
    let stream = fs::read(&path).expect("read stream");
    let manifest = fs::read_to_string(Path::new(FIXTURES).join("basic-ec/manifest-before.txt"))
        .expect("read manifest");
    let mut r = StreamReader::new(&stream[..]);
    let mut seen = Vec::new();
    while let Some(rec) = r.next_record().expect("valid fixture") {
        let Record::WriteEmbedded { drr, data } = rec else { continue };
        assert_eq!(drr.compression, 15);
        assert!(data[drr.psize as usize..].iter().all(|&b| b == 0), "padding is zero");
        let block = lz4_decompress(&data[..drr.psize as usize], drr.lsize as usize)
            .unwrap_or_else(|e| panic!("object {}: {e}", drr.object));
        assert_eq!(block.len(), 512);
        let digest = hex(sha256(&block));
        let line = manifest
            .lines()
            .find(|l| l.starts_with(&format!("obj={} ", drr.object)))
            .expect("object in manifest");
        assert!(line.contains(&format!("sha256={digest}")), "object {}: {digest}", drr.object);
        if drr.object == 2 {
            assert!(block.starts_with(b"123\n"));
            assert!(digest.starts_with("5a3e37f7"));
        }
        seen.push((drr.object, drr.psize));
    }
    assert_eq!(seen, vec![(1, 45), (2, 20)]);
}

#[test]
fn dump_d_shows_the_file_block_as_hex_and_ascii() {
    let stream = fs::read(Path::new(FIXTURES).join("basic/full-before.zstream")).expect("read");
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let opts = DumpOptions { dump_payload: true, ..DumpOptions::default() };
    assert_eq!(dump(&mut &stream[..], &opts, &mut out, &mut err).expect("vec"), 0);
    let out = String::from_utf8(out).expect("ascii");
    let line = " 31 32 33 0a  00 00 00 00  00 00 00 00  00 00 00 00   123. .... .... ....\n";
    assert!(out.contains(line), "{out}");
    // -d implies -vv: every non-BEGIN record line is followed by its stored checksum.
    let checksums = out.lines().filter(|l| l.starts_with("    checksum = ")).count();
    let records = out.lines().find_map(|l| l.strip_prefix("\tTotal records = "));
    assert_eq!(Some((checksums + 1).to_string().as_str()), records);
}
