//! Send-stream records (`dmu_replay_record_t`): layout, encode/decode, writer and hardened
//! reader with the kernel's checksum rules. OpenZFS: include/sys/zfs_ioctl.h, dmu_send.c
//! (dump_record), dmu_recv.c (receive_read_record, byteswap_record). Spec: zfs-send-stream.md
//! §1-2. Used by dmu::send (StreamWriter), dmu::recv (StreamReader), fuzzers (rechecksum).
//! Invariants: every header is 312 bytes, zero-filled before fields are set; every non-BEGIN
//! record carries the running Fletcher-4 of its substream up to its checksum field (§2.2);
//! the reader checks every length against a named limit before allocating, and never panics.

use std::io::{self, Read, Write};

use crate::zio::checksum::{Fletcher4, ZioCksum};

/// Bytes of a record header (`sizeof (dmu_replay_record_t)`), §1.1.
pub const DRR_HEADER_SIZE: usize = 312;
/// Offset of the per-record checksum overlay (`drr_u.drr_checksum.drr_checksum`), §1.1.
pub const DRR_CHECKSUM_OFFSET: usize = 280;
/// Bytes of a `zio_cksum_t`.
pub const DRR_CHECKSUM_SIZE: usize = 32;
/// Bytes of BEGIN's `drr_toname`.
pub const DRR_TONAME_LEN: usize = 256;
/// Longest toname a writer may use: bytes 224.. of toname are the checksum overlay (§1.3).
pub const DRR_TONAME_MAX_LEN: usize = 223;
/// Bytes of the encryption salt, IV and MAC fields (ZIO_DATA_SALT/IV/MAC_LEN).
pub const ZIO_DATA_SALT_LEN: usize = 8;
/// Bytes of the encryption IV.
pub const ZIO_DATA_IV_LEN: usize = 12;
/// Bytes of the encryption MAC.
pub const ZIO_DATA_MAC_LEN: usize = 16;

const _: () = assert!(DRR_CHECKSUM_OFFSET + DRR_CHECKSUM_SIZE == DRR_HEADER_SIZE);
const _: () = assert!(56 + DRR_TONAME_LEN == DRR_HEADER_SIZE);
const _: () = assert!(56 + DRR_TONAME_MAX_LEN < DRR_CHECKSUM_OFFSET);

/// Largest non-BEGIN payload the reader accepts (SPA_MAXBLOCKSIZE, 16 MiB; ERANGE, §4.3).
pub const DRR_PAYLOAD_MAX_BYTES: u64 = 16 << 20;
/// Largest BEGIN payload (packed nvlist) the reader accepts (256 MiB; E2BIG, §4.2).
pub const DRR_BEGIN_PAYLOAD_MAX_BYTES: u64 = 256 << 20;

/// `DMU_BACKUP_MAGIC`, the u64 at offset 8 of every BEGIN (§1.2).
pub const DMU_BACKUP_MAGIC: u64 = 0x0000_0002_F5BA_CBAC;
/// hdrtype of a plain (kernel-generated) substream.
pub const DMU_SUBSTREAM: u64 = 1;
/// hdrtype of a compound (`-R`, `-I`, `-p`) package header.
pub const DMU_COMPOUNDSTREAM: u64 = 2;

/// Feature flag: deduplicated stream (pre-2.0, parse only), §1.5.
pub const DMU_BACKUP_FEATURE_DEDUP: u64 = 1 << 0;
/// Feature flag: dedup properties (pre-2.0).
pub const DMU_BACKUP_FEATURE_DEDUPPROPS: u64 = 1 << 1;
/// Feature flag: system-attribute spill blocks.
pub const DMU_BACKUP_FEATURE_SA_SPILL: u64 = 1 << 2;
/// Feature flag: WRITE_EMBEDDED records.
pub const DMU_BACKUP_FEATURE_EMBED_DATA: u64 = 1 << 16;
/// Feature flag: LZ4 compression may appear.
pub const DMU_BACKUP_FEATURE_LZ4: u64 = 1 << 17;
/// Feature flag: blocks larger than 128 KiB.
pub const DMU_BACKUP_FEATURE_LARGE_BLOCKS: u64 = 1 << 19;
/// Feature flag: resumed send.
pub const DMU_BACKUP_FEATURE_RESUMING: u64 = 1 << 20;
/// Feature flag: redacted send.
pub const DMU_BACKUP_FEATURE_REDACTED: u64 = 1 << 21;
/// Feature flag: compressed WRITE payloads.
pub const DMU_BACKUP_FEATURE_COMPRESSED: u64 = 1 << 22;
/// Feature flag: dnodes larger than 512 bytes.
pub const DMU_BACKUP_FEATURE_LARGE_DNODE: u64 = 1 << 23;
/// Feature flag: raw (encrypted) send.
pub const DMU_BACKUP_FEATURE_RAW: u64 = 1 << 24;
/// Feature flag: zstd compression may appear.
pub const DMU_BACKUP_FEATURE_ZSTD: u64 = 1 << 25;
/// Feature flag: holds in the compound header.
pub const DMU_BACKUP_FEATURE_HOLDS: u64 = 1 << 26;
/// Feature flag: reserved, never set by a sender.
pub const DMU_BACKUP_FEATURE_SWITCH_TO_LARGE_BLOCKS: u64 = 1 << 27;
/// Feature flag: long names (2.3+).
pub const DMU_BACKUP_FEATURE_LONGNAME: u64 = 1 << 28;
/// Feature flag: large microzaps (2.3+).
pub const DMU_BACKUP_FEATURE_LARGE_MICROZAP: u64 = 1 << 29;
/// Every feature a 2.3 receiver accepts (§1.5).
pub const DMU_BACKUP_FEATURE_MASK: u64 = 0x3FFB_0004;
const _: () = assert!(
    DMU_BACKUP_FEATURE_MASK
        == DMU_BACKUP_FEATURE_SA_SPILL
            | DMU_BACKUP_FEATURE_EMBED_DATA
            | DMU_BACKUP_FEATURE_LZ4
            | DMU_BACKUP_FEATURE_RESUMING
            | DMU_BACKUP_FEATURE_LARGE_BLOCKS
            | DMU_BACKUP_FEATURE_COMPRESSED
            | DMU_BACKUP_FEATURE_LARGE_DNODE
            | DMU_BACKUP_FEATURE_RAW
            | DMU_BACKUP_FEATURE_HOLDS
            | DMU_BACKUP_FEATURE_REDACTED
            | DMU_BACKUP_FEATURE_SWITCH_TO_LARGE_BLOCKS
            | DMU_BACKUP_FEATURE_ZSTD
            | DMU_BACKUP_FEATURE_LONGNAME
            | DMU_BACKUP_FEATURE_LARGE_MICROZAP
);

/// BEGIN flag: incremental from a clone's origin.
pub const DRR_FLAG_CLONE: u32 = 1 << 0;
/// BEGIN flag: case-insensitive dataset.
pub const DRR_FLAG_CI_DATA: u32 = 1 << 1;
/// BEGIN flag: a full stream also carries FREE/FREEOBJECTS (always set by 2.x).
pub const DRR_FLAG_FREERECORDS: u32 = 1 << 2;
/// BEGIN flag: DRR_OBJECT_SPILL / DRR_SPILL_UNMODIFIED are meaningful (always set by 2.x).
pub const DRR_FLAG_SPILL_BLOCK: u32 = 1 << 3;

/// Record flag (WRITE, WRITE_BYREF): the checksum is dedup-capable.
pub const DRR_CHECKSUM_DEDUP: u8 = 1 << 0;
/// Record flag (raw streams): the on-disk block is in the other byte order.
pub const DRR_RAW_BYTESWAP: u8 = 1 << 1;
/// OBJECT flag: the dnode has a spill block.
pub const DRR_OBJECT_SPILL: u8 = 1 << 2;
/// SPILL flag: the spill block is unmodified, re-sent for old receivers.
pub const DRR_SPILL_UNMODIFIED: u8 = 1 << 2;

/// FREE length meaning "to the end of the object" (printed as -1).
pub const DMU_OBJECT_END: u64 = u64::MAX;

/// Record type numbers (`drr_type`), §1.1.
pub const DRR_BEGIN: u32 = 0;
/// OBJECT record type.
pub const DRR_OBJECT: u32 = 1;
/// FREEOBJECTS record type.
pub const DRR_FREEOBJECTS: u32 = 2;
/// WRITE record type.
pub const DRR_WRITE: u32 = 3;
/// FREE record type.
pub const DRR_FREE: u32 = 4;
/// END record type.
pub const DRR_END: u32 = 5;
/// WRITE_BYREF record type.
pub const DRR_WRITE_BYREF: u32 = 6;
/// SPILL record type.
pub const DRR_SPILL: u32 = 7;
/// WRITE_EMBEDDED record type.
pub const DRR_WRITE_EMBEDDED: u32 = 8;
/// OBJECT_RANGE record type.
pub const DRR_OBJECT_RANGE: u32 = 9;
/// REDACT record type.
pub const DRR_REDACT: u32 = 10;
/// Number of record types; any `drr_type` at or above this is invalid.
pub const DRR_NUMTYPES: u32 = 11;

/// The name of a record type as ZFS prints it ("WRITE"), or "UNKNOWN".
#[must_use]
pub fn drr_type_name(drr_type: u32) -> &'static str {
    const NAMES: [&str; DRR_NUMTYPES as usize] = [
        "BEGIN",
        "OBJECT",
        "FREEOBJECTS",
        "WRITE",
        "FREE",
        "END",
        "WRITE_BYREF",
        "SPILL",
        "WRITE_EMBEDDED",
        "OBJECT_RANGE",
        "REDACT",
    ];
    NAMES.get(drr_type as usize).copied().unwrap_or("UNKNOWN")
}

