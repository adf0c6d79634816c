//! Open-context object operations: allocate, claim, reclaim, free, read, write, free_range,
//! bonus. OpenZFS: dmu_object.c, dmu.c (dmu_read, dmu_write, dmu_free_range), dnode.c
//! (dnode_free_range: partial blocks zeroed, whole blocks freed, truncation lowers maxblkid).
//! Called by the Spa façade with the open txg; writes land in that txg's dirty records and
//! reach disk when it syncs. Every argument is validated here and gets a typed DmuError;
//! a failed call changes nothing.

use crate::dbuf::BlockSource;
use crate::dmu::objset::Objset;
use crate::dmu::ot::{bonustype_is_valid, ot_is_valid};
use crate::dnode::sync::lookup;
use crate::dnode::{nblkptr_for_bonus, DnodeAttrs};
use crate::error::DmuError;
use crate::limits::{
    DMU_MAX_ACCESS, DMU_MAX_OFFSET, DMU_OBJECT_END, DN_DFL_INDBLKSHIFT, DN_MAX_BONUSLEN,
    DN_MAX_INDBLKSHIFT, DN_MAX_OBJECT, DN_MIN_INDBLKSHIFT, SPA_MAXBLOCKSIZE, SPA_MINBLOCKSIZE,
};
use crate::zio::Zio;

/// What a new object looks like: the arguments of dmu_object_alloc.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectSpec {
    /// DMU object type.
    pub ot: u8,
    /// Data block size (power of two, 512..=128 KiB; receive also allows 512-multiples).
    pub blksz: u32,
    /// log2 of the indirect block size (0 = default).
    pub indblkshift: u8,
    /// Bonus type.
    pub bonustype: u8,
    /// Bonus length.
    pub bonuslen: usize,
}

impl ObjectSpec {
    /// A spec with the default indirect block size.
    #[must_use]
    pub fn new(ot: u8, blksz: u32, bonustype: u8, bonuslen: usize) -> Self {
        Self { ot, blksz, indblkshift: 0, bonustype, bonuslen }
    }

    /// Validate and turn into attributes. `any_multiple` admits non-power-of-two sizes
    /// (receive of single-block objects, as OpenZFS streams carry them).
    ///
    /// # Errors
    /// `InvalidType`, `InvalidBlockSize`, `InvalidIndBlkShift`, `BonusTooLong`.
    pub fn to_attrs(&self, any_multiple: bool) -> Result<DnodeAttrs, DmuError> {
        if !ot_is_valid(self.ot) {
            return Err(DmuError::InvalidType { ot: self.ot });
        }
        if !bonustype_is_valid(self.bonustype) {
            return Err(DmuError::InvalidType { ot: self.bonustype });
        }
        let bs = u64::from(self.blksz);
        let shape_ok = if any_multiple { bs % SPA_MINBLOCKSIZE == 0 } else { bs.is_power_of_two() };
        if !(SPA_MINBLOCKSIZE..=SPA_MAXBLOCKSIZE).contains(&bs) || !shape_ok {
            return Err(DmuError::InvalidBlockSize { blocksize: bs });
        }
        let ibs =
            if self.indblkshift == 0 { DN_DFL_INDBLKSHIFT } else { u32::from(self.indblkshift) };
        if !(DN_MIN_INDBLKSHIFT..=DN_MAX_INDBLKSHIFT).contains(&ibs) {
            return Err(DmuError::InvalidIndBlkShift { indblkshift: ibs });
        }
        if self.bonuslen > DN_MAX_BONUSLEN {
            return Err(DmuError::BonusTooLong { len: self.bonuslen, max: DN_MAX_BONUSLEN });
        }
        let ibs = u8::try_from(ibs).expect("invariant: <= 17");
        Ok(DnodeAttrs::new(self.ot, self.blksz, ibs, self.bonustype, self.bonuslen))
    }
}

fn check_object(object: u64) -> Result<(), DmuError> {
    if object == 0 || object >= DN_MAX_OBJECT {
        return Err(DmuError::InvalidObject { object });
    }
    Ok(())
}

fn check_range(offset: u64, len: u64) -> Result<u64, DmuError> {
    match offset.checked_add(len) {
        Some(end) if end <= DMU_MAX_OFFSET => Ok(end),
        _ => Err(DmuError::OffsetOverflow { offset, len }),
    }
}

