//! Decoders of the engine's on-disk structures, written here from the format the engine's
//! own files document (vdev/label.rs, spa/uberblock.rs, zio/blkptr.rs, dnode/mod.rs,
//! dmu/objset.rs, dsl/pool.rs, zil.rs), never by calling the engine's decoders: the
//! integrity checker must not share a decoding bug with the code it checks.
//! Every decoder takes untrusted bytes and returns `Err(reason)` on anything out of range;
//! none panics, none allocates more than a named limit allows. Only `engine::limits`
//! constants are used, and only those that define the format.

use engine::limits::{
    BLKPTR_SIZE, BPE_PAYLOAD_SIZE, DNODE_CORE_SIZE, DNODE_SIZE, DN_MAX_INDBLKSHIFT, DN_MAX_LEVELS,
    DN_MAX_NBLKPTR, DN_MIN_INDBLKSHIFT, DSL_MAX_SNAPSHOTS, SPA_MAXBLOCKSIZE, SPA_MAX_DATASETS,
    SPA_MINBLOCKSIZE, ZFS_MAX_DATASET_NAME_LEN,
};
use engine::zio::blkptr::Dva;

/// A decode failure: what was wrong.
pub type Bad = &'static str;

/// Bytes of a block pointer (blkptr_t), from limits.
pub const BP_BYTES: usize = BLKPTR_SIZE as usize;
/// Label header magic "ZSIMLABL" (vdev/label.rs).
pub const LABEL_MAGIC: u64 = u64::from_le_bytes(*b"ZSIMLABL");
/// On-disk format version of labels and uberblocks (vdev/label.rs SPA_VERSION).
pub const SPA_VERSION: u64 = 1;
/// Uberblock magic (spa/uberblock.rs).
pub const UBERBLOCK_MAGIC: u64 = 0x00ba_b10c;
/// Bytes of a sealed header (label header, uberblock slot, log block header).
pub const SEALED_BYTES: usize = 1024;
/// Where the embedded checksum of a sealed 1 KiB block starts (vdev/label.rs ECK_AT).
pub const ECK_AT: usize = SEALED_BYTES - 32;
/// MOS blob magic "ZSIMMOS1" and version (dsl/pool.rs).
pub const MOS_MAGIC: u64 = u64::from_le_bytes(*b"ZSIMMOS1");
/// MOS blob version.
pub const MOS_VERSION: u64 = 1;
/// Largest number of defer-list txgs the MOS may hold (dsl/pool.rs decode limit).
pub const MOS_DEFER_TXGS_MAX: u64 = 1 << 16;
/// Largest number of deferred extents the MOS may hold (dsl/pool.rs MOS_MAX_DEFER_EXTENTS).
pub const MOS_DEFER_EXTENTS_MAX: u64 = 1 << 24;
/// Bytes of an objset block (dmu/objset.rs OBJSET_PHYS_SIZE).
pub const OBJSET_PHYS_BYTES: usize = 1024;
/// Where the objset type and the intent-log header sit in an objset block.
pub const OBJSET_TYPE_AT: usize = DNODE_SIZE as usize;
/// Where the ZIL header starts in an objset block (zil.rs ZIL_HEADER_OFFSET).
pub const ZIL_HEADER_AT: usize = 520;
/// Objset type of a filesystem (DMU_OST_ZFS).
pub const DMU_OST_ZFS: u64 = 2;
/// DMU object types the format fixes (dmu/ot.rs).
pub const DMU_OT_OBJECT_DIRECTORY: u8 = 1;
/// Dnode blocks.
pub const DMU_OT_DNODE: u8 = 10;
/// Objset blocks.
pub const DMU_OT_OBJSET: u8 = 11;
/// Checksum enum values (zio/checksum.rs): off, fletcher4, sha256.
pub const CKSUM_OFF: u8 = 2;
/// ZIO_CHECKSUM_FLETCHER_4.
pub const CKSUM_FLETCHER4: u8 = 7;
/// ZIO_CHECKSUM_SHA256.
pub const CKSUM_SHA256: u8 = 8;
/// Compression enum values (zio/compress.rs): off, lz4.
pub const COMPRESS_OFF: u8 = 2;
/// ZIO_COMPRESS_LZ4.
pub const COMPRESS_LZ4: u8 = 15;
const BP_FLAG_EMBEDDED: u8 = 1;

