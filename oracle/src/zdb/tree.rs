//! Walking one tree: the objset block, the meta-dnode's tree, each dnode block's dnodes and
//! their trees, every pointer (holes included) checked for place, size and birth, every
//! copy of every block read and verified. OpenZFS: dmu_traverse.c (traverse_visitbp),
//! zdb.c (zdb_blkptr_cb). Part of `zdb`; uses phys.rs and cksum.rs, never the engine's code.
//! Invariants: a copy is descended at most once (keyed by its DVA offset), so recursion
//! and work are bounded by the device size; depth is bounded by DN_MAX_LEVELS per tree.

use engine::limits::{DNODES_PER_BLOCK, DNODE_SIZE};

use super::phys::{self, Bp, DnodePhys, BP_BYTES, DMU_OT_DNODE, DMU_OT_OBJSET, OBJSET_PHYS_BYTES};
use super::{cksum, At, Seen, Tree, Walker, Want, OBJSET_OBJECT, WALK_POINTERS_MAX};
use crate::integrity::{BlockError, Problem};

/// How a block's first reference went.
enum Claim {
    /// First time seen: read and descend.
    New,
    /// The same pointer again (a block shared by snapshots and head): already walked.
    Shared,
    /// Another pointer names the same copy: reported, not descended.
    Conflict,
}