/// hdrtype (bits 0-1) of a BEGIN `drr_versioninfo` (DMU_GET_STREAM_HDRTYPE).
#[must_use]
pub const fn dmu_get_stream_hdrtype(versioninfo: u64) -> u64 {
    versioninfo & 0x3
}

/// Feature flags of a BEGIN `drr_versioninfo`: bits 2..57 (§1.3 BEGIN).
#[must_use]
pub const fn dmu_get_featureflags(versioninfo: u64) -> u64 {
    (versioninfo >> 2) & ((1 << 56) - 1)
}

/// A `drr_versioninfo` from hdrtype and feature flags.
#[must_use]
pub const fn dmu_versioninfo(hdrtype: u64, features: u64) -> u64 {
    (hdrtype & 0x3) | ((features & ((1 << 56) - 1)) << 2)
}

/// Byte order of a stream: every integer, and the 32-bit words fed to Fletcher-4 (§1.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ByteOrder {
    /// Little-endian (x86 senders); what our writer emits.
    Little,
    /// Big-endian (SPARC, POWER senders).
    Big,
}

impl ByteOrder {
    /// The byte order of the machine running this code.
    pub const HOST: ByteOrder =
        if cfg!(target_endian = "little") { ByteOrder::Little } else { ByteOrder::Big };

    /// Reads a u64 in this order.
    #[must_use]
    pub fn u64(self, b: [u8; 8]) -> u64 {
        match self {
            ByteOrder::Little => u64::from_le_bytes(b),
            ByteOrder::Big => u64::from_be_bytes(b),
        }
    }

    /// Reads a u32 in this order.
    #[must_use]
    pub fn u32(self, b: [u8; 4]) -> u32 {
        match self {
            ByteOrder::Little => u32::from_le_bytes(b),
            ByteOrder::Big => u32::from_be_bytes(b),
        }
    }

    /// Reads a u16 in this order.
    #[must_use]
    pub fn u16(self, b: [u8; 2]) -> u16 {
        match self {
            ByteOrder::Little => u16::from_le_bytes(b),
            ByteOrder::Big => u16::from_be_bytes(b),
        }
    }

    /// Encodes a u64 in this order.
    #[must_use]
    pub fn u64_bytes(self, v: u64) -> [u8; 8] {
        match self {
            ByteOrder::Little => v.to_le_bytes(),
            ByteOrder::Big => v.to_be_bytes(),
        }
    }

    /// Encodes a u32 in this order.
    #[must_use]
    pub fn u32_bytes(self, v: u32) -> [u8; 4] {
        match self {
            ByteOrder::Little => v.to_le_bytes(),
            ByteOrder::Big => v.to_be_bytes(),
        }
    }

    /// Encodes a u16 in this order.
    #[must_use]
    pub fn u16_bytes(self, v: u16) -> [u8; 2] {
        match self {
            ByteOrder::Little => v.to_le_bytes(),
            ByteOrder::Big => v.to_be_bytes(),
        }
    }

    /// Folds `data` into a running Fletcher-4 as words of this order (§2.1).
    pub fn fletcher4_update(self, f: &mut Fletcher4, data: &[u8]) {
        match self {
            ByteOrder::Little => f.update(data),
            ByteOrder::Big => f.update_byteswap(data),
        }
    }

    /// Reads a `zio_cksum_t` (4 u64) in this order.
    #[must_use]
    pub fn cksum(self, b: &[u8; DRR_CHECKSUM_SIZE]) -> ZioCksum {
        let (words, _) = b.as_chunks::<8>();
        std::array::from_fn(|i| self.u64(words[i]))
    }

    /// Encodes a `zio_cksum_t` in this order.
    #[must_use]
    pub fn cksum_bytes(self, c: &ZioCksum) -> [u8; DRR_CHECKSUM_SIZE] {
        let mut out = [0u8; DRR_CHECKSUM_SIZE];
        for (i, w) in c.iter().enumerate() {
            out[8 * i..8 * i + 8].copy_from_slice(&self.u64_bytes(*w));
        }
        out
    }

    /// The other byte order.
    #[must_use]
    pub fn opposite(self) -> ByteOrder {
        match self {
            ByteOrder::Little => ByteOrder::Big,
            ByteOrder::Big => ByteOrder::Little,
        }
    }

    /// The order whose BEGIN magic these header bytes carry at offset 8, if any (§1.2).
    #[must_use]
    pub fn from_magic(hdr: &[u8; DRR_HEADER_SIZE]) -> Option<ByteOrder> {
        let raw = field::<8>(hdr, 8);
        if u64::from_le_bytes(raw) == DMU_BACKUP_MAGIC {
            Some(ByteOrder::Little)
        } else if u64::from_be_bytes(raw) == DMU_BACKUP_MAGIC {
            Some(ByteOrder::Big)
        } else {
            None
        }
    }
}

/// `N` header bytes at `off`; the offsets are compile-time facts of the layout.
fn field<const N: usize>(hdr: &[u8; DRR_HEADER_SIZE], off: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&hdr[off..off + N]);
    out
}

/// Field reader of one header in one byte order.
struct Dec<'a> {
    hdr: &'a [u8; DRR_HEADER_SIZE],
    order: ByteOrder,
}

impl Dec<'_> {
    fn u64(&self, off: usize) -> u64 {
        self.order.u64(field(self.hdr, off))
    }
    fn u32(&self, off: usize) -> u32 {
        self.order.u32(field(self.hdr, off))
    }
    fn u8(&self, off: usize) -> u8 {
        self.hdr[off]
    }
    fn bytes<const N: usize>(&self, off: usize) -> [u8; N] {
        field(self.hdr, off)
    }
    fn cksum(&self, off: usize) -> ZioCksum {
        std::array::from_fn(|i| self.u64(off + 8 * i))
    }
}

/// Field writer of one zero-filled header in one byte order.
struct Enc {
    hdr: [u8; DRR_HEADER_SIZE],
    order: ByteOrder,
}

impl Enc {
    fn new(order: ByteOrder, drr_type: u32) -> Self {
        let mut e = Enc { hdr: [0; DRR_HEADER_SIZE], order };
        e.u32(0, drr_type);
        e
    }
    fn u64(&mut self, off: usize, v: u64) {
        self.hdr[off..off + 8].copy_from_slice(&self.order.u64_bytes(v));
    }
    fn u32(&mut self, off: usize, v: u32) {
        self.hdr[off..off + 4].copy_from_slice(&self.order.u32_bytes(v));
    }
    fn u8(&mut self, off: usize, v: u8) {
        self.hdr[off] = v;
    }
    fn bytes(&mut self, off: usize, v: &[u8]) {
        self.hdr[off..off + v.len()].copy_from_slice(v);
    }
    fn cksum(&mut self, off: usize, c: &ZioCksum) {
        for (i, w) in c.iter().enumerate() {
            self.u64(off + 8 * i, *w);
        }
    }
}

/// `P2ROUNDUP(x, 8)` on a 32-bit field, wrapping as the C macro does on u32.
#[must_use]
pub const fn roundup8_u32(x: u32) -> u64 {
    (x.wrapping_add(7) & !7) as u64
}

/// BEGIN (§1.3): the stream's identity. `objset_type` is `drr_type` of `drr_begin`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DrrBegin {
    /// `drr_magic`, DMU_BACKUP_MAGIC.
    pub magic: u64,
    /// `drr_versioninfo`: hdrtype (bits 0-1) and feature flags (bits 2..).
    pub versioninfo: u64,
    /// `drr_creation_time` of the to-snapshot, seconds since the epoch.
    pub creation_time: u64,
    /// `drr_type`: dmu_objset_type_t (2 = ZFS, 3 = ZVOL).
    pub objset_type: u32,
    /// `drr_flags`: DRR_FLAG_*.
    pub flags: u32,
    /// `drr_toguid`: guid of the snapshot sent.
    pub toguid: u64,
    /// `drr_fromguid`: guid of the incremental source; 0 for a full stream.
    pub fromguid: u64,
    /// `drr_toname`, NUL-padded. Bytes 224.. are the checksum overlay: keep them zero.
    pub toname: [u8; DRR_TONAME_LEN],
}

impl Default for DrrBegin {
    fn default() -> Self {
        DrrBegin {
            magic: DMU_BACKUP_MAGIC,
            versioninfo: dmu_versioninfo(DMU_SUBSTREAM, 0),
            creation_time: 0,
            objset_type: 0,
            flags: 0,
            toguid: 0,
            fromguid: 0,
            toname: [0; DRR_TONAME_LEN],
        }
    }
}

impl DrrBegin {
    /// Sets `toname`; asserts it fits before the overlay (at most 223 bytes, no NUL).
    pub fn set_toname(&mut self, name: &str) {
        assert!(name.len() <= DRR_TONAME_MAX_LEN, "toname {name:?} too long");
        assert!(!name.as_bytes().contains(&0), "toname {name:?} contains NUL");
        self.toname = [0; DRR_TONAME_LEN];
        self.toname[..name.len()].copy_from_slice(name.as_bytes());
    }

    /// `toname` up to its first NUL, lossily decoded (as `%s` prints it).
    #[must_use]
    pub fn toname_str(&self) -> String {
        let end = self.toname.iter().position(|&b| b == 0).unwrap_or(DRR_TONAME_LEN);
        String::from_utf8_lossy(&self.toname[..end]).into_owned()
    }

    /// The stream's feature flags.
    #[must_use]
    pub fn features(&self) -> u64 {
        dmu_get_featureflags(self.versioninfo)
    }

    /// The stream's hdrtype (DMU_SUBSTREAM or DMU_COMPOUNDSTREAM).
    #[must_use]
    pub fn hdrtype(&self) -> u64 {
        dmu_get_stream_hdrtype(self.versioninfo)
    }
}