const _: () = assert!(BP_BYTES == 128);
const _: () = assert!(40 + (BP_BYTES - 56) == BPE_PAYLOAD_SIZE);
const _: () = assert!(ZIL_HEADER_AT + 40 <= OBJSET_PHYS_BYTES);
const _: () = assert!(OBJSET_TYPE_AT + 8 <= ZIL_HEADER_AT);

/// Little-endian u64 at `at`; the caller has checked the length.
#[must_use]
pub fn le64(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

/// A decoded block pointer (layout in zio/blkptr.rs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bp {
    /// Copies (`asize == 0`: no copy).
    pub dva: [Dva; 2],
    /// Logical size.
    pub lsize: u32,
    /// Stored size (embedded: payload bytes).
    pub psize: u32,
    /// DMU object type.
    pub ot: u8,
    /// Level in its tree.
    pub level: u8,
    /// Checksum enum value.
    pub checksum: u8,
    /// Compression enum value.
    pub compress: u8,
    /// Data lives in `payload`.
    pub embedded: bool,
    /// Logical birth txg.
    pub birth: u64,
    /// Checksum of the stored bytes.
    pub cksum: [u64; 4],
    /// Embedded payload.
    pub payload: [u8; BPE_PAYLOAD_SIZE],
}

impl Bp {
    /// No data: not embedded and no first copy (BP_IS_HOLE).
    #[must_use]
    pub fn is_hole(&self) -> bool {
        !self.embedded && self.dva[0].asize == 0
    }

    /// The copies this pointer names.
    pub fn copies(&self) -> impl Iterator<Item = Dva> + '_ {
        self.dva.iter().copied().filter(|d| d.asize != 0)
    }
}

/// Decode a 128-byte block pointer.
///
/// # Errors
/// A reason for any field out of range.
pub fn decode_bp(raw: &[u8]) -> Result<Bp, Bad> {
    if raw.len() != BP_BYTES {
        return Err("short block pointer");
    }
    let flags = raw[44];
    if flags & !BP_FLAG_EMBEDDED != 0 {
        return Err("unknown block pointer flags");
    }
    let mut bp = Bp {
        dva: [Dva::default(); 2],
        lsize: 0,
        psize: 0,
        ot: raw[40],
        level: raw[41],
        checksum: raw[42],
        compress: raw[43],
        embedded: flags & BP_FLAG_EMBEDDED != 0,
        birth: le64(raw, 48),
        cksum: [0; 4],
        payload: [0; BPE_PAYLOAD_SIZE],
    };
    if bp.level > DN_MAX_LEVELS {
        return Err("block pointer level too deep");
    }
    if bp.embedded {
        return decode_embedded(raw, bp);
    }
    for (i, d) in bp.dva.iter_mut().enumerate() {
        *d = Dva { offset: le64(raw, 16 * i), asize: le64(raw, 16 * i + 8) };
    }
    bp.lsize = le32(raw, 32);
    bp.psize = le32(raw, 36);
    for (i, w) in bp.cksum.iter_mut().enumerate() {
        *w = le64(raw, 96 + 8 * i);
    }
    validate(&bp)?;
    Ok(bp)
}

fn decode_embedded(raw: &[u8], mut bp: Bp) -> Result<Bp, Bad> {
    let psize = usize::from(raw[46]);
    if psize > BPE_PAYLOAD_SIZE || bp.level != 0 {
        return Err("bad embedded block pointer");
    }
    if bp.compress != COMPRESS_OFF && bp.compress != COMPRESS_LZ4 {
        return Err("embedded block with unknown compression");
    }
    if raw[45] != 0 {
        return Err("embedded block of an unknown embedded type");
    }
    bp.psize = u32::from(raw[46]);
    bp.lsize = (u32::from(raw[47]) + 1) * SPA_MINBLOCKSIZE as u32;
    bp.payload[..40].copy_from_slice(&raw[..40]);
    bp.payload[40..].copy_from_slice(&raw[56..]);
    Ok(bp)
}

