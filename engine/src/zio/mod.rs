//! zio: copy-on-write block I/O. OpenZFS: zio.c, zio_checksum.c, zio_compress.c, arc.c (cache).
//! `Zio` owns the device, the allocator and a cache of verified metadata blocks. Writes go to
//! newly allocated space (metadata in two copies at different offsets, ZFS's ditto blocks)
//! and return a block pointer; reads verify the checksum of each copy and fall back to the
//! next, returning `ZioError::Checksum` rather than bad data. Frees are deferred (metaslab).
//! Called by dnode::sync, dmu::objset, dsl and spa; calls vdev only. Never decides *what* to
//! write: that is the caller's; zio only makes it durable-on-flush and verifiable.

pub mod blkptr;
pub mod checksum;
pub mod compress;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use crate::error::ZioError;
use crate::limits::{BPE_PAYLOAD_SIZE, SPA_MAXBLOCKSIZE, SPA_MINBLOCKSIZE};
use crate::spa::metaslab::Metaslab;
use crate::vdev::{BlockDevice, VdevError};
use blkptr::{BlkPtr, Dva};
use checksum::ChecksumType;
use compress::Compress;

/// Bytes of verified metadata kept in the cache (ARC in spirit).
pub const ZIO_CACHE_BYTES_MAX: usize = 64 << 20;

/// How a block is to be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriteProps {
    /// DMU object type of the contents.
    pub ot: u8,
    /// Level in the tree.
    pub level: u8,
    /// Checksum algorithm.
    pub checksum: ChecksumType,
    /// Compression algorithm.
    pub compress: Compress,
    /// Copies to store (2 for metadata).
    pub copies: u8,
    /// May the block be embedded in its pointer when it compresses to <= 112 bytes?
    pub embed: bool,
}

/// Why a write failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ZioWriteError {
    /// No free extent large enough.
    NoSpace,
    /// The device failed the write.
    Io(VdevError),
}

/// Counters of block I/O.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ZioStats {
    /// Blocks written (each copy counted).
    pub writes: u64,
    /// Blocks read from the device.
    pub reads: u64,
    /// Reads served from the cache.
    pub cache_hits: u64,
    /// Copies that failed their checksum or read.
    pub bad_copies: u64,
}

type CacheKey = (u64, u64, u64);

/// The block I/O context of a pool.
pub struct Zio {
    /// The device.
    pub dev: Box<dyn BlockDevice>,
    /// The allocator.
    pub ms: Metaslab,
    cache: BTreeMap<CacheKey, Arc<Vec<u8>>>,
    cache_order: VecDeque<CacheKey>,
    cache_bytes: usize,
    /// Counters.
    pub stats: ZioStats,
}

impl std::fmt::Debug for Zio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Zio")
            .field("ms", &self.ms)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

fn round_up_sector(n: u64) -> u64 {
    n.div_ceil(SPA_MINBLOCKSIZE) * SPA_MINBLOCKSIZE
}

impl Zio {
    /// A zio context over `dev` allocating from `ms`.
    #[must_use]
    pub fn new(dev: Box<dyn BlockDevice>, ms: Metaslab) -> Self {
        Self {
            dev,
            ms,
            cache: BTreeMap::new(),
            cache_order: VecDeque::new(),
            cache_bytes: 0,
            stats: ZioStats::default(),
        }
    }

    /// `write`, tried again up to `retries` more times on a device error (each try
    /// allocates afresh; a failed one leaves nothing allocated).
    ///
    /// # Errors
    /// As `write`: `Io` once every try failed.
    pub fn write_retrying(
        &mut self,
        data: &[u8],
        props: &WriteProps,
        txg: u64,
        retries: u32,
    ) -> Result<BlkPtr, ZioWriteError> {
        let mut tries = 0;
        loop {
            match self.write(data, props, txg) {
                Err(ZioWriteError::Io(_)) if tries < retries => tries += 1,
                r => return r,
            }
        }
    }