/// END (§1.3, §2.3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DrrEnd {
    /// `drr_checksum`: Fletcher-4 of the substream before this record (the writer fills it).
    pub checksum: ZioCksum,
    /// `drr_toguid`: BEGIN's toguid (0 in compound-stream ENDs).
    pub toguid: u64,
}

/// OBJECT (§1.3): one allocated dnode; its payload is the bonus buffer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DrrObject {
    /// `drr_object`: object number.
    pub object: u64,
    /// `drr_type`: dmu_object_type_t of the dnode.
    pub object_type: u32,
    /// `drr_bonustype`.
    pub bonustype: u32,
    /// `drr_blksz`: data block size in bytes.
    pub blksz: u32,
    /// `drr_bonuslen`: logical bonus length.
    pub bonuslen: u32,
    /// `drr_checksumtype`: the dnode's checksum property.
    pub checksumtype: u8,
    /// `drr_compress`: the dnode's compression property.
    pub compress: u8,
    /// `drr_dn_slots`: dnode slots (0 from old senders means 1).
    pub dn_slots: u8,
    /// `drr_flags`: DRR_OBJECT_SPILL, DRR_RAW_BYTESWAP.
    pub flags: u8,
    /// `drr_raw_bonuslen`: raw streams only.
    pub raw_bonuslen: u32,
    /// `drr_toguid`.
    pub toguid: u64,
    /// `drr_indblkshift`: raw only.
    pub indblkshift: u8,
    /// `drr_nlevels`: raw only.
    pub nlevels: u8,
    /// `drr_nblkptr`: raw only.
    pub nblkptr: u8,
    /// `drr_maxblkid`: raw only.
    pub maxblkid: u64,
}

impl DrrObject {
    /// Payload bytes (§1.4): `raw_bonuslen` if set, else `roundup8(bonuslen)`.
    #[must_use]
    pub fn payload_len(&self) -> u64 {
        if self.raw_bonuslen != 0 {
            u64::from(self.raw_bonuslen)
        } else {
            roundup8_u32(self.bonuslen)
        }
    }
}

/// FREEOBJECTS (§1.3): objects [firstobj, firstobj + numobjs) do not exist.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DrrFreeObjects {
    /// `drr_firstobj`.
    pub firstobj: u64,
    /// `drr_numobjs`.
    pub numobjs: u64,
    /// `drr_toguid`.
    pub toguid: u64,
}

/// The dedup key of WRITE / WRITE_BYREF (`ddt_key_t`): integers, byteswapped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DdtKey {
    /// `ddk_cksum`: the block pointer's checksum.
    pub cksum: ZioCksum,
    /// `ddk_prop`: lsize/psize/compression bits ("props" in zstream dump).
    pub prop: u64,
}

/// WRITE (§1.3): one block of data.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DrrWrite {
    /// `drr_object`.
    pub object: u64,
    /// `drr_type`: object type, used by the receiver to byteswap.
    pub object_type: u32,
    /// `drr_offset`: byte offset (block aligned).
    pub offset: u64,
    /// `drr_logical_size`: logical block size.
    pub logical_size: u64,
    /// `drr_toguid`.
    pub toguid: u64,
    /// `drr_checksumtype`: the BP's checksum algorithm, 2 (OFF) when none.
    pub checksumtype: u8,
    /// `drr_flags`: DRR_CHECKSUM_DEDUP, DRR_RAW_BYTESWAP.
    pub flags: u8,
    /// `drr_compressiontype`: 0 = payload is logical data.
    pub compressiontype: u8,
    /// `drr_key`.
    pub key: DdtKey,
    /// `drr_compressed_size`: payload size when compressed or raw, else 0.
    pub compressed_size: u64,
    /// `drr_salt`: raw only.
    pub salt: [u8; ZIO_DATA_SALT_LEN],
    /// `drr_iv`: raw only.
    pub iv: [u8; ZIO_DATA_IV_LEN],
    /// `drr_mac`: raw only.
    pub mac: [u8; ZIO_DATA_MAC_LEN],
}

impl DrrWrite {
    /// Payload bytes (§1.4): `compressed_size` if compressed, else `logical_size`.
    #[must_use]
    pub fn payload_len(&self) -> u64 {
        if self.compressiontype != 0 {
            self.compressed_size
        } else {
            self.logical_size
        }
    }
}

/// FREE (§1.3): a byte range of an object is a hole; `length` DMU_OBJECT_END = to the end.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DrrFree {
    /// `drr_object`.
    pub object: u64,
    /// `drr_offset`.
    pub offset: u64,
    /// `drr_length`.
    pub length: u64,
    /// `drr_toguid`.
    pub toguid: u64,
}

/// WRITE_BYREF (§1.3): pre-2.0 dedup reference; decoded only.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DrrWriteByref {
    /// `drr_object`.
    pub object: u64,
    /// `drr_offset`.
    pub offset: u64,
    /// `drr_length`.
    pub length: u64,
    /// `drr_toguid`.
    pub toguid: u64,
    /// `drr_refguid`: snapshot holding the original data.
    pub refguid: u64,
    /// `drr_refobject`.
    pub refobject: u64,
    /// `drr_refoffset`.
    pub refoffset: u64,
    /// `drr_checksumtype`.
    pub checksumtype: u8,
    /// `drr_flags`.
    pub flags: u8,
    /// `drr_key`.
    pub key: DdtKey,
}

/// SPILL (§1.3): an object's spill block.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DrrSpill {
    /// `drr_object`.
    pub object: u64,
    /// `drr_length`: logical spill block size.
    pub length: u64,
    /// `drr_toguid`.
    pub toguid: u64,
    /// `drr_flags`: DRR_SPILL_UNMODIFIED, DRR_RAW_BYTESWAP.
    pub flags: u8,
    /// `drr_compressiontype`: raw only.
    pub compressiontype: u8,
    /// `drr_compressed_size`: raw only.
    pub compressed_size: u64,
    /// `drr_salt`.
    pub salt: [u8; ZIO_DATA_SALT_LEN],
    /// `drr_iv`.
    pub iv: [u8; ZIO_DATA_IV_LEN],
    /// `drr_mac`.
    pub mac: [u8; ZIO_DATA_MAC_LEN],
    /// `drr_type`: object type (2.3 senders leave it 0).
    pub object_type: u32,
}

impl DrrSpill {
    /// Payload bytes (§1.4): `compressed_size` if non-zero, else `length`.
    #[must_use]
    pub fn payload_len(&self) -> u64 {
        if self.compressed_size != 0 {
            self.compressed_size
        } else {
            self.length
        }
    }
}

/// WRITE_EMBEDDED (§1.3): a block whose data lived in its block pointer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DrrWriteEmbedded {
    /// `drr_object`.
    pub object: u64,
    /// `drr_offset`.
    pub offset: u64,
    /// `drr_length`: logical length (the object's block size).
    pub length: u64,
    /// `drr_toguid`.
    pub toguid: u64,
    /// `drr_compression`: compression of the payload (15 = LZ4).
    pub compression: u8,
    /// `drr_etype`: 0 = BP_EMBEDDED_TYPE_DATA.
    pub etype: u8,
    /// `drr_lsize`: uncompressed size.
    pub lsize: u32,
    /// `drr_psize`: compressed size, ≤ 112.
    pub psize: u32,
}

impl DrrWriteEmbedded {
    /// Payload bytes (§1.4): `roundup8(psize)`.
    #[must_use]
    pub fn payload_len(&self) -> u64 {
        roundup8_u32(self.psize)
    }
}

/// OBJECT_RANGE (§1.3): encryption parameters of one dnode block (raw streams).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DrrObjectRange {
    /// `drr_firstobj`.
    pub firstobj: u64,
    /// `drr_numslots`.
    pub numslots: u64,
    /// `drr_toguid`.
    pub toguid: u64,
    /// `drr_salt`.
    pub salt: [u8; ZIO_DATA_SALT_LEN],
    /// `drr_iv`.
    pub iv: [u8; ZIO_DATA_IV_LEN],
    /// `drr_mac`.
    pub mac: [u8; ZIO_DATA_MAC_LEN],
    /// `drr_flags`: DRR_RAW_BYTESWAP.
    pub flags: u8,
}

/// REDACT (§1.3): a redacted range, received like a FREE.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DrrRedact {
    /// `drr_object`.
    pub object: u64,
    /// `drr_offset`.
    pub offset: u64,
    /// `drr_length`.
    pub length: u64,
    /// `drr_toguid`.
    pub toguid: u64,
}

/// One record: a decoded header and its payload. Payloads are never byteswapped here (§1.1);
/// `Object::bonus`, `Write::data`, `Spill::data` and `WriteEmbedded::data` are the payload
/// bytes as on the wire (a WRITE_EMBEDDED payload includes its zero padding to 8 bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    /// BEGIN with its packed-nvlist payload (possibly empty).
    Begin {
        /// The header fields.
        drr: DrrBegin,
        /// The packed nvlist, `drr_payloadlen` bytes.
        payload: Vec<u8>,
    },
    /// END.
    End(DrrEnd),
    /// OBJECT with its bonus buffer.
    Object {
        /// The header fields.
        drr: DrrObject,
        /// The bonus buffer (roundup8(bonuslen) or raw_bonuslen bytes).
        bonus: Vec<u8>,
    },
    /// FREEOBJECTS.
    FreeObjects(DrrFreeObjects),
    /// WRITE with its block data.
    Write {
        /// The header fields.
        drr: DrrWrite,
        /// Logical data, or on-disk bytes if compressed/raw.
        data: Vec<u8>,
    },
    /// FREE.
    Free(DrrFree),
    /// WRITE_BYREF.
    WriteByref(DrrWriteByref),
    /// SPILL with its spill block.
    Spill {
        /// The header fields.
        drr: DrrSpill,
        /// The spill block.
        data: Vec<u8>,
    },
    /// WRITE_EMBEDDED with its compressed payload.
    WriteEmbedded {
        /// The header fields.
        drr: DrrWriteEmbedded,
        /// psize compressed bytes, zero-padded to a multiple of 8.
        data: Vec<u8>,
    },
    /// OBJECT_RANGE.
    ObjectRange(DrrObjectRange),
    /// REDACT.
    Redact(DrrRedact),
}