fn validate(bp: &Bp) -> Result<(), Bad> {
    if bp.is_hole() {
        return if bp.dva[1].asize != 0 { Err("hole with a ditto copy") } else { Ok(()) };
    }
    let lsize = u64::from(bp.lsize);
    let psize = u64::from(bp.psize);
    if lsize == 0 || lsize > SPA_MAXBLOCKSIZE || !lsize.is_multiple_of(SPA_MINBLOCKSIZE) {
        return Err("lsize out of range");
    }
    if psize == 0 || psize > lsize || !psize.is_multiple_of(SPA_MINBLOCKSIZE) {
        return Err("psize out of range");
    }
    if ![CKSUM_OFF, CKSUM_FLETCHER4, CKSUM_SHA256].contains(&bp.checksum) {
        return Err("unknown checksum type");
    }
    match bp.compress {
        COMPRESS_OFF if psize != lsize => return Err("uncompressed block with psize != lsize"),
        COMPRESS_OFF | COMPRESS_LZ4 => {}
        _ => return Err("unknown compression"),
    }
    for d in bp.copies() {
        if !d.offset.is_multiple_of(SPA_MINBLOCKSIZE) || !d.asize.is_multiple_of(SPA_MINBLOCKSIZE) {
            return Err("copy not sector aligned");
        }
        if d.asize < psize || d.asize > SPA_MAXBLOCKSIZE {
            return Err("copy size out of range");
        }
    }
    if bp.dva[1].asize != 0 && bp.dva[1].offset == bp.dva[0].offset {
        return Err("both copies at one offset");
    }
    Ok(())
}

/// A decoded dnode (layout in dnode/mod.rs); free slots are `None`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnodePhys {
    /// Object type.
    pub ot: u8,
    /// log2 of the indirect block size.
    pub indblkshift: u8,
    /// Levels of the block tree.
    pub nlevels: u8,
    /// Data block size in bytes.
    pub blksz: u32,
    /// Root block pointers (`nblkptr` of them).
    pub blkptr: Vec<Bp>,
}

impl DnodePhys {
    /// Block pointers per indirect block, as a shift.
    #[must_use]
    pub fn epb_shift(&self) -> u32 {
        u32::from(self.indblkshift) - BLKPTR_SIZE.trailing_zeros()
    }
}

/// Decode a 512-byte dnode slot. `Ok(None)` for a free slot (all zero).
///
/// # Errors
/// A reason for any field out of range.
pub fn decode_dnode(raw: &[u8]) -> Result<Option<DnodePhys>, Bad> {
    if raw.len() != DNODE_SIZE as usize {
        return Err("short dnode");
    }
    if raw[0] == 0 {
        return if raw.iter().all(|&b| b == 0) { Ok(None) } else { Err("free dnode not zero") };
    }
    let nblkptr = usize::from(raw[3]);
    if nblkptr == 0 || nblkptr > DN_MAX_NBLKPTR {
        return Err("dnode nblkptr out of range");
    }
    let indblkshift = raw[1];
    if !(DN_MIN_INDBLKSHIFT..=DN_MAX_INDBLKSHIFT).contains(&u32::from(indblkshift)) {
        return Err("dnode indblkshift out of range");
    }
    let nlevels = raw[2];
    if nlevels == 0 || nlevels > DN_MAX_LEVELS {
        return Err("dnode nlevels out of range");
    }
    let blksz = u64::from(le16(raw, 8)) * SPA_MINBLOCKSIZE;
    if blksz == 0 || blksz > SPA_MAXBLOCKSIZE {
        return Err("dnode block size out of range");
    }
    let tail = DNODE_SIZE as usize - DNODE_CORE_SIZE;
    if usize::from(le16(raw, 10)) > tail - nblkptr * BP_BYTES {
        return Err("dnode bonus too long");
    }
    let mut blkptr = Vec::with_capacity(nblkptr);
    for i in 0..nblkptr {
        let at = DNODE_CORE_SIZE + i * BP_BYTES;
        blkptr.push(decode_bp(&raw[at..at + BP_BYTES])?);
    }
    let blksz = u32::try_from(blksz).map_err(|_| "dnode block size")?;
    Ok(Some(DnodePhys { ot: raw[0], indblkshift, nlevels, blksz, blkptr }))
}