impl Objset {
    fn writable(&self) -> Result<(), DmuError> {
        if self.read_only {
            return Err(DmuError::ReadOnly("snapshot".into()));
        }
        Ok(())
    }

    /// Allocate the lowest free object number with `attrs` in `txg`.
    ///
    /// # Errors
    /// Read errors; the objset is read-only.
    pub fn object_alloc(
        &mut self,
        zio: &mut Zio,
        txg: u64,
        attrs: DnodeAttrs,
    ) -> Result<u64, DmuError> {
        self.writable()?;
        let object = self.lowest_free();
        check_object(object)?;
        self.object_claim(zio, txg, object, attrs)?;
        Ok(object)
    }

    /// Allocate object number `object` (which must be free) with `attrs` in `txg`.
    ///
    /// # Errors
    /// `ObjectExists`, `InvalidObject`, read errors.
    pub fn object_claim(
        &mut self,
        zio: &mut Zio,
        txg: u64,
        object: u64,
        attrs: DnodeAttrs,
    ) -> Result<(), DmuError> {
        self.writable()?;
        check_object(object)?;
        let dn = self.dnode(zio, object)?;
        if dn.is_allocated() {
            return Err(DmuError::ObjectExists { object });
        }
        let rec = dn.record_mut(txg);
        rec.reset = true;
        rec.blocks.clear();
        rec.frees.clear();
        rec.attrs = attrs;
        self.mark_dirty(txg, object);
        self.set_allocated(object, true);
        Ok(())
    }

    /// Re-create an allocated object with new attributes, discarding its contents.
    ///
    /// # Errors
    /// `NoSuchObject`, `InvalidObject`, read errors.
    pub fn object_reclaim(
        &mut self,
        zio: &mut Zio,
        txg: u64,
        object: u64,
        attrs: DnodeAttrs,
    ) -> Result<(), DmuError> {
        self.writable()?;
        check_object(object)?;
        let dn = self.hold(zio, object)?;
        let rec = dn.record_mut(txg);
        rec.reset = true;
        rec.blocks.clear();
        rec.frees.clear();
        rec.attrs = attrs;
        self.mark_dirty(txg, object);
        Ok(())
    }

    /// Change type, bonus type and bonus length of an existing object keeping its contents
    /// (OpenZFS dnode_reallocate as receive uses it). The block size stays. A longer bonus
    /// leaves room for fewer block pointers: the sync then moves the old ones one level
    /// down (`Objset::sync_dnode`), so every block keeps its pointer. OpenZFS's
    /// receive_object frees the object instead (`nblkptr < doi_nblkptr`), losing the blocks
    /// an incremental stream does not carry (engine_bugs.rs,
    /// `incremental_receive_keeps_data_when_the_bonus_grows_back`).
    ///
    /// # Errors
    /// `NoSuchObject`, `InvalidObject`, `InvalidType`, `BonusTooLong`, read errors.
    pub fn object_reallocate(
        &mut self,
        zio: &mut Zio,
        txg: u64,
        object: u64,
        ot: u8,
        bonustype: u8,
        bonuslen: usize,
    ) -> Result<(), DmuError> {
        self.writable()?;
        check_object(object)?;
        if !ot_is_valid(ot) || !bonustype_is_valid(bonustype) {
            return Err(DmuError::InvalidType { ot });
        }
        if bonuslen > DN_MAX_BONUSLEN {
            return Err(DmuError::BonusTooLong { len: bonuslen, max: DN_MAX_BONUSLEN });
        }
        let dn = self.hold(zio, object)?;
        let nblkptr = nblkptr_for_bonus(bonuslen);
        let rec = dn.record_mut(txg);
        rec.attrs.ot = ot;
        rec.attrs.bonustype = bonustype;
        rec.attrs.nblkptr = nblkptr;
        rec.attrs.bonus.resize(bonuslen, 0);
        self.mark_dirty(txg, object);
        Ok(())
    }

    /// The ids of the blocks of `object` that hold data (written in an open txg or on
    /// disk and not freed since), ascending.
    ///
    /// # Errors
    /// `NoSuchObject`, `InvalidObject`, read errors of indirect blocks.
    pub fn data_blocks(&mut self, zio: &mut Zio, object: u64) -> Result<Vec<u64>, DmuError> {
        check_object(object)?;
        let dn = self.hold(zio, object)?;
        let phys = dn.phys.clone();
        let mut ids: std::collections::BTreeSet<u64> =
            dn.dirty.iter().flat_map(|r| r.blocks.keys().copied()).collect();
        if !phys.is_free() {
            ids.extend(crate::dnode::sync::nonhole_blocks(zio, &phys)?);
        }
        let dn = self.hold(zio, object)?;
        Ok(ids.into_iter().filter(|&b| !matches!(dn.block_source(b), BlockSource::Hole)).collect())
    }