impl Record {
    /// The record's `drr_type` number.
    #[must_use]
    pub fn drr_type(&self) -> u32 {
        match self {
            Record::Begin { .. } => DRR_BEGIN,
            Record::End(_) => DRR_END,
            Record::Object { .. } => DRR_OBJECT,
            Record::FreeObjects(_) => DRR_FREEOBJECTS,
            Record::Write { .. } => DRR_WRITE,
            Record::Free(_) => DRR_FREE,
            Record::WriteByref(_) => DRR_WRITE_BYREF,
            Record::Spill { .. } => DRR_SPILL,
            Record::WriteEmbedded { .. } => DRR_WRITE_EMBEDDED,
            Record::ObjectRange(_) => DRR_OBJECT_RANGE,
            Record::Redact(_) => DRR_REDACT,
        }
    }

    /// The payload bytes carried (empty for header-only records).
    #[must_use]
    pub fn payload(&self) -> &[u8] {
        match self {
            Record::Begin { payload, .. } => payload,
            Record::Object { bonus, .. } => bonus,
            Record::Write { data, .. }
            | Record::Spill { data, .. }
            | Record::WriteEmbedded { data, .. } => data,
            _ => &[],
        }
    }

    fn payload_mut(&mut self) -> Option<&mut Vec<u8>> {
        match self {
            Record::Begin { payload, .. } => Some(payload),
            Record::Object { bonus, .. } => Some(bonus),
            Record::Write { data, .. }
            | Record::Spill { data, .. }
            | Record::WriteEmbedded { data, .. } => Some(data),
            _ => None,
        }
    }

    /// Payload bytes the header fields call for (§1.4; BEGIN: the payload carried).
    #[must_use]
    pub fn payload_len_from_header(&self) -> u64 {
        match self {
            Record::Begin { payload, .. } => payload.len() as u64,
            Record::Object { drr, .. } => drr.payload_len(),
            Record::Write { drr, .. } => drr.payload_len(),
            Record::Spill { drr, .. } => drr.payload_len(),
            Record::WriteEmbedded { drr, .. } => drr.payload_len(),
            _ => 0,
        }
    }
}

/// Encodes a record's 312-byte header in `order`, zero-filled, with a zero checksum overlay
/// (BEGIN: toname's tail as given). BEGIN's `drr_payloadlen` is the payload's length.
#[must_use]
pub fn encode_header(rec: &Record, order: ByteOrder) -> [u8; DRR_HEADER_SIZE] {
    let mut e = Enc::new(order, rec.drr_type());
    match rec {
        Record::Begin { drr, payload } => {
            let len = u32::try_from(payload.len()).expect("invariant: BEGIN payload < 4 GiB");
            e.u32(4, len);
            encode_begin(&mut e, drr);
        }
        Record::End(drr) => {
            e.cksum(8, &drr.checksum);
            e.u64(40, drr.toguid);
        }
        Record::Object { drr, .. } => encode_object(&mut e, drr),
        Record::FreeObjects(drr) => {
            e.u64(8, drr.firstobj);
            e.u64(16, drr.numobjs);
            e.u64(24, drr.toguid);
        }
        Record::Write { drr, .. } => encode_write(&mut e, drr),
        Record::Free(drr) => encode_range(&mut e, drr.object, drr.offset, drr.length, drr.toguid),
        Record::WriteByref(drr) => encode_write_byref(&mut e, drr),
        Record::Spill { drr, .. } => encode_spill(&mut e, drr),
        Record::WriteEmbedded { drr, .. } => encode_write_embedded(&mut e, drr),
        Record::ObjectRange(drr) => encode_object_range(&mut e, drr),
        Record::Redact(drr) => encode_range(&mut e, drr.object, drr.offset, drr.length, drr.toguid),
    }
    e.hdr
}

fn encode_begin(e: &mut Enc, drr: &DrrBegin) {
    e.u64(8, drr.magic);
    e.u64(16, drr.versioninfo);
    e.u64(24, drr.creation_time);
    e.u32(32, drr.objset_type);
    e.u32(36, drr.flags);
    e.u64(40, drr.toguid);
    e.u64(48, drr.fromguid);
    e.bytes(56, &drr.toname);
}

fn encode_object(e: &mut Enc, drr: &DrrObject) {
    e.u64(8, drr.object);
    e.u32(16, drr.object_type);
    e.u32(20, drr.bonustype);
    e.u32(24, drr.blksz);
    e.u32(28, drr.bonuslen);
    e.u8(32, drr.checksumtype);
    e.u8(33, drr.compress);
    e.u8(34, drr.dn_slots);
    e.u8(35, drr.flags);
    e.u32(36, drr.raw_bonuslen);
    e.u64(40, drr.toguid);
    e.u8(48, drr.indblkshift);
    e.u8(49, drr.nlevels);
    e.u8(50, drr.nblkptr);
    e.u64(56, drr.maxblkid);
}

fn encode_write(e: &mut Enc, drr: &DrrWrite) {
    e.u64(8, drr.object);
    e.u32(16, drr.object_type);
    e.u64(24, drr.offset);
    e.u64(32, drr.logical_size);
    e.u64(40, drr.toguid);
    e.u8(48, drr.checksumtype);
    e.u8(49, drr.flags);
    e.u8(50, drr.compressiontype);
    e.cksum(56, &drr.key.cksum);
    e.u64(88, drr.key.prop);
    e.u64(96, drr.compressed_size);
    e.bytes(104, &drr.salt);
    e.bytes(112, &drr.iv);
    e.bytes(124, &drr.mac);
}

fn encode_range(e: &mut Enc, object: u64, offset: u64, length: u64, toguid: u64) {
    e.u64(8, object);
    e.u64(16, offset);
    e.u64(24, length);
    e.u64(32, toguid);
}

fn encode_write_byref(e: &mut Enc, drr: &DrrWriteByref) {
    encode_range(e, drr.object, drr.offset, drr.length, drr.toguid);
    e.u64(40, drr.refguid);
    e.u64(48, drr.refobject);
    e.u64(56, drr.refoffset);
    e.u8(64, drr.checksumtype);
    e.u8(65, drr.flags);
    e.cksum(72, &drr.key.cksum);
    e.u64(104, drr.key.prop);
}

fn encode_spill(e: &mut Enc, drr: &DrrSpill) {
    e.u64(8, drr.object);
    e.u64(16, drr.length);
    e.u64(24, drr.toguid);
    e.u8(32, drr.flags);
    e.u8(33, drr.compressiontype);
    e.u64(40, drr.compressed_size);
    e.bytes(48, &drr.salt);
    e.bytes(56, &drr.iv);
    e.bytes(68, &drr.mac);
    e.u32(84, drr.object_type);
}

fn encode_write_embedded(e: &mut Enc, drr: &DrrWriteEmbedded) {
    encode_range(e, drr.object, drr.offset, drr.length, drr.toguid);
    e.u8(40, drr.compression);
    e.u8(41, drr.etype);
    e.u32(48, drr.lsize);
    e.u32(52, drr.psize);
}

fn encode_object_range(e: &mut Enc, drr: &DrrObjectRange) {
    e.u64(8, drr.firstobj);
    e.u64(16, drr.numslots);
    e.u64(24, drr.toguid);
    e.bytes(32, &drr.salt);
    e.bytes(40, &drr.iv);
    e.bytes(52, &drr.mac);
    e.u8(68, drr.flags);
}

/// A decoded header: the record (with an empty payload) and the payload length its fields
/// call for (§1.4; BEGIN: `drr_payloadlen`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodedHeader {
    /// The record, payload not yet read.
    pub record: Record,
    /// Bytes of payload that follow the header.
    pub payload_len: u64,
}

/// `drr_type` of a header in `order`.
#[must_use]
pub fn header_drr_type(hdr: &[u8; DRR_HEADER_SIZE], order: ByteOrder) -> u32 {
    order.u32(field(hdr, 0))
}

/// The stored per-record checksum (offset 280) of a header in `order`.
#[must_use]
pub fn header_checksum(hdr: &[u8; DRR_HEADER_SIZE], order: ByteOrder) -> ZioCksum {
    order.cksum(&field(hdr, DRR_CHECKSUM_OFFSET))
}

/// Decodes a header; `byteswap` means the stream is in the opposite order of this host.
/// Every integer field is swapped as the kernel's `byteswap_record()` does. `None` if
/// `drr_type` is not a record type (≥ DRR_NUMTYPES). Never panics.
#[must_use]
pub fn decode_header(hdr: &[u8; DRR_HEADER_SIZE], byteswap: bool) -> Option<DecodedHeader> {
    let order = if byteswap { ByteOrder::HOST.opposite() } else { ByteOrder::HOST };
    decode_header_in(hdr, order)
}

