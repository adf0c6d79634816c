//! Scenarios that mirror the OpenZFS fixtures (`golden/fixtures/openzfs/*`, made by OpenZFS
//! 2.3.2 with compression on) and the OpenZFS wiki's walkthrough (Documentation/ZfsSend):
//! same objects, same shapes, the fixtures' bonus and block patterns and master-node salts.
//! `basic` reproduces its fixture's manifests byte for byte. Neighbours: mod.rs (catalog), content.rs.

use super::content::{
    fixture_bonus, fixture_file, microzap, sa_bonus, spec, OT_DIRECTORY, OT_FILE, OT_MASTER_NODE,
    OT_SA, OT_SA_ATTR_LAYOUTS, OT_SA_ATTR_REGISTRATION, OT_SA_MASTER_NODE, OT_UINT64_OTHER,
    OT_UNLINKED_SET, SA_BONUS_LEN, ZPL_DIRENT_REG,
};
use super::Builder;
use crate::GoldenError;

/// Block size of the fixtures' master node (a one-block microzap).
const MASTER_NODE_BLKSZ: u32 = 512;
/// ZPL version the master node records.
const ZPL_VERSION: u64 = 5;

/// Object 1, a master node as the fixtures have it: a microzap holding `VERSION = 5`.
pub fn master_node(b: &mut Builder, salt: u64) -> Result<(), GoldenError> {
    b.claim(1, &spec(OT_MASTER_NODE, MASTER_NODE_BLKSZ, 0, 0), &[])?;
    b.write(1, 0, &microzap(MASTER_NODE_BLKSZ, salt, &[("VERSION", ZPL_VERSION)]))
}

/// A fixture file: claim `obj` with block size `bs` and the fixture bonus of generation 1.
fn file(b: &mut Builder, obj: u64, bs: u32) -> Result<(), GoldenError> {
    b.claim(obj, &fixture_file(bs), &fixture_bonus(obj, 1))
}

/// `basic`: object 2 (512 B blocks) with `"123\n"` at 0; then `"456\n"` at 4, bonus bumped.
pub fn basic(b: &mut Builder) -> Result<(), GoldenError> {
    master_node(b, 0x39313)?;
    file(b, 2, 512)?;
    b.write(2, 0, b"123\n")?;
    b.snapshot("before")?;
    b.write(2, 4, b"456\n")?;
    b.bonus(2, OT_UINT64_OTHER, &fixture_bonus(2, 2))?;
    b.snapshot("after")
}

/// `holes`: A (16 K blocks, 16 blocks, block 12 a hole), B (4 K blocks 0 and 100 only),
/// C (3 x 128 K); then A: blocks 3-5 punched, 2000 B punched inside block 8, the last block
/// cut off (maxblkid 15 -> 14), block 12 written; B: block 0 punched; C: block 1 punched.
pub fn holes(b: &mut Builder) -> Result<(), GoldenError> {
    const A_BS: u32 = 16 << 10;
    const A_BS64: u64 = A_BS as u64;
    master_node(b, 0x483f3)?;
    file(b, 2, A_BS)?;
    b.blocks(2, A_BS, 0, 12)?;
    b.blocks(2, A_BS, 13, 3)?;
    file(b, 3, 4096)?;
    b.blocks(3, 4096, 0, 1)?;
    b.blocks(3, 4096, 100, 1)?;
    file(b, 4, 128 << 10)?;
    b.blocks(4, 128 << 10, 0, 3)?;
    b.snapshot("before")?;
    b.free(2, 3 * A_BS64, 3 * A_BS64)?;
    b.free(2, 8 * A_BS64 + A_BS64 / 2 - 1000, 2000)?;
    b.free(2, 15 * A_BS64, u64::MAX)?;
    b.fill(2, 12 * A_BS64, A_BS64, 1012)?;
    b.bonus(2, OT_UINT64_OTHER, &fixture_bonus(2, 2))?;
    b.free(3, 0, 4096)?;
    b.free(4, 128 << 10, 128 << 10)?;
    b.snapshot("after")
}

/// `truncate`: A 10 x 8 K -> 3 x 8 K + 100 B; B 4 x 4 K -> 0; C 1 x 128 K -> 5000 B;
/// D 8 x 4 K -> 2 blocks, then block 6 written; E 3 x 4 K untouched (control).
pub fn truncate(b: &mut Builder) -> Result<(), GoldenError> {
    master_node(b, 0x1c233)?;
    for (obj, bs, count) in [(2, 8192, 10), (3, 4096, 4), (4, 128 << 10, 1), (5, 4096, 8)] {
        file(b, obj, bs)?;
        b.blocks(obj, bs, 0, count)?;
    }
    file(b, 6, 4096)?;
    b.blocks(6, 4096, 0, 3)?;
    b.snapshot("before")?;
    b.free(2, 3 * 8192 + 100, u64::MAX)?;
    b.bonus(2, OT_UINT64_OTHER, &fixture_bonus(2, 2))?;
    b.free(3, 0, u64::MAX)?;
    b.free(4, 5000, u64::MAX)?;
    b.free(5, 2 * 4096, u64::MAX)?;
    b.fill(5, 6 * 4096, 4096, 1006)?;
    b.snapshot("after")
}