impl Walker<'_> {
    /// Walk the objset named by `root` (a snapshot or a head).
    pub(super) fn walk_objset(&mut self, t: &Tree, root: &Bp) {
        self.f.report.trees += 1;
        let at = At { object: OBJSET_OBJECT, level: 0, blkid: 0 };
        let lsize = u32::try_from(OBJSET_PHYS_BYTES).ok();
        let want = Want { lsize, ot: Some(DMU_OT_OBJSET) };
        let Some(raw) = self.block(t, at, root, want, u64::MAX) else { return };
        match phys::decode_objset(&raw) {
            Ok(os) => {
                self.objset_zil.insert(root.dva[0].offset, os.zil);
                self.dnode_tree(t, 0, &os.meta, root.birth);
            }
            Err(why) => {
                self.malformed::<()>(t, at, why);
            }
        }
    }

    fn dnode_tree(&mut self, t: &Tree, object: u64, dn: &DnodePhys, birth: u64) {
        assert!(dn.nlevels >= 1, "decode_dnode guarantees a level");
        assert!(dn.blkptr.len() <= engine::limits::DN_MAX_NBLKPTR);
        let top = dn.nlevels - 1;
        for (i, bp) in dn.blkptr.iter().enumerate() {
            self.subtree(t, object, dn, At { object, level: top, blkid: i as u64 }, bp, birth);
        }
    }

    fn subtree(&mut self, t: &Tree, object: u64, dn: &DnodePhys, at: At, bp: &Bp, birth: u64) {
        let lsize = if at.level == 0 { dn.blksz } else { 1u32 << dn.indblkshift };
        let ot = (object == 0).then_some(DMU_OT_DNODE);
        let Some(data) = self.block(t, at, bp, Want { lsize: Some(lsize), ot }, birth) else {
            return;
        };
        if at.level > 0 {
            assert_eq!(data.len(), lsize as usize, "block() checked lsize");
            let epb = 1u64 << dn.epb_shift();
            for (i, raw) in data.chunks_exact(BP_BYTES).enumerate() {
                let id = at.blkid.checked_mul(epb).and_then(|b| b.checked_add(i as u64));
                let child = At { object, level: at.level - 1, blkid: id.unwrap_or(u64::MAX) };
                match (id, phys::decode_bp(raw)) {
                    (None, _) => {
                        self.malformed::<()>(t, child, "block id overflows");
                        return;
                    }
                    (_, Err(why)) => {
                        self.malformed::<()>(t, child, why);
                    }
                    (_, Ok(c)) => self.subtree(t, object, dn, child, &c, bp.birth),
                }
            }
        } else if object == 0 {
            self.dnode_block(t, at.blkid, &data, bp.birth);
        }
    }

    /// The dnodes of one block of the meta-dnode, each with its tree.
    fn dnode_block(&mut self, t: &Tree, blkid: u64, data: &[u8], birth: u64) {
        for (slot, raw) in data.chunks_exact(DNODE_SIZE as usize).enumerate() {
            let Some(object) = blkid.checked_mul(DNODES_PER_BLOCK).map(|b| b + slot as u64) else {
                self.malformed::<()>(t, At { object: 0, level: 0, blkid }, "object overflows");
                return;
            };
            let at = At { object, level: 0, blkid: 0 };
            match phys::decode_dnode(raw) {
                Ok(None) => {}
                Ok(Some(_)) if object == 0 => {
                    self.malformed::<()>(t, at, "slot 0 of the meta-dnode holds an object");
                }
                Ok(Some(dn)) => {
                    self.f.report.dnodes += 1;
                    self.dnode_tree(t, object, &dn, birth);
                }
                Err(why) => {
                    self.malformed::<()>(t, at, why);
                }
            }
        }
    }

    /// Check one pointer and, for a block seen for the first time, read and verify every
    /// copy. Returns its logical contents when the caller should descend into it.
    pub(super) fn block(
        &mut self,
        t: &Tree,
        at: At,
        bp: &Bp,
        want: Want,
        parent_birth: u64,
    ) -> Option<Vec<u8>> {
        if self.stopped {
            return None;
        }
        self.f.report.pointers += 1;
        if self.f.report.pointers > WALK_POINTERS_MAX {
            self.stopped = true;
            self.f.problem(Problem::Limit { what: "block pointers walked" });
            return None;
        }
        self.births(t, at, bp, parent_birth);
        if bp.is_hole() {
            self.f.report.holes += 1;
            return None;
        }
        if bp.level != at.level {
            return self.malformed(t, at, "block level differs from its place in the tree");
        }
        if want.lsize.is_some_and(|l| l != bp.lsize) {
            return self.malformed(t, at, "block lsize differs from its object's");
        }
        if want.ot.is_some_and(|ot| ot != bp.ot) {
            return self.malformed(t, at, "block type differs from its place");
        }
        if bp.embedded {
            self.count(bp);
            self.f.report.embedded += 1;
            let payload = &bp.payload[..bp.psize as usize];
            return self.decoded(t, at, bp, payload);
        }
        match self.claim(t, bp) {
            Claim::New => self.count(bp),
            Claim::Shared | Claim::Conflict => return None,
        }
        self.read_copies(t, at, bp)
    }

    fn count(&mut self, bp: &Bp) {
        let r = &mut self.f.report;
        r.blocks += 1;
        *r.blocks_by_level.entry(bp.level).or_default() += 1;
        r.lsize_bytes += u64::from(bp.lsize);
        r.asize_bytes += bp.copies().map(|d| d.asize).sum::<u64>();
    }

    /// Birth txgs: not after the parent, the uberblock, or the snapshot.
    fn births(&mut self, t: &Tree, at: At, bp: &Bp, parent_birth: u64) {
        if bp.birth > parent_birth {
            self.birth_problem(t, at, bp.birth, parent_birth, "after its parent");
        }
        if bp.birth > self.ub_txg {
            self.birth_problem(t, at, bp.birth, self.ub_txg, "after the uberblock's txg");
        } else if t.snapshot && bp.birth > t.limit {
            self.birth_problem(t, at, bp.birth, t.limit, "after its snapshot");
        }
    }

    /// Record the copies of `bp`. A copy already named by the same pointer is a block
    /// shared by trees of one dataset (walked once); named by another pointer, by another
    /// dataset, or twice in one tree, it is a double reference.
    fn claim(&mut self, t: &Tree, bp: &Bp) -> Claim {
        let first = bp.dva[0];
        assert!(first.asize != 0, "claim of a hole");
        if let Some(s) = self.seen.get(&first.offset).cloned() {
            let same_owner = s.owner == t.owner && s.tree != t.index;
            if s.bp == *bp && same_owner {
                self.seen.get_mut(&first.offset).expect("just read").tree = t.index;
                self.f.report.shared += 1;
                return Claim::Shared;
            }
            let earlier = self.trees.get(s.tree).cloned().unwrap_or_default();
            let (dva, later) = (first, t.name.clone());
            self.f.problem(Problem::DoubleReference { dva, first: earlier, second: later });
            return Claim::Conflict;
        }
        for d in bp.copies() {
            let s = Seen { asize: d.asize, bp: *bp, owner: t.owner, tree: t.index };
            if let Some(old) = self.seen.insert(d.offset, s) {
                let earlier = self.trees.get(old.tree).cloned().unwrap_or_default();
                let (dva, later) = (d, t.name.clone());
                self.f.problem(Problem::DoubleReference { dva, first: earlier, second: later });
                debug_assert!(old.asize != 0);
                return Claim::Conflict;
            }
            self.space.blocks.push(d);
        }
        Claim::New
    }

    /// Read every copy in full, verify each against the checksum, decompress a good one.
    fn read_copies(&mut self, t: &Tree, at: At, bp: &Bp) -> Option<Vec<u8>> {
        let psize = bp.psize as usize;
        let mut good: Option<Vec<u8>> = None;
        for dva in bp.copies() {
            assert!(dva.asize >= psize as u64, "decode_bp checked asize >= psize");
            let Some(buf) = self.read(dva.offset, dva.asize) else {
                self.unreadable(t, at, bp.birth, BlockError::Io { dva });
                continue;
            };
            self.f.report.copies_verified += 1;
            self.f.report.bytes_read += dva.asize;
            if !cksum::verifies(bp, &buf[..psize]) {
                self.unreadable(t, at, bp.birth, BlockError::Checksum { dva });
                continue;
            }
            good = good.or(Some(buf));
        }
        let Some(stored) = good else {
            if bp.level > 0 || at.object == 0 || at.object == OBJSET_OBJECT {
                self.f.lost_parents += 1;
            }
            return None;
        };
        self.decoded(t, at, bp, &stored[..psize])
    }

    fn decoded(&mut self, t: &Tree, at: At, bp: &Bp, stored: &[u8]) -> Option<Vec<u8>> {
        match cksum::decompress(bp, stored) {
            Ok(data) => Some(data),
            Err(why) => {
                self.unreadable(t, at, bp.birth, BlockError::Decompress { why });
                None
            }
        }
    }
}