/// `decode_header` for an explicit stream byte order.
#[must_use]
pub fn decode_header_in(hdr: &[u8; DRR_HEADER_SIZE], order: ByteOrder) -> Option<DecodedHeader> {
    let d = Dec { hdr, order };
    let record = match d.u32(0) {
        DRR_BEGIN => Record::Begin { drr: decode_begin(&d), payload: Vec::new() },
        DRR_END => Record::End(DrrEnd { checksum: d.cksum(8), toguid: d.u64(40) }),
        DRR_OBJECT => Record::Object { drr: decode_object(&d), bonus: Vec::new() },
        DRR_FREEOBJECTS => Record::FreeObjects(DrrFreeObjects {
            firstobj: d.u64(8),
            numobjs: d.u64(16),
            toguid: d.u64(24),
        }),
        DRR_WRITE => Record::Write { drr: decode_write(&d), data: Vec::new() },
        DRR_FREE => {
            let (object, offset, length, toguid) = decode_range(&d);
            Record::Free(DrrFree { object, offset, length, toguid })
        }
        DRR_WRITE_BYREF => Record::WriteByref(decode_write_byref(&d)),
        DRR_SPILL => Record::Spill { drr: decode_spill(&d), data: Vec::new() },
        DRR_WRITE_EMBEDDED => {
            Record::WriteEmbedded { drr: decode_write_embedded(&d), data: Vec::new() }
        }
        DRR_OBJECT_RANGE => Record::ObjectRange(decode_object_range(&d)),
        DRR_REDACT => {
            let (object, offset, length, toguid) = decode_range(&d);
            Record::Redact(DrrRedact { object, offset, length, toguid })
        }
        _ => return None,
    };
    let payload_len = match &record {
        Record::Begin { .. } => u64::from(d.u32(4)),
        other => other.payload_len_from_header(),
    };
    Some(DecodedHeader { record, payload_len })
}

fn decode_begin(d: &Dec<'_>) -> DrrBegin {
    DrrBegin {
        magic: d.u64(8),
        versioninfo: d.u64(16),
        creation_time: d.u64(24),
        objset_type: d.u32(32),
        flags: d.u32(36),
        toguid: d.u64(40),
        fromguid: d.u64(48),
        toname: d.bytes(56),
    }
}

fn decode_object(d: &Dec<'_>) -> DrrObject {
    DrrObject {
        object: d.u64(8),
        object_type: d.u32(16),
        bonustype: d.u32(20),
        blksz: d.u32(24),
        bonuslen: d.u32(28),
        checksumtype: d.u8(32),
        compress: d.u8(33),
        dn_slots: d.u8(34),
        flags: d.u8(35),
        raw_bonuslen: d.u32(36),
        toguid: d.u64(40),
        indblkshift: d.u8(48),
        nlevels: d.u8(49),
        nblkptr: d.u8(50),
        maxblkid: d.u64(56),
    }
}

fn decode_write(d: &Dec<'_>) -> DrrWrite {
    DrrWrite {
        object: d.u64(8),
        object_type: d.u32(16),
        offset: d.u64(24),
        logical_size: d.u64(32),
        toguid: d.u64(40),
        checksumtype: d.u8(48),
        flags: d.u8(49),
        compressiontype: d.u8(50),
        key: DdtKey { cksum: d.cksum(56), prop: d.u64(88) },
        compressed_size: d.u64(96),
        salt: d.bytes(104),
        iv: d.bytes(112),
        mac: d.bytes(124),
    }
}

fn decode_range(d: &Dec<'_>) -> (u64, u64, u64, u64) {
    (d.u64(8), d.u64(16), d.u64(24), d.u64(32))
}

fn decode_write_byref(d: &Dec<'_>) -> DrrWriteByref {
    let (object, offset, length, toguid) = decode_range(d);
    DrrWriteByref {
        object,
        offset,
        length,
        toguid,
        refguid: d.u64(40),
        refobject: d.u64(48),
        refoffset: d.u64(56),
        checksumtype: d.u8(64),
        flags: d.u8(65),
        key: DdtKey { cksum: d.cksum(72), prop: d.u64(104) },
    }
}

fn decode_spill(d: &Dec<'_>) -> DrrSpill {
    DrrSpill {
        object: d.u64(8),
        length: d.u64(16),
        toguid: d.u64(24),
        flags: d.u8(32),
        compressiontype: d.u8(33),
        compressed_size: d.u64(40),
        salt: d.bytes(48),
        iv: d.bytes(56),
        mac: d.bytes(68),
        object_type: d.u32(84),
    }
}

fn decode_write_embedded(d: &Dec<'_>) -> DrrWriteEmbedded {
    let (object, offset, length, toguid) = decode_range(d);
    DrrWriteEmbedded {
        object,
        offset,
        length,
        toguid,
        compression: d.u8(40),
        etype: d.u8(41),
        lsize: d.u32(48),
        psize: d.u32(52),
    }
}

fn decode_object_range(d: &Dec<'_>) -> DrrObjectRange {
    DrrObjectRange {
        firstobj: d.u64(8),
        numslots: d.u64(16),
        toguid: d.u64(24),
        salt: d.bytes(32),
        iv: d.bytes(40),
        mac: d.bytes(52),
        flags: d.u8(68),
    }
}

/// Errors of reading a stream, each with the index of the record (BEGIN = 0) and the ZFS
/// meaning: the kernel's EINVAL, ECKSUM, ZFS_ERR_STREAM_TRUNCATED, ERANGE/E2BIG.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// A BEGIN whose magic is neither order of DMU_BACKUP_MAGIC, or a first record that is
    /// not a BEGIN ("invalid stream (bad magic number)", EINVAL).
    #[error("invalid stream (bad magic number) at record {record}")]
    BadMagic {
        /// Record index.
        record: u64,
    },
    /// A non-zero per-record checksum differs from the running Fletcher-4 (ECKSUM).
    #[error("checksum mismatch in the header of record {record}")]
    Checksum {
        /// Record index.
        record: u64,
    },
    /// An END's `drr_checksum` differs from the checksum of its substream (ECKSUM).
    #[error("END record {record}: substream checksum mismatch")]
    EndChecksum {
        /// Record index.
        record: u64,
    },
    /// The stream ends inside a header or payload (ZFS_ERR_STREAM_TRUNCATED).
    #[error("stream truncated in record {record}")]
    Truncated {
        /// Record index.
        record: u64,
    },
    /// `drr_type` ≥ DRR_NUMTYPES (EINVAL).
    #[error("record {record}: invalid record type {drr_type}")]
    InvalidType {
        /// Record index.
        record: u64,
        /// The type found.
        drr_type: u32,
    },
    /// A payload longer than its limit (ERANGE; E2BIG for BEGIN).
    #[error("record {record}: payload of {len} bytes exceeds the limit")]
    TooLarge {
        /// Record index.
        record: u64,
        /// The claimed length.
        len: u64,
    },
    /// The underlying reader failed.
    #[error("record {record}: I/O error: {reason}")]
    Io {
        /// Record index.
        record: u64,
        /// The I/O error text.
        reason: String,
    },
}

impl StreamError {
    /// Index of the record the error is about.
    #[must_use]
    pub fn record(&self) -> u64 {
        match self {
            StreamError::BadMagic { record }
            | StreamError::Checksum { record }
            | StreamError::EndChecksum { record }
            | StreamError::Truncated { record }
            | StreamError::InvalidType { record, .. }
            | StreamError::TooLarge { record, .. }
            | StreamError::Io { record, .. } => *record,
        }
    }
}

/// The payload limit of a record type (§1.4, §4.3).
#[must_use]
pub fn payload_limit(drr_type: u32) -> u64 {
    if drr_type == DRR_BEGIN {
        DRR_BEGIN_PAYLOAD_MAX_BYTES
    } else {
        DRR_PAYLOAD_MAX_BYTES
    }
}

/// Writes records with the running checksum of §2.2-2.3.
/// The state resets at every BEGIN and after every END, so compound streams (§1.6) come
/// out right, including the trailing all-zero END.
pub struct StreamWriter<W: Write> {
    w: W,
    order: ByteOrder,
    cksum: Fletcher4,
    bytes_written: u64,
    records_written: u64,
}

impl<W: Write> StreamWriter<W> {
    /// A writer emitting integers and checksum words in `order`.
    pub fn new(w: W, order: ByteOrder) -> Self {
        StreamWriter { w, order, cksum: Fletcher4::new(), bytes_written: 0, records_written: 0 }
    }

    /// Writes one record: zero-filled header, END's `drr_checksum` filled in (the value
    /// given is ignored), per-record checksum, payload zero-padded to the length the header
    /// calls for (§1.4). Asserts the payload is at most that long and short of it by < 8.
    pub fn write_record(&mut self, rec: &Record) -> io::Result<()> {
        let mut hdr = encode_header(rec, self.order);
        let is_begin = matches!(rec, Record::Begin { .. });
        if is_begin {
            self.cksum = Fletcher4::new();
        }
        if let Record::End(_) = rec {
            // §2.3: the END checksum covers everything of the substream before END.
            hdr[8..40].copy_from_slice(&self.order.cksum_bytes(&self.cksum.finish()));
        }
        let payload = padded_payload(rec);
        self.order.fletcher4_update(&mut self.cksum, &hdr[..DRR_CHECKSUM_OFFSET]);
        if !is_begin {
            let c = self.order.cksum_bytes(&self.cksum.finish());
            hdr[DRR_CHECKSUM_OFFSET..].copy_from_slice(&c);
        }
        self.order.fletcher4_update(&mut self.cksum, &hdr[DRR_CHECKSUM_OFFSET..]);
        self.order.fletcher4_update(&mut self.cksum, &payload);
        self.w.write_all(&hdr)?;
        self.w.write_all(&payload)?;
        self.bytes_written += (DRR_HEADER_SIZE + payload.len()) as u64;
        self.records_written += 1;
        if let Record::End(_) = rec {
            self.cksum = Fletcher4::new();
        }
        Ok(())
    }

