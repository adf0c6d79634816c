//! Space allocation: a free-extent map with next-fit allocation and deferred frees.
//! OpenZFS: metaslab.c, range_tree.c, TXG_DEFER_SIZE in txg.h. Called by zio (alloc on
//! write, free on COW replace) and spa (rebuild at import, release after each sync).
//! State is rebuildable: import reconstructs it from every reachable block plus the
//! persisted deferred-free lists, so no space map is written. Invariants: extents never
//! overlap; allocated + deferred + free == capacity; a block freed in txg N is not handed
//! out again before txg N + TXG_DEFER_SIZE has synced.

use std::collections::BTreeMap;

use crate::limits::{SPA_MINBLOCKSIZE, TXG_DEFER_SIZE};
use crate::zio::blkptr::Dva;

/// The allocator of one device region `[start, end)`.
#[derive(Debug, Clone)]
pub struct Metaslab {
    start: u64,
    end: u64,
    /// Free extents: offset -> length, both in bytes, coalesced.
    free: BTreeMap<u64, u64>,
    free_bytes: u64,
    /// Freed but not yet reusable: txg of the free -> extents.
    defer: BTreeMap<u64, Vec<Dva>>,
    defer_bytes: u64,
    /// Next-fit cursor: allocation starts looking here, so sequential writes stay contiguous.
    cursor: u64,
}

impl Metaslab {
    /// An allocator whose whole region is free.
    #[must_use]
    pub fn new(start: u64, end: u64) -> Self {
        assert!(start < end, "empty region {start}..{end}");
        assert_eq!(start % SPA_MINBLOCKSIZE, 0);
        assert_eq!(end % SPA_MINBLOCKSIZE, 0);
        let mut free = BTreeMap::new();
        free.insert(start, end - start);
        Self {
            start,
            end,
            free,
            free_bytes: end - start,
            defer: BTreeMap::new(),
            defer_bytes: 0,
            cursor: start,
        }
    }

    /// Bytes the region holds.
    #[must_use]
    pub const fn capacity(&self) -> u64 {
        self.end - self.start
    }

    /// Bytes available for allocation now.
    #[must_use]
    pub const fn free_bytes(&self) -> u64 {
        self.free_bytes
    }

    /// Bytes freed but waiting out their defer period.
    #[must_use]
    pub const fn deferred_bytes(&self) -> u64 {
        self.defer_bytes
    }

    /// Bytes allocated (referenced by some tree), excluding deferred frees.
    #[must_use]
    pub const fn allocated_bytes(&self) -> u64 {
        self.capacity() - self.free_bytes - self.defer_bytes
    }

    /// Deferred frees by txg, for persistence in the MOS and for integrity checks.
    #[must_use]
    pub const fn deferred(&self) -> &BTreeMap<u64, Vec<Dva>> {
        &self.defer
    }

    /// Allocate `size` bytes (a sector multiple), next-fit from the cursor. `avoid` is an
    /// extent the new one must not share (for ditto copies) -- we simply require the copy
    /// to start at another offset, which next-fit guarantees.
    pub fn alloc(&mut self, size: u64) -> Option<Dva> {
        assert!(size > 0 && size.is_multiple_of(SPA_MINBLOCKSIZE), "bad alloc size {size}");
        let found =
            self.find_from(self.cursor, size).or_else(|| self.find_from(self.start, size))?;
        let len = self.free.remove(&found).expect("invariant: found extent exists");
        assert!(len >= size, "extent {found}+{len} too small for {size}");
        if len > size {
            self.free.insert(found + size, len - size);
        }
        self.free_bytes -= size;
        self.cursor = found + size;
        Some(Dva { offset: found, asize: size })
    }

