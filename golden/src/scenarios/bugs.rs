//! Regression scenarios for the historical send/receive bugs of zfs-send-stream.md §6 that
//! apply to this engine (no spill, raw, dedup, large dnodes or large blocks). Each builder
//! names its bug; the round-trip tests (full + incremental must equal the source) catch it.
//! Bugs checked on every stream, or with handcrafted streams, live in golden/tests/.

use engine::dmu::object::ObjectSpec;

use super::content::{fixture_bonus, fixture_file, spec, OT_FILE};
use super::fixtures::master_node;
use super::Builder;
use crate::GoldenError;

/// §6 #1 (openzfs #4050, #4369): a file is deleted and its object number reused by a sparse
/// file of the same type and block size, so the receiver keeps the old object's blocks and
/// only FREE records for the new object's never-written (birth 0) holes clear them.
/// Object 2: deleted in one txg, reused in the next; object 3: both in the same txg.
pub fn hole_birth_reuse(b: &mut Builder) -> Result<(), GoldenError> {
    master_node(b, 0xb001)?;
    for obj in [2, 3] {
        b.claim(obj, &fixture_file(4096), &fixture_bonus(obj, 1))?;
        b.blocks(obj, 4096, 0, 8)?;
    }
    b.snapshot("before")?;
    b.free_object(2)?;
    b.sync()?;
    b.claim(2, &fixture_file(4096), &fixture_bonus(2, 2))?;
    b.fill(2, 7 * 4096, 4096, 207)?;
    b.free_object(3)?;
    b.claim(3, &fixture_file(4096), &fixture_bonus(3, 2))?;
    b.fill(3, 3 * 4096, 4096, 303)?;
    b.snapshot("after")
}

/// §6 #2 (#4023, #4809): a whole L1 span is punched (the L1 becomes a hole), then one block
/// inside it is written, so the L1 comes back with fresh L0 holes that must still carry
/// the punch's birth and be sent. Object 2: punch and write in different txgs; object 3:
/// in the same txg. 512 B blocks and 4 K indirects: one L1 spans 32 blocks.
pub fn hole_birth_indirect(b: &mut Builder) -> Result<(), GoldenError> {
    const SPAN_BYTES: u64 = 32 * 512;
    let small = ObjectSpec { indblkshift: 12, ..spec(OT_FILE, 512, 0, 0) };
    master_node(b, 0xb002)?;
    for obj in [2, 3] {
        b.claim(obj, &small, &[])?;
        b.blocks(obj, 512, 0, 128)?;
    }
    b.snapshot("before")?;
    b.free(2, SPAN_BYTES, SPAN_BYTES)?;
    b.free(2, 2 * SPAN_BYTES, 2 * SPAN_BYTES)?;
    b.sync()?;
    b.fill(2, SPAN_BYTES + 8 * 512, 512, 240)?;
    b.fill(2, 3 * SPAN_BYTES + 31 * 512, 512, 2127)?;
    b.free(3, SPAN_BYTES, SPAN_BYTES)?;
    b.fill(3, SPAN_BYTES + 20 * 512, 512, 352)?;
    b.snapshot("after")
}

/// §6 #3 (#4996, #5030, #7746): truncate, then write past the old end in the same txg, so
/// the truncated range's holes and the extension are born together. Object 2: 16 x 4 K cut
/// to one block, then block 20 written; object 3: cut to zero, then block 2 written;
/// object 4: cut inside block 3, then more of block 3 and block 9 written.
pub fn hole_birth_truncate_extend(b: &mut Builder) -> Result<(), GoldenError> {
    master_node(b, 0xb003)?;
    for (obj, bs, count) in [(2, 4096, 16), (3, 512, 8), (4, 4096, 6)] {
        b.claim(obj, &fixture_file(bs), &fixture_bonus(obj, 1))?;
        b.blocks(obj, bs, 0, count)?;
    }
    b.snapshot("before")?;
    b.free(2, 4096, u64::MAX)?;
    b.fill(2, 20 * 4096, 4096, 220)?;
    b.free(3, 0, u64::MAX)?;
    b.fill(3, 2 * 512, 512, 302)?;
    b.free(4, 3 * 4096 + 100, u64::MAX)?;
    b.fill(4, 3 * 4096 + 2000, 1024, 403)?;
    b.fill(4, 9 * 4096, 4096, 409)?;
    b.snapshot("after")
}

/// §6 #4 (#6694, #6695): f1, f2, f3 are objects 2, 3, 4; f2 removed before @before, f3
/// after. The incremental's FREEOBJECTS starts at the missing f2, and a receiver that
/// advanced twice there left f3 alive. After full(@before) + incr(@after), f3 is gone.
pub fn freeobjects_double_advance(b: &mut Builder) -> Result<(), GoldenError> {
    master_node(b, 0xb004)?;
    for obj in 2..=4 {
        b.claim(obj, &fixture_file(512), &fixture_bonus(obj, 1))?;
        b.blocks(obj, 512, 0, 1)?;
    }
    b.free_object(3)?;
    b.snapshot("before")?;
    b.free_object(4)?;
    b.snapshot("after")
}

/// §6 #16 (#13778): blocks small and compressible enough to be embedded in their block
/// pointers, with compressed sizes that are not multiples of 8, so WRITE_EMBEDDED payloads
/// (sent with `SendOptions { embed: true, .. }`) carry padding that must be zero.
pub fn embedded_padding(b: &mut Builder) -> Result<(), GoldenError> {
    master_node(b, 0xb016)?;
    b.claim(2, &spec(OT_FILE, 512, 0, 0), &[])?;
    b.write(2, 0, b"123\n")?;
    b.claim(3, &spec(OT_FILE, 4096, 0, 0), &[])?;
    b.write(3, 0, &b"zoracle-".repeat(512))?;
    b.write(3, 4096, b"a")?;
    b.snapshot("before")?;
    b.write(2, 4, b"4567\n")?;
    b.write(3, 8192, &b"embedded padding must be zero; ".repeat(4))?;
    b.snapshot("after")
}
