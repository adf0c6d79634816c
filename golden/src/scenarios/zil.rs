//! Intent-log scenarios: changes made durable by fsync alone, a crash, and replay at import.
//! OpenZFS: zil.c (replay), the ZIL tests of ztest. Neighbours: mod.rs (Builder).

use engine::dmu::object::ObjectSpec;

use super::fixtures::master_node;
use super::Builder;
use crate::GoldenError;

const OT_PLAIN_FILE: u8 = 19;
const OT_UINT64_OTHER: u8 = 26;
const BIG_BS: u32 = 128 << 10;

fn file_spec(bs: u32) -> ObjectSpec {
    ObjectSpec::new(OT_PLAIN_FILE, bs, OT_UINT64_OTHER, 32)
}

/// `zil-replay`: @before holds two files; then fsynced changes of every logged kind, one
/// change that is never fsynced, a crash, an import that replays the log, and @after.
pub fn replay(b: &mut Builder) -> Result<(), GoldenError> {
    master_node(b, 0x2117)?;
    b.claim(2, &file_spec(4096), &[1; 32])?;
    b.claim(3, &file_spec(BIG_BS), &[2; 32])?;
    b.fill(2, 0, 5 * 4096, 0x21)?;
    b.snapshot("before")?;
    b.write(2, 100, b"fsynced: copied into the log")?;
    b.fill(3, 0, 2 * u64::from(BIG_BS), 0x22)?;
    b.free(2, 3 * 4096 + 10, u64::MAX)?;
    b.bonus(2, OT_UINT64_OTHER, &[3; 32])?;
    b.claim(4, &file_spec(512), &[4; 32])?;
    b.write(4, 0, b"created and fsynced")?;
    b.fsync(3)?;
    b.write(2, 200, b"lost: never fsynced")?;
    b.crash_and_import()?;
    let replayed = b.spa.import_report().replayed.get(&b.fs).copied().unwrap_or(0);
    assert_eq!(replayed, 7, "every fsynced operation replays, the unsynced one does not");
    let lost = b.spa.read(&b.fs, 2, 200, 19)?;
    assert_ne!(lost, b"lost: never fsynced", "a change never fsynced survived the crash");
    b.snapshot("after")
}
