//! Dirty records: what each txg changed in one object, kept in memory until that txg syncs.
//! OpenZFS: dbuf.c (dbuf_dirty_record_t), dnode.c (dn_free_ranges, per-txg dnode state).
//! Used by dmu::objset (open context writes and reads, syncing context). Invariants: a dnode
//! holds at most one record per unsynced txg, oldest first; within a record, `reset` applies
//! first, then `frees`, then `blocks` (a block written after a free in the same txg lives in
//! `blocks`); `attrs` is the object's state at the end of that txg (ot 0 = freed).

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::dnode::{DnodeAttrs, DnodePhys};
use crate::limits::DNODE_BLOCK_SIZE;

/// A whole dirty block, shared (never mutated in place) so the intent log can keep a logged
/// write's data without copying it: a later change to the block makes a new buffer.
pub type BlockBuf = Arc<Vec<u8>>;

/// One txg's changes to one object.
#[derive(Clone, Debug)]
pub struct DirtyRecord {
    /// The txg these changes belong to.
    pub txg: u64,
    /// The object was (re)allocated or freed in this txg: older contents are discarded.
    pub reset: bool,
    /// Sorted, merged, half-open block-id ranges freed in this txg.
    pub frees: Vec<(u64, u64)>,
    /// Whole blocks written in this txg, by block id.
    pub blocks: BTreeMap<u64, BlockBuf>,
    /// Attributes at the end of the txg.
    pub attrs: DnodeAttrs,
}

impl DirtyRecord {
    /// An empty record for `txg` starting from `attrs`.
    #[must_use]
    pub fn new(txg: u64, attrs: DnodeAttrs) -> Self {
        Self { txg, reset: false, frees: Vec::new(), blocks: BTreeMap::new(), attrs }
    }

    /// Free block ids `[start, end)`: drop dirty blocks there and remember the range.
    pub fn free_blocks(&mut self, start: u64, end: u64) {
        assert!(start < end, "empty free range {start}..{end}");
        let doomed: Vec<u64> = self.blocks.range(start..end).map(|(&k, _)| k).collect();
        for k in doomed {
            self.blocks.remove(&k);
        }
        self.frees.push((start, end));
        self.frees.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(self.frees.len());
        for &(s, e) in &self.frees {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        self.frees = merged;
    }

    /// True if `blkid` was freed in this txg.
    #[must_use]
    pub fn frees_contain(&self, blkid: u64) -> bool {
        let i = self.frees.partition_point(|&(_, e)| e <= blkid);
        self.frees.get(i).is_some_and(|&(s, _)| s <= blkid)
    }
}

/// Where the current contents of a block come from.
#[derive(Debug)]
pub enum BlockSource<'a> {
    /// A dirty copy in memory.
    Dirty(&'a [u8]),
    /// A hole (freed or never written since a reset).
    Hole,
    /// The synced tree: look it up on disk.
    Synced,
}

/// An object in memory: its synced dnode and its unsynced records.
#[derive(Clone, Debug)]
pub struct Dnode {
    /// Object number.
    pub object: u64,
    /// The dnode as of the last synced txg.
    pub phys: DnodePhys,
    /// Unsynced records, oldest first, at most one per txg.
    pub dirty: Vec<DirtyRecord>,
}

impl Dnode {
    /// A dnode loaded from disk with no changes.
    #[must_use]
    pub fn new(object: u64, phys: DnodePhys) -> Self {
        Self { object, phys, dirty: Vec::new() }
    }

    /// Metadata bytes a change to blocks `first..=last` may dirty beyond the blocks
    /// themselves, for the space check (dmu_tx_count_write's estimate): every indirect block
    /// above them, in a tree as tall as the synced one or as `last` needs with one block
    /// pointer, and the dnode's block, two copies each.
    #[must_use]
    pub fn write_metadata_bytes(&self, first: u64, last: u64) -> u64 {
        assert!(first <= last, "empty block range {first}..={last}");
        let attrs = self.attrs();
        let epbs = attrs.epb_shift();
        let ind = 1u64 << attrs.indblkshift;
        let mut bytes = 2 * DNODE_BLOCK_SIZE;
        let mut level = 1u32;
        loop {
            let shift = epbs * level;
            let (a, b) = if shift >= 64 { (0, 0) } else { (first >> shift, last >> shift) };
            let tall_enough = (last >> (shift - epbs).min(63)) == 0;
            if tall_enough && level >= u32::from(self.phys.nlevels) {
                return bytes;
            }
            bytes += 2 * (b - a + 1) * ind;
            level += 1;
        }
    }

