//! Target `recv_bytes`: raw fuzzer bytes received as a stream into the pool of the `fuzz/base`
//! streams. Input: any bytes, routed by their BEGIN (if any) to the dataset holding its source
//! snapshot, to its toname's dataset, or to `FUZZ_NEW_FS`; received again with every checksum
//! recomputed if they fail one. Must hold: no panic, and the checks of `receive_checked`.

use engine::dmu::recv::RecvOptions;
use engine::stream::record::{decode_header_in, DrrBegin, DRR_HEADER_SIZE};
use engine::stream::{rechecksum, ByteOrder, Record};
use engine::RecvError;

use super::recv_common::{fs_of, receive_checked, with_recv_pool, BaseKind, RecvBase, RecvCase};
use super::FUZZ_NEW_FS;

/// The BEGIN record at the start of `data`, if any (either byte order).
fn peek_begin(data: &[u8]) -> Option<DrrBegin> {
    let hdr: &[u8; DRR_HEADER_SIZE] = data.get(..DRR_HEADER_SIZE)?.try_into().ok()?;
    let order = ByteOrder::from_magic(hdr)?;
    match decode_header_in(hdr, order)?.record {
        Record::Begin { drr, .. } => Some(drr),
        _ => None,
    }
}

/// Where `recv_bytes` receives a stream: an incremental into the dataset holding its source
/// snapshot, a full stream into the dataset its toname names if that exists (EEXIST), else
/// into `FUZZ_NEW_FS`.
fn route(base: &RecvBase, begin: Option<&DrrBegin>) -> String {
    let Some(begin) = begin else { return FUZZ_NEW_FS.to_owned() };
    if begin.fromguid != 0 {
        return base.guids.get(&begin.fromguid).cloned().unwrap_or_else(|| FUZZ_NEW_FS.to_owned());
    }
    let toname = begin.toname_str();
    let fs = fs_of(&toname);
    if base.state.datasets.iter().any(|d| d == fs) {
        fs.to_owned()
    } else {
        FUZZ_NEW_FS.to_owned()
    }
}

/// Target `recv_bytes`: `data` is received as a stream into a pool holding one filesystem
/// with snapshots per `fuzz/base` stream (real OpenZFS fixtures and golden scenarios, so
/// their incrementals apply), routed by `route`. If it fails its checksums, it is received
/// once more with every checksum recomputed (`rechecksum`), so that mutations reach the
/// record validators. Never panics; a failure leaves everything as it was (tree roots and
/// space always, the target's manifests after a receive that got past BEGIN); a success
/// must read back, leave the rest alone, pass the integrity walk and round-trip, and is
/// then undone. Every check runs under libFuzzer as on replay.
pub fn recv_bytes(data: &[u8]) {
    with_recv_pool(BaseKind::Streams, |pool, base| {
        let begin = peek_begin(data);
        let fs = route(base, begin.as_ref());
        let fromguid = begin.as_ref().map_or(0, |b| b.fromguid);
        let opts = RecvOptions::default();
        let full_checks = true;
        let case = RecvCase { fs: &fs, fromguid, opts, expect: None, full_checks };
        if let Err(RecvError::Checksum { .. }) = receive_checked(pool, base, &case, data) {
            if let Ok(fixed) = rechecksum(data) {
                assert_eq!(fixed.len(), data.len(), "rechecksum changed the length");
                let _ = receive_checked(pool, base, &case, &fixed);
            }
        }
    });
}