    /// Allocate a ditto copy of `size` bytes at least a quarter of the region away from
    /// `first`, so one damaged area of the device cannot hold both copies (OpenZFS spreads
    /// ditto blocks across the vdev for the same reason). Falls back to any free extent at
    /// least an eighth away, then to anywhere.
    pub fn alloc_ditto(&mut self, size: u64, first: Dva) -> Option<Dva> {
        let cap = self.capacity();
        let far = self.start + (first.offset - self.start + cap / 2) % cap;
        let min_gap = cap / 8;
        let ok = |off: u64| off.abs_diff(first.offset) >= min_gap;
        // Prefer carving the copy out of the free extent that spans the far point itself
        // (on a fresh pool the only free extent starts right after the first copy).
        let far_aligned = far - far % crate::limits::SPA_MINBLOCKSIZE;
        if let Some((&off, &len)) = self.free.range(..=far_aligned).next_back() {
            if off + len >= far_aligned + size && ok(far_aligned) {
                self.free.remove(&off);
                if far_aligned > off {
                    self.free.insert(off, far_aligned - off);
                }
                let tail = off + len - (far_aligned + size);
                if tail > 0 {
                    self.free.insert(far_aligned + size, tail);
                }
                self.free_bytes -= size;
                return Some(Dva { offset: far_aligned, asize: size });
            }
        }
        let found = self
            .free
            .range(far..)
            .chain(self.free.range(..far))
            .find(|(&off, &len)| len >= size && ok(off))
            .map(|(&off, _)| off)
            .or_else(|| self.find_from(self.start, size))?;
        let len = self.free.remove(&found).expect("invariant: found extent exists");
        if len > size {
            self.free.insert(found + size, len - size);
        }
        self.free_bytes -= size;
        Some(Dva { offset: found, asize: size })
    }

    fn find_from(&self, from: u64, size: u64) -> Option<u64> {
        self.free.range(from..).find(|(_, &len)| len >= size).map(|(&off, _)| off)
    }

    /// Return an extent to the free map at once (used for never-committed allocations and
    /// when a defer period ends).
    pub fn free_now(&mut self, dva: Dva) {
        assert!(dva.offset >= self.start && dva.offset + dva.asize <= self.end, "{dva:?} outside");
        let (mut off, mut len) = (dva.offset, dva.asize);
        if let Some((&p_off, &p_len)) = self.free.range(..off).next_back() {
            assert!(p_off + p_len <= off, "double free of {dva:?} (overlaps {p_off}+{p_len})");
            if p_off + p_len == off {
                self.free.remove(&p_off);
                off = p_off;
                len += p_len;
            }
        }
        if let Some((&n_off, &n_len)) = self.free.range(dva.offset..).next() {
            assert!(dva.offset + dva.asize <= n_off, "double free of {dva:?} (overlaps {n_off})");
            if dva.offset + dva.asize == n_off {
                self.free.remove(&n_off);
                len += n_len;
            }
        }
        self.free.insert(off, len);
        self.free_bytes += dva.asize;
    }

    /// Free an extent in `txg`: it becomes reusable after `txg + TXG_DEFER_SIZE` syncs.
    pub fn free_deferred(&mut self, txg: u64, dva: Dva) {
        assert!(dva.is_valid());
        self.defer.entry(txg).or_default().push(dva);
        self.defer_bytes += dva.asize;
    }

    /// Txg `synced_txg` has committed: release frees whose defer period is over.
    pub fn sync_done(&mut self, synced_txg: u64) {
        let keep_from = synced_txg.saturating_sub(TXG_DEFER_SIZE - 1);
        let released: Vec<u64> = self.defer.range(..keep_from).map(|(&t, _)| t).collect();
        for txg in released {
            for dva in self.defer.remove(&txg).expect("invariant: key listed") {
                self.defer_bytes -= dva.asize;
                self.free_now(dva);
            }
        }
    }