    /// The current attributes (newest record, else synced).
    #[must_use]
    pub fn attrs(&self) -> &DnodeAttrs {
        self.dirty.last().map_or(&self.phys.attrs, |r| &r.attrs)
    }

    /// True if the object exists in the current view.
    #[must_use]
    pub fn is_allocated(&self) -> bool {
        self.attrs().ot != 0
    }

    /// The record for `txg`, created from the current attributes if missing.
    pub fn record_mut(&mut self, txg: u64) -> &mut DirtyRecord {
        if self.dirty.last().is_none_or(|r| r.txg != txg) {
            assert!(self.dirty.last().is_none_or(|r| r.txg < txg), "record for an old txg {txg}");
            let attrs = self.attrs().clone();
            self.dirty.push(DirtyRecord::new(txg, attrs));
        }
        self.dirty.last_mut().expect("invariant: just pushed")
    }

    /// Where block `blkid` currently comes from.
    #[must_use]
    pub fn block_source(&self, blkid: u64) -> BlockSource<'_> {
        for rec in self.dirty.iter().rev() {
            if let Some(b) = rec.blocks.get(&blkid) {
                return BlockSource::Dirty(b);
            }
            if rec.reset || rec.frees_contain(blkid) {
                return BlockSource::Hole;
            }
        }
        if self.phys.is_free() {
            BlockSource::Hole
        } else {
            BlockSource::Synced
        }
    }

    /// Remove and return the record of `txg` if it is the oldest one.
    pub fn take_record(&mut self, txg: u64) -> Option<DirtyRecord> {
        if self.dirty.first().is_some_and(|r| r.txg == txg) {
            Some(self.dirty.remove(0))
        } else {
            assert!(self.dirty.iter().all(|r| r.txg != txg), "record {txg} is not the oldest");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn free_ranges_merge_and_drop_blocks() {
        let mut r = DirtyRecord::new(5, DnodeAttrs::new(19, 512, 14, 0, 0));
        r.blocks.insert(3, Arc::new(vec![1; 512]));
        r.blocks.insert(9, Arc::new(vec![1; 512]));
        r.free_blocks(2, 5);
        r.free_blocks(5, 8);
        r.free_blocks(20, 30);
        assert_eq!(r.frees, vec![(2, 8), (20, 30)]);
        assert!(!r.blocks.contains_key(&3));
        assert!(r.blocks.contains_key(&9));
        assert!(r.frees_contain(7) && !r.frees_contain(8) && r.frees_contain(29));
    }

    /// The estimate against its definition, computed the plain way: every indirect block
    /// above `first..=last` in a tree tall enough for `last` (one block pointer at the top)
    /// or as tall as the synced one, plus the dnode block, two copies each.
    #[test]
    fn write_metadata_bytes_counts_every_indirect_block_above_the_range() {
        const EPB: u64 = 32; // 4 KiB indirect blocks of 128-byte pointers
        let expected = |first: u64, last: u64, nlevels: u8| {
            let mut levels = u64::from(nlevels) - 1;
            while last >= EPB.pow(u32::try_from(levels).expect("small")) {
                levels += 1;
            }
            let blocks: u64 = (1..=levels)
                .map(|l| {
                    let span = EPB.pow(u32::try_from(l).expect("small"));
                    last / span - first / span + 1
                })
                .sum();
            2 * DNODE_BLOCK_SIZE + 2 * blocks * 4096
        };
        for nlevels in 1..=3u8 {
            let mut phys = DnodePhys::new(DnodeAttrs::new(19, 512, 12, 0, 0));
            phys.nlevels = nlevels;
            let dn = Dnode::new(1, phys);
            for (first, last) in
                [(0, 0), (0, 1), (1, 1), (5, 31), (31, 32), (0, 1023), (1024, 1024), (40, 5000)]
            {
                assert_eq!(
                    dn.write_metadata_bytes(first, last),
                    expected(first, last, nlevels),
                    "blocks {first}..={last} in a tree of {nlevels} levels"
                );
            }
        }
    }

    #[test]
    fn block_source_sees_newest_first() {
        let attrs = DnodeAttrs::new(19, 512, 14, 0, 0);
        let mut dn = Dnode::new(1, DnodePhys::new(attrs));
        dn.record_mut(5).blocks.insert(0, Arc::new(vec![1; 512]));
        dn.record_mut(6).free_blocks(0, 1);
        assert!(matches!(dn.block_source(0), BlockSource::Hole));
        dn.record_mut(6).blocks.insert(0, Arc::new(vec![2; 512]));
        assert!(matches!(dn.block_source(0), BlockSource::Dirty(b) if b[0] == 2));
        assert!(matches!(dn.block_source(1), BlockSource::Synced));
    }
}