    /// Free an allocated object and its contents.
    ///
    /// # Errors
    /// `NoSuchObject`, `InvalidObject`, read errors.
    pub fn object_free(&mut self, zio: &mut Zio, txg: u64, object: u64) -> Result<(), DmuError> {
        self.writable()?;
        check_object(object)?;
        let dn = self.hold(zio, object)?;
        let rec = dn.record_mut(txg);
        rec.reset = true;
        rec.blocks.clear();
        rec.frees.clear();
        rec.attrs.ot = 0;
        self.mark_dirty(txg, object);
        self.set_allocated(object, false);
        Ok(())
    }

    /// Replace the bonus buffer (its length must fit the dnode's bonus capacity).
    ///
    /// # Errors
    /// `BonusTooLong`, `InvalidType`, `NoSuchObject`, read errors.
    pub fn set_bonus(
        &mut self,
        zio: &mut Zio,
        txg: u64,
        object: u64,
        bonustype: u8,
        bonus: &[u8],
    ) -> Result<(), DmuError> {
        self.writable()?;
        check_object(object)?;
        if !bonustype_is_valid(bonustype) {
            return Err(DmuError::InvalidType { ot: bonustype });
        }
        let dn = self.hold(zio, object)?;
        let max = dn.attrs().bonus_capacity();
        if bonus.len() > max {
            return Err(DmuError::BonusTooLong { len: bonus.len(), max });
        }
        let rec = dn.record_mut(txg);
        rec.attrs.bonustype = bonustype;
        rec.attrs.bonus = bonus.to_vec();
        self.mark_dirty(txg, object);
        Ok(())
    }

    /// The bonus type and buffer.
    ///
    /// # Errors
    /// `NoSuchObject`, read errors.
    pub fn bonus(&mut self, zio: &mut Zio, object: u64) -> Result<(u8, Vec<u8>), DmuError> {
        check_object(object)?;
        let a = self.hold(zio, object)?.attrs();
        Ok((a.bonustype, a.bonus.clone()))
    }

    /// Current contents of block `blkid` of `object` (a full block; zeros for holes).
    fn block_contents(
        &mut self,
        zio: &mut Zio,
        object: u64,
        blkid: u64,
    ) -> Result<Vec<u8>, DmuError> {
        let dn = self.hold(zio, object)?;
        let bs = dn.attrs().blksz as usize;
        match dn.block_source(blkid) {
            BlockSource::Dirty(b) => Ok(b.to_vec()),
            BlockSource::Hole => Ok(vec![0; bs]),
            BlockSource::Synced => {
                let bp = lookup(zio, &dn.phys, blkid)?;
                if bp.is_hole() {
                    return Ok(vec![0; bs]);
                }
                let mut data = zio.read(&bp)?.to_vec();
                data.resize(bs, 0);
                Ok(data)
            }
        }
    }

    /// The bytes a write of `len` bytes at `offset` of `object` dirties: its whole blocks
    /// and the metadata above them (`Dnode::write_metadata_bytes`). Nothing changes; the
    /// errors are `write`'s argument errors, in its order.
    ///
    /// # Errors
    /// `ReadOnly`, `InvalidObject`, `OffsetOverflow`, `NoSuchObject`.
    pub fn write_cost(
        &mut self,
        zio: &mut Zio,
        object: u64,
        offset: u64,
        len: u64,
    ) -> Result<u64, DmuError> {
        self.writable()?;
        check_object(object)?;
        let end = check_range(offset, len)?;
        let dn = self.hold(zio, object)?;
        let bs = u64::from(dn.attrs().blksz);
        if len == 0 {
            return Ok(0);
        }
        let (first, last) = (offset / bs, (end - 1) / bs);
        Ok((last - first + 1) * bs + dn.write_metadata_bytes(first, last))
    }