/// The intent-log header of an objset block (zil.rs ZilHeader).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ZilHeaderPhys {
    /// Chain guid (0: no log).
    pub guid: u64,
    /// Sequence number of the first block.
    pub seq: u64,
    /// First block.
    pub first: Dva,
    /// Nonce the first block must carry.
    pub nonce: u64,
}

/// An objset block: its meta-dnode and intent-log header (dmu/objset.rs write_root).
#[derive(Clone, Debug)]
pub struct ObjsetPhys {
    /// The meta-dnode (object 0).
    pub meta: DnodePhys,
    /// The head's intent-log header.
    pub zil: ZilHeaderPhys,
}

/// Decode an objset block.
///
/// # Errors
/// A reason for anything out of range.
pub fn decode_objset(raw: &[u8]) -> Result<ObjsetPhys, Bad> {
    if raw.len() != OBJSET_PHYS_BYTES {
        return Err("objset block of the wrong size");
    }
    let meta = decode_dnode(&raw[..DNODE_SIZE as usize])?.ok_or("objset without a meta-dnode")?;
    if meta.ot != DMU_OT_DNODE || u64::from(meta.blksz) != engine::limits::DNODE_BLOCK_SIZE {
        return Err("meta-dnode of the wrong type or block size");
    }
    if le64(raw, OBJSET_TYPE_AT) != DMU_OST_ZFS {
        return Err("objset of an unknown type");
    }
    let z = &raw[ZIL_HEADER_AT..ZIL_HEADER_AT + 40];
    let zil = ZilHeaderPhys {
        guid: le64(z, 0),
        seq: le64(z, 8),
        first: Dva { offset: le64(z, 16), asize: le64(z, 24) },
        nonce: le64(z, 32),
    };
    Ok(ObjsetPhys { meta, zil })
}

/// An uberblock slot (spa/uberblock.rs), seal already verified by the caller.
#[derive(Clone, Copy, Debug)]
pub struct UberblockPhys {
    /// Committed txg.
    pub txg: u64,
    /// Pool guid.
    pub pool_guid: u64,
    /// The MOS root block.
    pub rootbp: Bp,
    /// Bytes of the MOS blob.
    pub mos_len: u64,
}

/// Decode an uberblock slot; `Ok(None)` for an empty or foreign slot (wrong magic).
///
/// # Errors
/// A reason when the magic is right but the rest is not.
pub fn decode_uberblock(b: &[u8]) -> Result<Option<UberblockPhys>, Bad> {
    if b.len() != SEALED_BYTES || le64(b, 0) != UBERBLOCK_MAGIC {
        return Ok(None);
    }
    if le64(b, 8) != SPA_VERSION {
        return Err("uberblock of an unknown version");
    }
    let rootbp = decode_bp(&b[40..40 + BP_BYTES])?;
    let txg = le64(b, 16);
    if txg == 0 || rootbp.is_hole() || rootbp.embedded {
        return Err("uberblock without a txg or MOS root");
    }
    Ok(Some(UberblockPhys { txg, pool_guid: le64(b, 24), rootbp, mos_len: le64(b, 168) }))
}

/// A label header (vdev/label.rs LabelConfig), seal verified by the caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelPhys {
    /// Pool guid.
    pub pool_guid: u64,
    /// Device size at creation.
    pub device_size: u64,
}

/// Decode a label header block.
///
/// # Errors
/// A reason for a bad magic, version or name.
pub fn decode_label(b: &[u8]) -> Result<LabelPhys, Bad> {
    if b.len() != SEALED_BYTES || le64(b, 0) != LABEL_MAGIC || le64(b, 8) != SPA_VERSION {
        return Err("label magic or version");
    }
    let len = usize::from(le16(b, 32));
    if len == 0 || len > ZFS_MAX_DATASET_NAME_LEN || std::str::from_utf8(&b[34..34 + len]).is_err()
    {
        return Err("label pool name");
    }
    Ok(LabelPhys { pool_guid: le64(b, 16), device_size: le64(b, 24) })
}