    /// Writes an END the way libzfs writes the compound-header END and the final package END
    /// (§1.6): `drr_checksum` = the running state (zero right after another END), toguid 0,
    /// and a zero per-record checksum ("not checked" for every reader).
    pub fn write_compound_end(&mut self) -> io::Result<()> {
        let end = DrrEnd { checksum: self.cksum.finish(), toguid: 0 };
        let hdr = encode_header(&Record::End(end), self.order);
        assert!(hdr[DRR_CHECKSUM_OFFSET..].iter().all(|&b| b == 0), "overlay left zero");
        self.w.write_all(&hdr)?;
        self.bytes_written += DRR_HEADER_SIZE as u64;
        self.records_written += 1;
        self.cksum = Fletcher4::new();
        Ok(())
    }

    /// Bytes written so far.
    #[must_use]
    pub fn bytes_written(&self) -> u64 {
        self.bytes_written
    }

    /// Records written so far.
    #[must_use]
    pub fn records_written(&self) -> u64 {
        self.records_written
    }

    /// The running checksum of the current substream.
    #[must_use]
    pub fn running_checksum(&self) -> ZioCksum {
        self.cksum.finish()
    }

    /// Flushes and returns the inner writer.
    pub fn into_inner(mut self) -> io::Result<W> {
        self.w.flush()?;
        Ok(self.w)
    }
}

/// The payload of `rec` zero-padded to the length its header calls for.
fn padded_payload(rec: &Record) -> std::borrow::Cow<'_, [u8]> {
    let data = rec.payload();
    let need = rec.payload_len_from_header();
    let have = data.len() as u64;
    assert!(have <= need, "{} payload {have} > {need}", drr_type_name(rec.drr_type()));
    assert!(need - have < 8, "{} payload {have} short of {need}", drr_type_name(rec.drr_type()));
    if have == need {
        std::borrow::Cow::Borrowed(data)
    } else {
        let mut v = data.to_vec();
        v.resize(need as usize, 0);
        std::borrow::Cow::Owned(v)
    }
}

/// Reads records, verifying checksums by the kernel's rules (§2.3): byte order from the
/// first BEGIN's magic, every integer field swapped for opposite-endian streams, payloads
/// left as on the wire (see `is_byteswapped`). Continues after END (compound streams): the
/// running checksum restarts at each BEGIN. After an error, every call returns that error.
pub struct StreamReader<R: Read> {
    r: R,
    order: Option<ByteOrder>,
    cksum: Fletcher4,
    records_read: u64,
    bytes_read: u64,
    failed: Option<StreamError>,
}

impl<R: Read> StreamReader<R> {
    /// A reader over `r`; the byte order is learned from the first record.
    pub fn new(r: R) -> Self {
        StreamReader {
            r,
            order: None,
            cksum: Fletcher4::new(),
            records_read: 0,
            bytes_read: 0,
            failed: None,
        }
    }

    /// True if the stream is in the opposite byte order of this host (known after the first
    /// record): the receiver must byteswap non-raw payloads by object type (§3.9).
    #[must_use]
    pub fn is_byteswapped(&self) -> bool {
        self.order.is_some_and(|o| o != ByteOrder::HOST)
    }

    /// The stream's byte order, once known.
    #[must_use]
    pub fn byte_order(&self) -> Option<ByteOrder> {
        self.order
    }

    /// Records returned so far.
    #[must_use]
    pub fn records_read(&self) -> u64 {
        self.records_read
    }

    /// Bytes consumed so far.
    #[must_use]
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// The next record; `Ok(None)` at a clean end of input (on a record boundary).
    pub fn next_record(&mut self) -> Result<Option<Record>, StreamError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let r = self.read_record();
        if let Err(e) = &r {
            self.failed = Some(e.clone());
        }
        r
    }

    fn read_record(&mut self) -> Result<Option<Record>, StreamError> {
        let record = self.records_read;
        let mut hdr = [0u8; DRR_HEADER_SIZE];
        let got = read_full(&mut self.r, &mut hdr).map_err(|e| io_err(record, &e))?;
        self.bytes_read += got as u64;
        if got == 0 {
            return Ok(None);
        }
        if got < DRR_HEADER_SIZE {
            return Err(StreamError::Truncated { record });
        }
        let order = self.header_order(&hdr, record)?;
        let drr_type = header_drr_type(&hdr, order);
        let before = self.check_header_checksum(&hdr, order, drr_type, record)?;
        let Some(dec) = decode_header_in(&hdr, order) else {
            return Err(StreamError::InvalidType { record, drr_type });
        };
        if let Record::End(end) = &dec.record {
            if end.checksum != before {
                return Err(StreamError::EndChecksum { record });
            }
        }
        let mut rec = dec.record;
        self.read_payload(&mut rec, dec.payload_len, order, record)?;
        if drr_type == DRR_END {
            self.cksum = Fletcher4::new();
        }
        self.records_read += 1;
        Ok(Some(rec))
    }

    /// The byte order, learned from the first record; every BEGIN's magic is checked.
    fn header_order(
        &mut self,
        hdr: &[u8; DRR_HEADER_SIZE],
        record: u64,
    ) -> Result<ByteOrder, StreamError> {
        let order = match self.order {
            Some(o) => o,
            None => {
                let o = ByteOrder::from_magic(hdr).ok_or(StreamError::BadMagic { record })?;
                if header_drr_type(hdr, o) != DRR_BEGIN {
                    return Err(StreamError::BadMagic { record });
                }
                self.order = Some(o);
                o
            }
        };
        let is_begin = header_drr_type(hdr, order) == DRR_BEGIN;
        if is_begin && order.u64(field(hdr, 8)) != DMU_BACKUP_MAGIC {
            return Err(StreamError::BadMagic { record });
        }
        Ok(order)
    }

    /// Folds the header into the running checksum, verifying the per-record checksum of
    /// non-BEGIN records (§2.3). Returns the state before the header (END's reference).
    fn check_header_checksum(
        &mut self,
        hdr: &[u8; DRR_HEADER_SIZE],
        order: ByteOrder,
        drr_type: u32,
        record: u64,
    ) -> Result<ZioCksum, StreamError> {
        if drr_type == DRR_BEGIN {
            self.cksum = Fletcher4::new();
            order.fletcher4_update(&mut self.cksum, hdr);
            return Ok([0; 4]);
        }
        let before = self.cksum.finish();
        order.fletcher4_update(&mut self.cksum, &hdr[..DRR_CHECKSUM_OFFSET]);
        let stored = header_checksum(hdr, order);
        if stored != [0; 4] && stored != self.cksum.finish() {
            return Err(StreamError::Checksum { record });
        }
        order.fletcher4_update(&mut self.cksum, &hdr[DRR_CHECKSUM_OFFSET..]);
        Ok(before)
    }

    fn read_payload(
        &mut self,
        rec: &mut Record,
        len: u64,
        order: ByteOrder,
        record: u64,
    ) -> Result<(), StreamError> {
        if len > payload_limit(rec.drr_type()) {
            return Err(StreamError::TooLarge { record, len });
        }
        let Some(buf) = rec.payload_mut() else {
            assert_eq!(len, 0, "header-only record with a payload");
            return Ok(());
        };
        let len = usize::try_from(len).map_err(|_| StreamError::TooLarge { record, len })?;
        // Grow the buffer as the bytes arrive: a truncated record claiming a large payload
        // costs what the stream holds, not what it claims.
        buf.clear();
        while buf.len() < len {
            let at = buf.len();
            buf.resize(at + (len - at).min(PAYLOAD_READ_CHUNK), 0);
            let got = read_full(&mut self.r, &mut buf[at..]).map_err(|e| io_err(record, &e))?;
            self.bytes_read += got as u64;
            if at + got < buf.len() {
                return Err(StreamError::Truncated { record });
            }
        }
        order.fletcher4_update(&mut self.cksum, buf);
        Ok(())
    }
}

/// Payload bytes read (and allocated) at a time.
const PAYLOAD_READ_CHUNK: usize = 128 * 1024;