    /// Write `data` at byte `offset` of `object` in `txg`. Returns the bytes dirtied (as
    /// `write_cost` counts them).
    ///
    /// # Errors
    /// `OffsetOverflow`, `NoSuchObject`, read errors (read-modify-write of partial blocks).
    pub fn write(
        &mut self,
        zio: &mut Zio,
        txg: u64,
        object: u64,
        offset: u64,
        data: &[u8],
    ) -> Result<u64, DmuError> {
        self.writable()?;
        check_object(object)?;
        let end = check_range(offset, data.len() as u64)?;
        let bs = u64::from(self.hold(zio, object)?.attrs().blksz);
        if data.is_empty() {
            return Ok(0);
        }
        let (first, last) = (offset / bs, (end - 1) / bs);
        // Only the first and last blocks can be partial: read them before changing anything,
        // so a read error (EIO/ECKSUM) leaves the object exactly as it was.
        let mut partial = std::collections::BTreeMap::new();
        for blkid in [first, last] {
            let covers = blkid * bs >= offset && (blkid + 1) * bs <= end;
            if !covers && !partial.contains_key(&blkid) {
                partial.insert(blkid, self.block_contents(zio, object, blkid)?);
            }
        }
        let mut dirtied = 0;
        for blkid in first..=last {
            let bstart = blkid * bs;
            let from = offset.max(bstart);
            let to = end.min(bstart + bs);
            let src = &data[usize::try_from(from - offset).expect("fits")
                ..usize::try_from(to - offset).expect("fits")];
            let block = if to - from == bs {
                src.to_vec()
            } else {
                let mut b = partial.remove(&blkid).expect("invariant: partial block read first");
                let at = usize::try_from(from - bstart).expect("fits");
                b[at..at + src.len()].copy_from_slice(src);
                b
            };
            dirtied += bs;
            let dn = self.hold(zio, object)?;
            let rec = dn.record_mut(txg);
            rec.blocks.insert(blkid, std::sync::Arc::new(block));
            rec.attrs.maxblkid = rec.attrs.maxblkid.max(blkid);
        }
        dirtied += self.hold(zio, object)?.write_metadata_bytes(first, last);
        self.mark_dirty(txg, object);
        Ok(dirtied)
    }