/// `freeobjects`: objects 2-65, block sizes 512 B-4 K in turn, 1-3 blocks, every fifth
/// without a bonus; then every third object, objects 21-37 and 63-65 freed, and objects
/// 66 and 67 (8 K blocks) created, as the fixture's allocator numbered them.
pub fn freeobjects(b: &mut Builder) -> Result<(), GoldenError> {
    master_node(b, 0x267d3)?;
    for obj in 2..=65u64 {
        let bs = 512u32 << ((obj - 2) % 4);
        if (obj - 2) % 5 == 0 {
            b.claim(obj, &spec(OT_FILE, bs, 0, 0), &[])?;
        } else {
            file(b, obj, bs)?;
        }
        b.blocks(obj, bs, 0, (obj - 2) % 3 + 1)?;
    }
    b.snapshot("before")?;
    let doomed = (2..=65u64).filter(|o| o % 3 == 0 || (21..=37).contains(o) || *o >= 63);
    for obj in doomed {
        b.free_object(obj)?;
    }
    for obj in [66, 67] {
        file(b, obj, 8192)?;
        b.blocks(obj, 8192, 0, 1)?;
    }
    b.snapshot("after")
}

/// `wiki`: the walkthrough's filesystem. @before: a ZPL-like skeleton (1 master node,
/// 2 unlinked set, 3 SA master node, 4 root directory, 5-6 SA registration and layouts,
/// 7 shares directory); @after: file 8 with `"123\n"` and its entry `tmp` in the root
/// directory, as `echo 123 > /send-test/tmp` leaves it. The incremental re-sends objects 1-8
/// (one changed dnode block) and writes objects 4 and 8, as the walkthrough's dump shows.
pub fn wiki(b: &mut Builder) -> Result<(), GoldenError> {
    const BS: u32 = 512;
    const T0: u64 = crate::SCENARIO_EPOCH_SECS;
    let zap = |salt: u64, entries: &[(&str, u64)]| microzap(BS, salt, entries);
    let master = [
        ("DELETE_QUEUE", 2),
        ("ROOT", 4),
        ("SA_ATTRS", 3),
        ("SHARES", 7),
        ("VERSION", ZPL_VERSION),
    ];
    let zaps: [(u64, u8, Vec<u8>); 5] = [
        (1, OT_MASTER_NODE, zap(0x5a1, &master)),
        (2, OT_UNLINKED_SET, zap(0x5a2, &[])),
        (3, OT_SA_MASTER_NODE, zap(0x5a3, &[("LAYOUTS", 6), ("REGISTRY", 5)])),
        (5, OT_SA_ATTR_REGISTRATION, zap(0x5a5, &[("ZPL_MODE", 0x8_0005), ("ZPL_SIZE", 0x8_0006)])),
        (6, OT_SA_ATTR_LAYOUTS, zap(0x5a6, &[("2", 0x0002_0000_0000)])),
    ];
    for (obj, ot, block) in &zaps {
        b.claim(*obj, &spec(*ot, BS, 0, 0), &[])?;
        b.write(*obj, 0, block)?;
    }
    let dir = spec(OT_DIRECTORY, BS, OT_SA, SA_BONUS_LEN);
    b.claim(4, &dir, &sa_bonus(0o40755, 2, 4, 4, T0))?;
    b.write(4, 0, &zap(0x5a4, &[]))?;
    b.claim(7, &dir, &sa_bonus(0o40555, 2, 7, 7, T0))?;
    b.write(7, 0, &zap(0x5a7, &[]))?;
    b.snapshot("before")?;
    let t1 = T0 + super::SNAPSHOT_INTERVAL_SECS;
    b.claim(8, &spec(OT_FILE, BS, OT_SA, SA_BONUS_LEN), &sa_bonus(0o100644, 4, 9, 4, t1))?;
    b.write(8, 0, b"123\n")?;
    b.write(4, 0, &zap(0x5a4, &[("tmp", 8 | ZPL_DIRENT_REG)]))?;
    b.bonus(4, OT_SA, &sa_bonus(0o40755, 3, 4, 4, t1))?;
    b.snapshot("after")
}