fn io_err(record: u64, e: &io::Error) -> StreamError {
    StreamError::Io { record, reason: e.to_string() }
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
pub(crate) fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Recomputes every per-record checksum and END checksum of `stream` in place of the stored
/// ones (§2.2-2.3), keeping every other byte. For fuzzers: mutate, then re-checksum, so the
/// mutation reaches the record validators. The state resets at BEGIN and after END, as in
/// StreamWriter. Fails on framing errors (bad magic, bad type, oversize or cut payload).
pub fn rechecksum(stream: &[u8]) -> Result<Vec<u8>, StreamError> {
    let mut out = stream.to_vec();
    let mut pos = 0usize;
    let mut record = 0u64;
    let mut cksum = Fletcher4::new();
    let mut order = None;
    while pos < out.len() {
        let Some(hdr_bytes) = out.get(pos..pos + DRR_HEADER_SIZE) else {
            return Err(StreamError::Truncated { record });
        };
        let mut hdr = [0u8; DRR_HEADER_SIZE];
        hdr.copy_from_slice(hdr_bytes);
        let o = match order {
            Some(o) => o,
            None => ByteOrder::from_magic(&hdr).ok_or(StreamError::BadMagic { record })?,
        };
        order = Some(o);
        let drr_type = header_drr_type(&hdr, o);
        let dec = decode_header_in(&hdr, o).ok_or(StreamError::InvalidType { record, drr_type })?;
        if dec.payload_len > payload_limit(drr_type) {
            return Err(StreamError::TooLarge { record, len: dec.payload_len });
        }
        let plen = dec.payload_len as usize;
        let end = pos + DRR_HEADER_SIZE + plen;
        if end > out.len() {
            return Err(StreamError::Truncated { record });
        }
        rechecksum_header(&mut hdr, o, drr_type, &mut cksum);
        out[pos..pos + DRR_HEADER_SIZE].copy_from_slice(&hdr);
        o.fletcher4_update(&mut cksum, &out[pos + DRR_HEADER_SIZE..end]);
        if drr_type == DRR_END {
            cksum = Fletcher4::new();
        }
        pos = end;
        record += 1;
    }
    Ok(out)
}

/// Sets the checksums of one header from the running state and folds the header in.
fn rechecksum_header(
    hdr: &mut [u8; DRR_HEADER_SIZE],
    order: ByteOrder,
    drr_type: u32,
    cksum: &mut Fletcher4,
) {
    if drr_type == DRR_BEGIN {
        *cksum = Fletcher4::new();
        order.fletcher4_update(cksum, hdr);
        return;
    }
    if drr_type == DRR_END {
        hdr[8..40].copy_from_slice(&order.cksum_bytes(&cksum.finish()));
    }
    order.fletcher4_update(cksum, &hdr[..DRR_CHECKSUM_OFFSET]);
    hdr[DRR_CHECKSUM_OFFSET..].copy_from_slice(&order.cksum_bytes(&cksum.finish()));
    order.fletcher4_update(cksum, &hdr[DRR_CHECKSUM_OFFSET..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOGUID: u64 = 0x1111_2222_3333_4444;

    fn hex(c: &ZioCksum) -> String {
        format!("{:x}/{:x}/{:x}/{:x}", c[0], c[1], c[2], c[3])
    }

    fn begin(toname: &str, toguid: u64, fromguid: u64) -> Record {
        let mut drr = DrrBegin {
            versioninfo: dmu_versioninfo(DMU_SUBSTREAM, 0),
            creation_time: 0x6600_0000,
            objset_type: 3,
            flags: DRR_FLAG_FREERECORDS | DRR_FLAG_SPILL_BLOCK,
            toguid,
            fromguid,
            ..DrrBegin::default()
        };
        drr.set_toname(toname);
        Record::Begin { drr, payload: Vec::new() }
    }

    fn object(object: u64, object_type: u32, blksz: u32) -> Record {
        let drr = DrrObject {
            object,
            object_type,
            blksz,
            dn_slots: 1,
            toguid: TOGUID,
            ..DrrObject::default()
        };
        Record::Object { drr, bonus: Vec::new() }
    }

    fn free(object: u64, offset: u64, length: u64) -> Record {
        Record::Free(DrrFree { object, offset, length, toguid: TOGUID })
    }

    fn write(object: u64, object_type: u32, data: Vec<u8>) -> Record {
        let drr = DrrWrite {
            object,
            object_type,
            logical_size: data.len() as u64,
            toguid: TOGUID,
            checksumtype: 2,
            ..DrrWrite::default()
        };
        Record::Write { drr, data }
    }

    /// The records of the §2.6 worked example (a full send of a volume, 20016 bytes).
    pub(crate) fn spec_example_records() -> Vec<Record> {
        let zvol: Vec<u8> = (0..16384u32).map(|i| (i * 7) as u8).collect();
        let mut mzap = vec![0u8; 512];
        mzap[..8].copy_from_slice(&0x8000_0000_0000_0003u64.to_le_bytes());
        mzap[8..16].copy_from_slice(&0x1234u64.to_le_bytes());
        mzap[64..72].copy_from_slice(&65536u64.to_le_bytes());
        mzap[78..82].copy_from_slice(b"size");
        vec![
            begin("pool/vol@a", TOGUID, 0),
            object(1, 23, 16384),
            free(1, 16384, DMU_OBJECT_END),
            write(1, 23, zvol),
            object(2, 24, 512),
            free(2, 512, DMU_OBJECT_END),
            write(2, 24, mzap),
            free(2, 512, 1024),
            Record::FreeObjects(DrrFreeObjects { firstobj: 3, numobjs: 29, toguid: TOGUID }),
            Record::End(DrrEnd { checksum: [0; 4], toguid: TOGUID }),
        ]
    }

    pub(crate) fn write_stream(recs: &[Record], order: ByteOrder) -> Vec<u8> {
        let mut w = StreamWriter::new(Vec::new(), order);
        for r in recs {
            w.write_record(r).expect("write to Vec");
        }
        w.into_inner().expect("flush Vec")
    }

    fn read_all(bytes: &[u8]) -> Result<Vec<Record>, StreamError> {
        let mut r = StreamReader::new(bytes);
        let mut out = Vec::new();
        while let Some(rec) = r.next_record()? {
            out.push(rec);
        }
        assert_eq!(r.bytes_read(), bytes.len() as u64);
        Ok(out)
    }

    fn stored_checksum(stream: &[u8], offset: usize) -> ZioCksum {
        let mut hdr = [0u8; DRR_HEADER_SIZE];
        hdr.copy_from_slice(&stream[offset..offset + DRR_HEADER_SIZE]);
        header_checksum(&hdr, ByteOrder::Little)
    }

    #[test]
    fn spec_2_6_worked_example_checksums_match() {
        let s = write_stream(&spec_example_records(), ByteOrder::Little);
        assert_eq!(s.len(), 20016);
        assert_eq!(&s[8..16], &[0xac, 0xcb, 0xba, 0xf5, 0x02, 0, 0, 0]);
        assert_eq!(&s[0x38..0x40], b"pool/vol");
        let expect = [
            (312, "2bd241f82/16a7c0a0715/61980f25bc97/11ec16d5dce7a9"),
            (624, "71fabdfdc/36e94b5e440/11aab4af327ae/480b33c858189c"),
            (936, "92be6b418/62e0dd593f7/29155a07d8c4c/d2799bee6de73c"),
        ];
        for (off, want) in expect {
            assert_eq!(hex(&stored_checksum(&s, off)), want, "record at {off}");
        }
        let end = s.len() - DRR_HEADER_SIZE;
        let fo = end - DRR_HEADER_SIZE;
        assert_eq!(
            hex(&stored_checksum(&s, fo)),
            "8147c53a1a6/507891c08e50bc/ea1c8d776af662e2/3be803c808c7ac86"
        );
        let mut hdr = [0u8; DRR_HEADER_SIZE];
        hdr.copy_from_slice(&s[end..]);
        let Some(DecodedHeader { record: Record::End(e), .. }) =
            decode_header_in(&hdr, ByteOrder::Little)
        else {
            panic!("last record is END");
        };
        assert_eq!(
            hex(&e.checksum),
            "8175348b554/50b942c25773a6/eca1751237dd2885/98212e130c6e6b57"
        );
        assert_eq!(
            hex(&stored_checksum(&s, end)),
            "81a768c3d13/52f06b3b38f4ec/302c0ff139c4298/633caa4c2ed0ad24"
        );
        assert_eq!(read_all(&s).expect("valid stream").len(), 10);
    }

    const SALT: [u8; ZIO_DATA_SALT_LEN] = [1, 2, 3, 4, 5, 6, 7, 8];
    const IV: [u8; ZIO_DATA_IV_LEN] = [9; ZIO_DATA_IV_LEN];
    const MAC: [u8; ZIO_DATA_MAC_LEN] = [0xee; ZIO_DATA_MAC_LEN];
    const KEY: DdtKey = DdtKey { cksum: [1, 2, 3, u64::MAX - 4], prop: 0x2_0001_0001 };

    /// An OBJECT with every field set.
    fn full_object() -> Record {
        let drr = DrrObject {
            object: 5,
            object_type: 19,
            bonustype: 44,
            blksz: 131_072,
            bonuslen: 13,
            checksumtype: 7,
            compress: 15,
            dn_slots: 2,
            flags: DRR_OBJECT_SPILL,
            raw_bonuslen: 0,
            toguid: 77,
            indblkshift: 17,
            nlevels: 2,
            nblkptr: 1,
            maxblkid: 0x1_0000_0001,
        };
        Record::Object { drr, bonus: (0..13).collect() }
    }

    /// A compressed, dedup-flagged WRITE with every field set.
    fn full_write() -> Record {
        let drr = DrrWrite {
            object: 5,
            object_type: 19,
            offset: 1 << 40,
            logical_size: 4096,
            toguid: 77,
            checksumtype: 8,
            flags: DRR_CHECKSUM_DEDUP,
            compressiontype: 15,
            key: KEY,
            compressed_size: 24,
            salt: SALT,
            iv: IV,
            mac: MAC,
        };
        Record::Write { drr, data: (0..24).collect() }
    }

    /// WRITE_BYREF, SPILL and WRITE_EMBEDDED with every field set.
    fn full_byref_spill_embedded() -> Vec<Record> {
        let byref = DrrWriteByref {
            object: 5,
            offset: 4096,
            length: 4096,
            toguid: 77,
            refguid: 55,
            refobject: 4,
            refoffset: 0,
            checksumtype: 8,
            flags: 1,
            key: KEY,
        };
        let spill = DrrSpill {
            object: 5,
            length: 512,
            toguid: 77,
            flags: DRR_SPILL_UNMODIFIED,
            compressiontype: 0,
            compressed_size: 0,
            salt: SALT,
            iv: IV,
            mac: MAC,
            object_type: 44,
        };
        let embedded = DrrWriteEmbedded {
            object: 5,
            offset: 0,
            length: 512,
            toguid: 77,
            compression: 15,
            etype: 0,
            lsize: 512,
            psize: 45,
        };
        let data = (0..48).map(|i| if i < 45 { i as u8 + 1 } else { 0 }).collect();
        vec![
            Record::WriteByref(byref),
            Record::Spill { drr: spill, data: vec![0x5a; 512] },
            Record::WriteEmbedded { drr: embedded, data },
        ]
    }

    /// One record of each of the 11 types, BEGIN first and END last.
    fn every_record_type() -> Vec<Record> {
        let mut b = begin("pool/fs@snap", 77, 66);
        if let Record::Begin { payload, .. } = &mut b {
            *payload = vec![1, 0, 0, 0, 0xaa, 0xbb, 0xcc, 0xdd];
        }
        let range = DrrObjectRange {
            firstobj: 32,
            numslots: 32,
            toguid: 77,
            salt: SALT,
            iv: IV,
            mac: MAC,
            flags: DRR_RAW_BYTESWAP,
        };
        let mut v = vec![
            b,
            full_object(),
            Record::FreeObjects(DrrFreeObjects { firstobj: 6, numobjs: u64::MAX - 6, toguid: 77 }),
            full_write(),
            free(5, 8192, DMU_OBJECT_END),
        ];
        v.extend(full_byref_spill_embedded());
        v.push(Record::ObjectRange(range));
        v.push(Record::Redact(DrrRedact { object: 5, offset: 0, length: 512, toguid: 77 }));
        v.push(Record::End(DrrEnd { checksum: [0; 4], toguid: 77 }));
        v
    }

    #[test]
    fn every_record_type_round_trips_in_both_byte_orders() {
        let recs = every_record_type();
        for order in [ByteOrder::Little, ByteOrder::Big] {
            for rec in &recs {
                let hdr = encode_header(rec, order);
                let dec = decode_header_in(&hdr, order).expect("valid type");
                assert_eq!(dec.payload_len, rec.payload_len_from_header());
                let mut want = rec.clone();
                if let Some(p) = want.payload_mut() {
                    p.clear();
                }
                assert_eq!(dec.record, want, "{order:?}");
                let swapped = order != ByteOrder::HOST;
                assert_eq!(decode_header(&hdr, swapped).expect("valid"), dec);
            }
            let stream = write_stream(&recs, order);
            let mut r = StreamReader::new(&stream[..]);
            let mut back = Vec::new();
            while let Some(rec) = r.next_record().expect("valid stream") {
                back.push(rec);
            }
            assert_eq!(r.is_byteswapped(), order != ByteOrder::HOST);
            assert_eq!(back.len(), recs.len());
            for (got, sent) in back.iter().zip(&recs) {
                let mut want = sent.clone();
                let need = want.payload_len_from_header() as usize;
                if let Some(p) = want.payload_mut() {
                    p.resize(need, 0);
                }
                if let (Record::End(g), Record::End(s)) = (got, &want) {
                    assert_eq!(g.toguid, s.toguid);
                    assert_ne!(g.checksum, [0; 4], "writer fills END checksum");
                } else {
                    assert_eq!(got, &want, "{order:?}");
                }
            }
        }
    }

    #[test]
    fn writer_pads_short_payloads_with_zeros() {
        let mut recs = every_record_type();
        if let Record::WriteEmbedded { data, .. } = &mut recs[7] {
            data.truncate(45);
        }
        if let Record::Object { bonus, .. } = &mut recs[1] {
            assert_eq!(bonus.len(), 13);
        }
        let stream = write_stream(&recs, ByteOrder::Little);
        let back = read_all(&stream).expect("valid");
        assert_eq!(back[1].payload().len(), 16);
        assert_eq!(&back[1].payload()[13..], &[0, 0, 0]);
        assert_eq!(back[7].payload().len(), 48);
        assert_eq!(&back[7].payload()[45..], &[0, 0, 0]);
    }

    #[test]
    fn reader_rejects_flipped_bit_with_record_index() {
        let mut s = write_stream(&spec_example_records(), ByteOrder::Little);
        s[312 + 20] ^= 0x40;
        let err = read_all(&s).expect_err("corrupt");
        assert_eq!(err, StreamError::Checksum { record: 1 });
        // Flipping a payload bit is caught by the next header.
        let mut s = write_stream(&spec_example_records(), ByteOrder::Little);
        s[4 * 312 + 100] ^= 1;
        assert_eq!(read_all(&s).expect_err("corrupt"), StreamError::Checksum { record: 4 });
    }

    #[test]
    fn reader_skips_zero_checksums_but_checks_end() {
        let mut s = write_stream(&spec_example_records(), ByteOrder::Little);
        let end = s.len() - DRR_HEADER_SIZE;
        s[end + DRR_CHECKSUM_OFFSET..].fill(0);
        assert_eq!(read_all(&s).expect("zero checksum skipped").len(), 10);
        s[end + 8] ^= 1;
        assert_eq!(read_all(&s).expect_err("bad END"), StreamError::EndChecksum { record: 9 });
    }

    #[test]
    fn reader_reports_truncation_magic_type_and_size() {
        let s = write_stream(&spec_example_records(), ByteOrder::Little);
        assert_eq!(read_all(&s[..100]).expect_err("cut"), StreamError::Truncated { record: 0 });
        assert_eq!(read_all(&s[..1000]).expect_err("cut"), StreamError::Truncated { record: 3 });
        let mut bad = s.clone();
        bad[8] ^= 1;
        assert_eq!(read_all(&bad).expect_err("magic"), StreamError::BadMagic { record: 0 });
        let mut bad = s.clone();
        bad[312] = 11;
        let bad = rechecksum(&bad).expect_err("type 11");
        assert_eq!(bad, StreamError::InvalidType { record: 1, drr_type: 11 });
        // WRITE of 32 MiB: refused before allocating.
        let mut recs = spec_example_records();
        recs.truncate(3);
        let mut s = write_stream(&recs, ByteOrder::Little);
        let mut hdr = encode_header(&write(1, 23, Vec::new()), ByteOrder::Little);
        hdr[32..40].copy_from_slice(&(32u64 << 20).to_le_bytes());
        s.extend_from_slice(&hdr);
        let s = rechecksum(&s).expect_err("too large");
        assert_eq!(s, StreamError::TooLarge { record: 3, len: 32 << 20 });
        let mut b = write_stream(&spec_example_records()[..1], ByteOrder::Little);
        b[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        let err = read_all(&b).expect_err("huge BEGIN payload");
        assert_eq!(err, StreamError::TooLarge { record: 0, len: u64::from(u32::MAX) });
    }

    #[test]
    fn compound_stream_with_double_end_reads_through() {
        let mut hdr = begin("pool/fs@snap", 0, 0);
        if let Record::Begin { drr, payload } = &mut hdr {
            drr.versioninfo = dmu_versioninfo(DMU_COMPOUNDSTREAM, 0);
            drr.flags = 0;
            drr.objset_type = 0;
            drr.creation_time = 0;
            *payload = vec![1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
        }
        for order in [ByteOrder::Little, ByteOrder::Big] {
            let mut w = StreamWriter::new(Vec::new(), order);
            w.write_record(&hdr).expect("vec");
            w.write_compound_end().expect("vec");
            for r in spec_example_records().iter().chain(&spec_example_records()) {
                w.write_record(r).expect("vec");
            }
            w.write_compound_end().expect("vec");
            let s = w.into_inner().expect("vec");
            let mut package_end = [0u8; DRR_HEADER_SIZE];
            package_end[..4].copy_from_slice(&order.u32_bytes(DRR_END));
            assert!(s.ends_with(&package_end), "final END is all zero but its type");
            let e = DRR_HEADER_SIZE + 20;
            let hdr_end = &s[e + DRR_CHECKSUM_OFFSET..e + DRR_HEADER_SIZE];
            assert!(hdr_end.iter().all(|&b| b == 0), "libzfs leaves it unchecksummed");
            assert_eq!(read_all(&s).expect("valid compound").len(), 2 + 20 + 1);
        }
    }

    #[test]
    fn rechecksum_restores_and_repairs() {
        let good = write_stream(&every_record_type(), ByteOrder::Big);
        let mut broken = good.clone();
        let offsets = record_offsets(&good, ByteOrder::Big);
        assert_eq!(offsets.len(), 11);
        for rec_off in &offsets[1..4] {
            broken[rec_off + DRR_CHECKSUM_OFFSET] ^= 0xff;
        }
        assert!(read_all(&broken).is_err());
        let fixed = rechecksum(&broken).expect("framing intact");
        let diff = fixed.iter().zip(&good).position(|(a, b)| a != b);
        assert_eq!(diff, None, "lengths {} {}", fixed.len(), good.len());
        let mut mutated = good.clone();
        mutated[offsets[1] + 15] ^= 0x10; // OBJECT's object number
        let fixed = rechecksum(&mutated).expect("framing intact");
        assert_eq!(read_all(&fixed).expect("valid again").len(), 11);
    }

    #[test]
    fn reader_never_panics_on_garbage_or_mutations() {
        let good = write_stream(&every_record_type(), ByteOrder::Little);
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            x ^= x << 7;
            x ^= x >> 9;
            x
        };
        for round in 0..3000usize {
            let mut s = good.clone();
            for _ in 0..(round % 7) + 1 {
                let i = (next() as usize) % s.len();
                s[i] = next() as u8;
            }
            let cut = (next() as usize) % (s.len() + 1);
            let s = if round.is_multiple_of(3) { &s[..cut] } else { &s[..] };
            let _ = read_all_lenient(s);
            if let Ok(fixed) = rechecksum(s) {
                let _ = read_all_lenient(&fixed);
            }
        }
        let junk: Vec<u8> = (0..5000).map(|_| next() as u8).collect();
        let _ = read_all_lenient(&junk);
    }

    fn record_offsets(stream: &[u8], order: ByteOrder) -> Vec<usize> {
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < stream.len() {
            out.push(pos);
            let mut hdr = [0u8; DRR_HEADER_SIZE];
            hdr.copy_from_slice(&stream[pos..pos + DRR_HEADER_SIZE]);
            let dec = decode_header_in(&hdr, order).expect("valid");
            pos += DRR_HEADER_SIZE + dec.payload_len as usize;
        }
        out
    }

    fn read_all_lenient(bytes: &[u8]) -> usize {
        let mut r = StreamReader::new(bytes);
        let mut n = 0;
        while let Ok(Some(_)) = r.next_record() {
            n += 1;
        }
        assert!(r.next_record().is_err() || r.bytes_read() == bytes.len() as u64);
        n
    }
}