    /// Mark an extent allocated while rebuilding state at import. Returns false if any part
    /// of it is not free (a block referenced twice, or outside the region).
    pub fn claim(&mut self, dva: Dva) -> bool {
        if dva.offset < self.start || dva.offset.saturating_add(dva.asize) > self.end {
            return false;
        }
        let Some((&f_off, &f_len)) = self.free.range(..=dva.offset).next_back() else {
            return false;
        };
        if f_off + f_len < dva.offset + dva.asize {
            return false;
        }
        self.free.remove(&f_off);
        if dva.offset > f_off {
            self.free.insert(f_off, dva.offset - f_off);
        }
        let tail = f_off + f_len - (dva.offset + dva.asize);
        if tail > 0 {
            self.free.insert(dva.offset + dva.asize, tail);
        }
        self.free_bytes -= dva.asize;
        true
    }

    /// Mark an extent as a deferred free at import (it was persisted in the defer lists).
    pub fn claim_deferred(&mut self, txg: u64, dva: Dva) -> bool {
        if !self.claim(dva) {
            return false;
        }
        self.defer.entry(txg).or_default().push(dva);
        self.defer_bytes += dva.asize;
        true
    }

    /// True if `[offset, offset+len)` is entirely free.
    #[must_use]
    pub fn is_free(&self, offset: u64, len: u64) -> bool {
        self.free.range(..=offset).next_back().is_some_and(|(&o, &l)| o + l >= offset + len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alloc_free_coalesces_and_conserves_space() {
        let mut ms = Metaslab::new(1024, 1024 + 64 * 512);
        let a = ms.alloc(1024).expect("a");
        let b = ms.alloc(2048).expect("b");
        assert_eq!(b.offset, a.offset + 1024, "next-fit keeps allocations contiguous");
        assert_eq!(ms.allocated_bytes(), 3072);
        ms.free_deferred(10, a);
        assert_eq!(ms.deferred_bytes(), 1024);
        ms.sync_done(10 + TXG_DEFER_SIZE - 2);
        assert_eq!(ms.deferred_bytes(), 1024, "still deferred");
        ms.sync_done(10 + TXG_DEFER_SIZE);
        assert_eq!(ms.deferred_bytes(), 0);
        ms.free_now(b);
        assert_eq!(ms.free_bytes(), ms.capacity());
        assert!(ms.is_free(1024, ms.capacity()));
    }

    /// With the far point taken, a ditto copy still keeps an eighth of the region away from
    /// the first copy (the fault model's one damage window must not hold both): a free
    /// extent right next to the first copy is passed over for one farther away.
    #[test]
    fn a_ditto_copy_keeps_its_distance_when_the_far_point_is_taken() {
        const CAP: u64 = 1 << 20;
        let mut ms = Metaslab::new(0, CAP);
        let first = ms.alloc(4096).expect("first copy");
        assert_eq!(first.offset, 0);
        let (near, farther) = (8192, 3 * CAP / 8);
        for (offset, end) in [(4096, near), (near + 4096, farther), (farther + 4096, CAP)] {
            assert!(ms.claim(Dva { offset, asize: end - offset }), "claim {offset}..{end}");
        }
        let ditto = ms.alloc_ditto(4096, first).expect("a ditto copy");
        assert_eq!(ditto.offset, farther, "{ditto:?}");
    }

    #[test]
    fn full_region_returns_none() {
        let mut ms = Metaslab::new(0, 4096);
        assert!(ms.alloc(4096).is_some());
        assert!(ms.alloc(512).is_none());
    }

    #[test]
    fn claim_detects_double_reference() {
        let mut ms = Metaslab::new(0, 8192);
        assert!(ms.claim(Dva { offset: 1024, asize: 1024 }));
        assert!(!ms.claim(Dva { offset: 1536, asize: 512 }), "overlap must be refused");
        assert!(!ms.claim(Dva { offset: 8192, asize: 512 }), "outside must be refused");
        assert_eq!(ms.allocated_bytes(), 1024);
    }

    #[test]
    #[should_panic(expected = "double free")]
    fn double_free_panics() {
        let mut ms = Metaslab::new(0, 8192);
        let a = ms.alloc(512).expect("a");
        ms.free_now(a);
        ms.free_now(a);
    }
}
