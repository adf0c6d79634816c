//! Scenarios about tree and object-set shapes: reallocated object numbers, deep sparse
//! trees, the empty objset, a three-snapshot chain, and many dnode blocks. Neighbours:
//! mod.rs (catalog), content.rs, fixtures.rs (`master_node`).

use engine::dmu::object::ObjectSpec;

use super::content::{
    fixture_bonus, fixture_file, microzap, spec, FIXTURE_BONUS_LEN, OT_FILE, OT_PLAIN_OTHER,
    OT_UINT64_OTHER, OT_ZAP_OTHER,
};
use super::fixtures::master_node;
use super::Builder;
use crate::GoldenError;

/// `realloc`: object numbers reused with other attributes between the snapshots.
/// Object 2: freed and claimed again in the same txg as a uint64 object with 1 K blocks,
/// no bonus, one block at blkid 5. Object 3: reclaimed in place with 8 K blocks and a 64 B
/// bonus. Object 4: reclaimed with the same block size but a new type and bonus, and no
/// data (the receiver keeps contents of same-size objects and relies on FREE records).
/// Object 5: reclaimed as a ZAP (metadata). Object 6: new.
pub fn realloc(b: &mut Builder) -> Result<(), GoldenError> {
    master_node(b, 0x7ea1)?;
    b.claim(2, &fixture_file(4096), &fixture_bonus(2, 1))?;
    b.blocks(2, 4096, 0, 3)?;
    b.claim(3, &spec(OT_FILE, 512, 0, 0), &[])?;
    b.blocks(3, 512, 0, 4)?;
    b.claim(
        4,
        &spec(OT_PLAIN_OTHER, 128 << 10, OT_UINT64_OTHER, FIXTURE_BONUS_LEN),
        &fixture_bonus(4, 1),
    )?;
    b.blocks(4, 128 << 10, 0, 1)?;
    b.claim(5, &fixture_file(8192), &fixture_bonus(5, 1))?;
    b.blocks(5, 8192, 0, 5)?;
    b.snapshot("before")?;
    b.free_object(2)?;
    b.claim(2, &spec(OT_UINT64_OTHER, 1024, 0, 0), &[])?;
    b.blocks(2, 1024, 5, 1)?;
    let bonus64: Vec<u8> = [fixture_bonus(3, 2), fixture_bonus(3, 3)].concat();
    b.reclaim(3, &spec(OT_FILE, 8192, OT_UINT64_OTHER, bonus64.len()), &bonus64)?;
    b.blocks(3, 8192, 0, 1)?;
    b.reclaim(4, &fixture_file(128 << 10), &fixture_bonus(4, 2))?;
    b.reclaim(5, &spec(OT_ZAP_OTHER, 8192, 0, 0), &[])?;
    b.write(5, 0, &microzap(8192, 0x7ea5, &[("reused", 5)]))?;
    b.claim(6, &fixture_file(512), &fixture_bonus(6, 1))?;
    b.blocks(6, 512, 0, 2)?;
    b.snapshot("after")
}

/// `large`: object 2 (128 K blocks, 16 K indirects) with blocks at 0, 16 MiB (a second L1)
/// and 1 GiB + 128 K (a second L2 entry); object 3 (512 B blocks, 4 K indirects of 32
/// pointers) with blocks up to 64 MiB - 512, five levels deep. @after: object 2 gets a block
/// in a new L1 past 1 GiB and loses the one at 16 MiB (its L1 becomes a hole); object 3 has
/// a whole L2 span punched then one block written inside it, and its last block rewritten;
/// object 4 is new, one block at 256 MiB (every level above it born in this txg).
pub fn large(b: &mut Builder) -> Result<(), GoldenError> {
    const BIG: u32 = 128 << 10;
    const SMALL: u32 = 512;
    master_node(b, 0x1a26e)?;
    b.claim(2, &fixture_file(BIG), &fixture_bonus(2, 1))?;
    for blkid in [0, 128, 8193] {
        b.blocks(2, BIG, blkid, 1)?;
    }
    let deep = ObjectSpec { indblkshift: 12, ..spec(OT_FILE, SMALL, 0, 0) };
    b.claim(3, &deep, &[])?;
    b.blocks(3, SMALL, 0, 40)?;
    for blkid in [1000, 1030, 1500, 40_000, 131_071] {
        b.blocks(3, SMALL, blkid, 1)?;
    }
    b.snapshot("before")?;
    b.blocks(2, BIG, 8192 + 200, 1)?;
    b.free(2, 128 * u64::from(BIG), u64::from(BIG))?;
    b.free(3, 1024 * u64::from(SMALL), 1024 * u64::from(SMALL))?;
    b.fill(3, 1500 * u64::from(SMALL), u64::from(SMALL), 91500)?;
    b.fill(3, 131_071 * u64::from(SMALL), u64::from(SMALL), 9_131_071)?;
    b.claim(4, &spec(OT_FILE, BIG, 0, 0), &[])?;
    b.blocks(4, BIG, 2048, 1)?;
    b.snapshot("after")
}