    /// Write `data` (the logical block) as a new block born in `txg`.
    ///
    /// # Errors
    /// `NoSpace` when allocation fails (nothing is left allocated), `Io` on a device error.
    pub fn write(
        &mut self,
        data: &[u8],
        props: &WriteProps,
        txg: u64,
    ) -> Result<BlkPtr, ZioWriteError> {
        let lsize = data.len() as u64;
        assert!(lsize > 0 && lsize <= SPA_MAXBLOCKSIZE, "lsize {lsize}");
        assert_eq!(lsize % SPA_MINBLOCKSIZE, 0, "lsize {lsize} not sector aligned");
        assert!(props.copies >= 1 && props.copies <= 2, "copies {}", props.copies);
        // Keep compression only if it saves at least one sector after rounding (OpenZFS
        // stores blocks that do not shrink uncompressed) -- except for embedding, which
        // only needs the compressed bytes to fit in the pointer.
        let compressed = match props.compress {
            Compress::Lz4 => compress::lz4_compress(data, (lsize - lsize / 8) as usize),
            Compress::Off => None,
        };
        let embeddable = compressed.as_ref().is_some_and(|c| c.len() <= BPE_PAYLOAD_SIZE);
        let compressed =
            compressed.filter(|c| embeddable || round_up_sector(c.len() as u64) < lsize);
        if props.embed && props.level == 0 {
            if let Some(c) = compressed.as_ref().filter(|c| c.len() <= BPE_PAYLOAD_SIZE) {
                return Ok(Self::embedded(c, lsize, props, txg));
            }
        }
        let (stored, comp): (std::borrow::Cow<[u8]>, Compress) = match compressed {
            Some(mut c) => {
                c.resize(usize::try_from(round_up_sector(c.len() as u64)).expect("small"), 0);
                (c.into(), Compress::Lz4)
            }
            None => (data.into(), Compress::Off),
        };
        let psize = stored.len() as u64;
        let mut bp = BlkPtr {
            lsize: u32::try_from(lsize).expect("invariant: <= 128K"),
            psize: u32::try_from(psize).expect("invariant: <= 128K"),
            ot: props.ot,
            level: props.level,
            checksum: props.checksum as u8,
            compress: comp as u8,
            birth_txg: txg,
            fill: 1,
            cksum: props.checksum.compute(&stored),
            ..BlkPtr::HOLE
        };
        for copy in 0..usize::from(props.copies) {
            let dva = if copy == 0 {
                self.ms.alloc(psize)
            } else {
                self.ms.alloc_ditto(psize, bp.dva[0])
            };
            let Some(dva) = dva else {
                self.unwind(&bp);
                return Err(ZioWriteError::NoSpace);
            };
            bp.dva[copy] = dva;
            if let Err(e) = self.dev.write(dva.offset, &stored) {
                self.unwind(&bp);
                return Err(ZioWriteError::Io(e));
            }
            self.stats.writes += 1;
        }
        if props.level > 0 || is_cached_type(props.ot) {
            self.cache_insert(&bp, Arc::new(data.to_vec()));
        }
        Ok(bp)
    }

    fn embedded(c: &[u8], lsize: u64, props: &WriteProps, txg: u64) -> BlkPtr {
        let mut bp = BlkPtr {
            embedded: true,
            lsize: u32::try_from(lsize).expect("invariant: <= 128K"),
            psize: u32::try_from(c.len()).expect("invariant: <= 112"),
            ot: props.ot,
            compress: Compress::Lz4 as u8,
            birth_txg: txg,
            fill: 1,
            ..BlkPtr::HOLE
        };
        bp.payload[..c.len()].copy_from_slice(c);
        bp
    }

    fn unwind(&mut self, bp: &BlkPtr) {
        for d in bp.dvas() {
            self.ms.free_now(*d);
        }
    }