/// A dataset record of the MOS.
#[derive(Clone, Debug)]
pub struct DatasetPhys {
    /// Full name.
    pub name: String,
    /// Creation txg.
    pub creation_txg: u64,
    /// Head objset block.
    pub head: Bp,
    /// Snapshots oldest first: (short name, creation txg, root).
    pub snapshots: Vec<(String, u64, Bp)>,
}

/// The decoded MOS blob (dsl/pool.rs MosPhys).
#[derive(Clone, Debug, Default)]
pub struct MosPhys {
    /// Pool guid.
    pub pool_guid: u64,
    /// Datasets in MOS order.
    pub datasets: Vec<DatasetPhys>,
    /// Deferred frees: (txg of the free, extent).
    pub defer: Vec<(u64, Dva)>,
}

struct Dec<'a> {
    b: &'a [u8],
    at: usize,
}

impl Dec<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], Bad> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.b.len()).ok_or("MOS too short")?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u64(&mut self) -> Result<u64, Bad> {
        Ok(le64(self.take(8)?, 0))
    }
    fn count(&mut self, max: u64) -> Result<u64, Bad> {
        let n = self.u64()?;
        if n > max {
            return Err("MOS count over its limit");
        }
        Ok(n)
    }
    fn name(&mut self) -> Result<String, Bad> {
        let n = usize::try_from(self.count(ZFS_MAX_DATASET_NAME_LEN as u64)?).map_err(|_| "n")?;
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| "MOS name not utf-8")
    }
    fn bp(&mut self) -> Result<Bp, Bad> {
        decode_bp(self.take(BP_BYTES)?)
    }
}

/// Decode the MOS blob, checking every count against its limit before using it.
///
/// # Errors
/// A reason for the first thing out of range.
pub fn decode_mos(b: &[u8]) -> Result<MosPhys, Bad> {
    let mut d = Dec { b, at: 0 };
    if d.u64()? != MOS_MAGIC || d.u64()? != MOS_VERSION {
        return Err("MOS magic or version");
    }
    let mut mos = MosPhys { pool_guid: d.u64()?, ..MosPhys::default() };
    let _next_id = d.u64()?;
    for _ in 0..d.count(SPA_MAX_DATASETS as u64)? {
        let _id = d.u64()?;
        let name = d.name()?;
        let _guid = d.u64()?;
        let creation_txg = d.u64()?;
        let props = d.u64()?;
        let (cksum, comp) = ((props & 0xff) as u8, (props >> 8 & 0xff) as u8);
        if ![CKSUM_OFF, CKSUM_FLETCHER4, CKSUM_SHA256].contains(&cksum)
            || ![COMPRESS_OFF, COMPRESS_LZ4].contains(&comp)
            || props >> 16 != 0
        {
            return Err("MOS dataset properties");
        }
        let head = d.bp()?;
        let mut snapshots = Vec::new();
        for _ in 0..d.count(DSL_MAX_SNAPSHOTS as u64)? {
            let snap = d.name()?;
            let (_guid, txg, _time) = (d.u64()?, d.u64()?, d.u64()?);
            snapshots.push((snap, txg, d.bp()?));
        }
        if snapshots.windows(2).any(|w| w[0].1 >= w[1].1) {
            return Err("MOS snapshot txgs out of order");
        }
        mos.datasets.push(DatasetPhys { name, creation_txg, head, snapshots });
    }
    for _ in 0..d.count(MOS_DEFER_TXGS_MAX)? {
        let txg = d.u64()?;
        let n = d.count(MOS_DEFER_EXTENTS_MAX)?;
        if mos.defer.len() as u64 + n > MOS_DEFER_EXTENTS_MAX {
            return Err("MOS holds too many deferred frees");
        }
        for _ in 0..n {
            mos.defer.push((txg, Dva { offset: d.u64()?, asize: d.u64()? }));
        }
    }
    if d.at != b.len() {
        return Err("MOS has trailing bytes");
    }
    Ok(mos)
}