/// `empty`: no objects at all; two snapshots with nothing in between.
pub fn empty(b: &mut Builder) -> Result<(), GoldenError> {
    b.snapshot("before")?;
    b.snapshot("after")
}

/// `chain`: @a: object 2 (4 K, 4 blocks), object 3 (512 B, 2 blocks); @b: object 2 block 1
/// rewritten and bonus bumped, object 4 (16 K, 2 blocks) created; @c: object 3 freed,
/// object 2 cut to 4106 bytes, object 4 extended to block 5.
pub fn chain(b: &mut Builder) -> Result<(), GoldenError> {
    master_node(b, 0xc4a1)?;
    b.claim(2, &fixture_file(4096), &fixture_bonus(2, 1))?;
    b.blocks(2, 4096, 0, 4)?;
    b.claim(3, &fixture_file(512), &fixture_bonus(3, 1))?;
    b.blocks(3, 512, 0, 2)?;
    b.snapshot("a")?;
    b.fill(2, 4096, 4096, 101)?;
    b.bonus(2, OT_UINT64_OTHER, &fixture_bonus(2, 2))?;
    b.claim(4, &fixture_file(16 << 10), &fixture_bonus(4, 1))?;
    b.blocks(4, 16 << 10, 0, 2)?;
    b.snapshot("b")?;
    b.free_object(3)?;
    b.free(2, 4096 + 10, u64::MAX)?;
    b.blocks(4, 16 << 10, 5, 1)?;
    b.snapshot("c")
}

/// `many-objects`: objects 2-200 (512 B blocks; every fourth without data, every fifth
/// without bonus) over dnode blocks 0-6. @after: objects 64-95 (all of dnode block 2)
/// freed, every seventh of 100-195 and 196-200 freed, object 10 rewritten, and objects
/// 70 and 126 (reused numbers), 300 and 301 (dnode block 9, past two dnode-block holes)
/// claimed.
pub fn many_objects(b: &mut Builder) -> Result<(), GoldenError> {
    master_node(b, 0x3a2f)?;
    for obj in 2..=200u64 {
        if obj % 5 == 0 {
            b.claim(obj, &spec(OT_FILE, 512, 0, 0), &[])?;
        } else {
            b.claim(obj, &fixture_file(512), &fixture_bonus(obj, 1))?;
        }
        if obj % 4 != 0 {
            b.blocks(obj, 512, 0, 1)?;
        }
    }
    b.snapshot("before")?;
    let doomed = (64..=95u64).chain((100..=195).filter(|o| o % 7 == 0)).chain(196..=200);
    for obj in doomed {
        b.free_object(obj)?;
    }
    b.fill(10, 0, 512, 10_000)?;
    for obj in [70, 126, 300, 301] {
        b.claim(obj, &fixture_file(512), &fixture_bonus(obj, 2))?;
        b.blocks(obj, 512, 0, 1)?;
    }
    b.snapshot("after")
}

/// `recv`: a receive on the pool that crashes (`zsim explore recv`): files of several block
/// sizes, @before received in full as `pool/copy`, then writes, a punch, a truncation, a
/// new and a freed object, @after, and the incremental received into `pool/copy`.
pub fn recv(b: &mut Builder) -> Result<(), GoldenError> {
    master_node(b, 0x7ec5)?;
    b.claim(2, &fixture_file(4096), &fixture_bonus(2, 1))?;
    b.blocks(2, 4096, 0, 6)?;
    b.claim(3, &fixture_file(128 << 10), &fixture_bonus(3, 1))?;
    b.blocks(3, 128 << 10, 0, 2)?;
    b.claim(4, &spec(OT_FILE, 512, 0, 0), &[])?;
    b.blocks(4, 512, 0, 3)?;
    b.snapshot("before")?;
    b.send_receive("before", None, "copy")?;
    b.fill(2, 4096 + 100, 300, 0x7e)?;
    b.free(2, 3 * 4096, 4096)?;
    b.free(3, 64 << 10, u64::MAX)?;
    b.free_object(4)?;
    b.claim(5, &fixture_file(8192), &fixture_bonus(5, 1))?;
    b.blocks(5, 8192, 0, 2)?;
    b.snapshot("after")?;
    b.send_receive("after", Some("before"), "copy")
}