    /// Free the copies of `bp` in `txg` (deferred). Holes and embedded pointers own nothing.
    pub fn free(&mut self, bp: &BlkPtr, txg: u64) {
        for d in bp.dvas() {
            self.ms.free_deferred(txg, *d);
        }
    }

    /// Read and verify the block `bp` names; returns its logical contents.
    ///
    /// # Errors
    /// `Checksum` when no copy verifies, `Io` when no copy could be read, `BadBlkPtr` or
    /// `Decompress` for malformed blocks.
    pub fn read(&mut self, bp: &BlkPtr) -> Result<Arc<Vec<u8>>, ZioError> {
        if bp.is_hole() {
            return Ok(Arc::new(vec![0; bp.lsize as usize]));
        }
        if bp.embedded {
            return Self::read_embedded(bp).map(Arc::new);
        }
        let key = cache_key(bp);
        if let Some(hit) = self.cache.get(&key) {
            self.stats.cache_hits += 1;
            return Ok(Arc::clone(hit));
        }
        let mut buf = vec![0; bp.psize as usize];
        self.read_verified(bp, &mut buf)?;
        let data = if bp.compress == Compress::Lz4 as u8 {
            compress::lz4_decompress(&buf, bp.lsize as usize)
                .map_err(|_| ZioError::Decompress { offset: bp.dva[0].offset })?
        } else {
            buf
        };
        let data = Arc::new(data);
        if bp.level > 0 || is_cached_type(bp.ot) {
            self.cache_insert(bp, Arc::clone(&data));
        }
        Ok(data)
    }

    /// Read an uncompressed level-0 block straight into `out` (which must be `lsize` long):
    /// one copy from the device, then verification in place. Falls back to `read`.
    ///
    /// # Errors
    /// As `read`.
    pub fn read_into(&mut self, bp: &BlkPtr, out: &mut [u8]) -> Result<(), ZioError> {
        assert_eq!(out.len(), bp.lsize as usize, "read_into buffer size");
        if bp.is_hole() || bp.embedded || bp.compress != Compress::Off as u8 {
            out.copy_from_slice(&self.read(bp)?);
            return Ok(());
        }
        self.read_verified(bp, out)
    }

    /// The stored (physical, possibly compressed) bytes of `bp`, verified: what a
    /// compressed send puts in its WRITE payload.
    ///
    /// # Errors
    /// As `read`.
    pub fn read_raw(&mut self, bp: &BlkPtr) -> Result<Vec<u8>, ZioError> {
        assert!(!bp.is_hole() && !bp.embedded, "read_raw of a hole or embedded pointer");
        let mut buf = vec![0; bp.psize as usize];
        self.read_verified(bp, &mut buf)?;
        Ok(buf)
    }

    fn read_embedded(bp: &BlkPtr) -> Result<Vec<u8>, ZioError> {
        let payload = &bp.payload[..bp.psize as usize];
        match Compress::from_u8(bp.compress) {
            Some(Compress::Lz4) => compress::lz4_decompress(payload, bp.lsize as usize)
                .map_err(|_| ZioError::Decompress { offset: 0 }),
            _ => {
                let mut v = payload.to_vec();
                v.resize(bp.lsize as usize, 0);
                Ok(v)
            }
        }
    }

    /// Read the stored bytes of some copy of `bp` into `buf` (psize long) and verify them.
    fn read_verified(&mut self, bp: &BlkPtr, buf: &mut [u8]) -> Result<(), ZioError> {
        let cktype = ChecksumType::from_u8(bp.checksum)
            .ok_or(ZioError::BadBlkPtr { reason: "unknown checksum type" })?;
        let mut err = None;
        for dva in bp.dvas().copied().collect::<Vec<Dva>>() {
            self.stats.reads += 1;
            match self.dev.read(dva.offset, buf) {
                Ok(()) if cktype.compute(buf) == bp.cksum => return Ok(()),
                Ok(()) => {
                    err = Some(ZioError::Checksum { offset: dva.offset, birth_txg: bp.birth_txg })
                }
                Err(e) => err = Some(ZioError::Io(e)),
            }
            self.stats.bad_copies += 1;
        }
        Err(err.unwrap_or(ZioError::BadBlkPtr { reason: "no copies" }))
    }