    /// Read `len` bytes at `offset` of `object` (holes and bytes past the end read as zero).
    ///
    /// # Errors
    /// `OffsetOverflow`, `NoSuchObject`, `Zio` (checksum or I/O error: never wrong data).
    pub fn read(
        &mut self,
        zio: &mut Zio,
        object: u64,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>, DmuError> {
        check_object(object)?;
        check_range(offset, len)?;
        self.hold(zio, object)?;
        if len > DMU_MAX_ACCESS {
            return Err(DmuError::OffsetOverflow { offset, len });
        }
        let n = usize::try_from(len).map_err(|_| DmuError::OffsetOverflow { offset, len })?;
        let mut out = vec![0u8; n];
        self.read_into(zio, object, offset, &mut out)?;
        Ok(out)
    }

    /// Read `buf.len()` bytes at `offset` into `buf` (holes and bytes past the end read as
    /// zero).
    ///
    /// # Errors
    /// `OffsetOverflow`, `NoSuchObject`, `Zio` (checksum or I/O error: never wrong data).
    pub fn read_into(
        &mut self,
        zio: &mut Zio,
        object: u64,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<(), DmuError> {
        check_object(object)?;
        let len = buf.len() as u64;
        let end = check_range(offset, len)?;
        let bs = u64::from(self.hold(zio, object)?.attrs().blksz);
        if len == 0 {
            return Ok(());
        }
        for blkid in offset / bs..=(end - 1) / bs {
            let bstart = blkid * bs;
            let from = offset.max(bstart);
            let to = end.min(bstart + bs);
            let dst = &mut buf[usize::try_from(from - offset).expect("fits")
                ..usize::try_from(to - offset).expect("fits")];
            self.read_block_part(zio, object, blkid, from - bstart, dst)?;
        }
        Ok(())
    }

    fn read_block_part(
        &mut self,
        zio: &mut Zio,
        object: u64,
        blkid: u64,
        at: u64,
        dst: &mut [u8],
    ) -> Result<(), DmuError> {
        let dn = self.hold(zio, object)?;
        let bs = dn.attrs().blksz as usize;
        let at = usize::try_from(at).expect("fits");
        match dn.block_source(blkid) {
            BlockSource::Dirty(b) => dst.copy_from_slice(&b[at..at + dst.len()]),
            BlockSource::Hole => dst.fill(0),
            BlockSource::Synced => {
                let bp = lookup(zio, &dn.phys, blkid)?;
                if bp.is_hole() {
                    dst.fill(0);
                } else if at == 0 && dst.len() == bs && bp.lsize as usize == bs {
                    zio.read_into(&bp, dst)?;
                } else {
                    let data = zio.read(&bp)?;
                    let avail = data.len().saturating_sub(at).min(dst.len());
                    dst[..avail].copy_from_slice(&data[at..at + avail]);
                    dst[avail..].fill(0);
                }
            }
        }
        Ok(())
    }

    /// Free `len` bytes at `offset` (`DMU_OBJECT_END` = to the end: a truncation that
    /// lowers maxblkid). Partial blocks are zeroed, whole blocks become holes.
    ///
    /// # Errors
    /// `OffsetOverflow`, `NoSuchObject`, read errors.
    pub fn free_range(
        &mut self,
        zio: &mut Zio,
        txg: u64,
        object: u64,
        offset: u64,
        len: u64,
    ) -> Result<(), DmuError> {
        self.writable()?;
        check_object(object)?;
        let trunc = len == DMU_OBJECT_END;
        let end = if trunc {
            u64::MAX
        } else {
            offset.checked_add(len).ok_or(DmuError::OffsetOverflow { offset, len })?
        };
        let a = self.hold(zio, object)?.attrs().clone();
        let bs = u64::from(a.blksz);
        if len == 0 || offset / bs > a.maxblkid {
            return Ok(());
        }
        let limit = (a.maxblkid + 1) * bs;
        let end = end.min(limit);
        let head_partial = !offset.is_multiple_of(bs);
        // Both partial blocks are read before anything changes (a read error changes nothing).
        let mut zeroed = Vec::new();
        if head_partial {
            let bend = (offset / bs + 1) * bs;
            zeroed.extend(self.zero_part(zio, object, offset, end.min(bend))?);
        }
        let tail_done_by_head = head_partial && end / bs == offset / bs;
        if end % bs != 0 && end < limit && !tail_done_by_head {
            zeroed.extend(self.zero_part(zio, object, (end / bs * bs).max(offset), end)?);
        }
        for (blkid, block) in zeroed {
            let rec = self.hold(zio, object)?.record_mut(txg);
            rec.blocks.insert(blkid, std::sync::Arc::new(block));
        }
        let first_full = offset.div_ceil(bs);
        let end_full = if end == limit { a.maxblkid + 1 } else { end / bs };
        let dn = self.hold(zio, object)?;
        let rec = dn.record_mut(txg);
        if first_full < end_full {
            rec.free_blocks(first_full, end_full);
        }
        if trunc {
            rec.attrs.maxblkid = first_full.saturating_sub(1);
        }
        self.mark_dirty(txg, object);
        Ok(())
    }

    /// The block holding `[from, to)` with those bytes zeroed (None for a hole); applied by
    /// the caller once every partial block has been read.
    fn zero_part(
        &mut self,
        zio: &mut Zio,
        object: u64,
        from: u64,
        to: u64,
    ) -> Result<Option<(u64, Vec<u8>)>, DmuError> {
        if from >= to {
            return Ok(None);
        }
        let dn = self.hold(zio, object)?;
        let bs = u64::from(dn.attrs().blksz);
        let blkid = from / bs;
        assert_eq!(blkid, (to - 1) / bs, "zero_part spans blocks");
        let is_hole = match dn.block_source(blkid) {
            BlockSource::Hole => true,
            BlockSource::Dirty(_) => false,
            BlockSource::Synced => lookup(zio, &dn.phys, blkid)?.is_hole(),
        };
        if is_hole {
            return Ok(None);
        }
        let mut block = self.block_contents(zio, object, blkid)?;
        let at = usize::try_from(from - blkid * bs).expect("fits");
        let n = usize::try_from(to - from).expect("fits");
        block[at..at + n].fill(0);
        Ok(Some((blkid, block)))
    }
}

/// Block pointers a receive-side OBJECT with `bonuslen` gets (for reallocation checks).
#[must_use]
pub fn spec_nblkptr(bonuslen: usize) -> u8 {
    nblkptr_for_bonus(bonuslen.min(DN_MAX_BONUSLEN))
}