    fn cache_insert(&mut self, bp: &BlkPtr, data: Arc<Vec<u8>>) {
        let key = cache_key(bp);
        self.cache_bytes += data.len();
        if let Some(old) = self.cache.insert(key, data) {
            self.cache_bytes -= old.len();
        } else {
            self.cache_order.push_back(key);
        }
        while self.cache_bytes > ZIO_CACHE_BYTES_MAX {
            let Some(k) = self.cache_order.pop_front() else { break };
            if let Some(old) = self.cache.remove(&k) {
                self.cache_bytes -= old.len();
            }
        }
    }

    /// Drop every cached block (tests that damage the device behind the engine's back).
    pub fn cache_clear(&mut self) {
        self.cache.clear();
        self.cache_order.clear();
        self.cache_bytes = 0;
    }
}

fn cache_key(bp: &BlkPtr) -> CacheKey {
    (bp.dva[0].offset, bp.birth_txg, bp.cksum[0])
}

/// Types whose blocks are metadata kept in the cache: dnode blocks, objsets, MOS.
fn is_cached_type(ot: u8) -> bool {
    matches!(ot, 1 | 10 | 11)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vdev::MemoryDevice;

    fn zio() -> Zio {
        Zio::new(Box::new(MemoryDevice::new(1 << 20)), Metaslab::new(4096, 1 << 20))
    }

    fn props(copies: u8, compress: Compress) -> WriteProps {
        WriteProps {
            ot: 19,
            level: 0,
            checksum: ChecksumType::Fletcher4,
            compress,
            copies,
            embed: false,
        }
    }

    #[test]
    fn write_read_round_trip_and_checksum_detects_damage() {
        let mut z = zio();
        let data: Vec<u8> = (0..4096u32).map(|i| (i * 13 % 256) as u8).collect();
        let bp = z.write(&data, &props(1, Compress::Off), 5).expect("write");
        assert_eq!(*z.read(&bp).expect("read"), data);
        let mut dev = MemoryDevice::new(1 << 20);
        let mut img = vec![0; 1 << 20];
        z.dev.read(0, &mut img).expect("image");
        img[bp.dva[0].offset as usize + 10] ^= 1;
        dev.image_mut().copy_from_slice(&img);
        let mut z2 = Zio::new(Box::new(dev), Metaslab::new(4096, 1 << 20));
        assert!(matches!(z2.read(&bp), Err(ZioError::Checksum { .. })));
    }

    #[test]
    fn ditto_copy_survives_one_bad_copy() {
        let mut z = zio();
        let data = vec![7u8; 16384];
        let bp = z.write(&data, &props(2, Compress::Lz4), 5).expect("write");
        assert_ne!(bp.dva[0].offset, bp.dva[1].offset);
        z.cache_clear();
        z.dev.write(bp.dva[0].offset, &vec![0xee; bp.dva[0].asize as usize]).expect("damage");
        assert_eq!(*z.read(&bp).expect("ditto read"), data);
        assert_eq!(z.stats.bad_copies, 1);
    }

    #[test]
    fn compressible_small_block_is_embedded() {
        let mut z = zio();
        let mut data = vec![0u8; 512];
        data[..4].copy_from_slice(b"123\n");
        let p = WriteProps { embed: true, ..props(1, Compress::Lz4) };
        let bp = z.write(&data, &p, 9).expect("write");
        assert!(bp.embedded);
        assert_eq!(z.ms.allocated_bytes(), 0, "embedded blocks take no space");
        assert_eq!(*z.read(&bp).expect("read"), data);
    }
}
