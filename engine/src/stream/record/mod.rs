//! Send-stream records (`dmu_replay_record_t`): layout, encode/decode, writer and hardened
//! reader with the kernel's checksum rules. OpenZFS: include/sys/zfs_ioctl.h, dmu_send.c
//! (dump_record), dmu_recv.c (receive_read_record, byteswap_record). Spec: zfs-send-stream.md
//! §1-2. Used by dmu::send (StreamWriter), dmu::recv (StreamReader), fuzzers (rechecksum).
//! Invariants: every header is 312 bytes, zero-filled before fields are set; every non-BEGIN
//! record carries the running Fletcher-4 of its substream up to its checksum field (§2.2);
//! the reader checks every length against a named limit before allocating, and never panics.
//!
//! Layout: this file holds the constants, `ByteOrder` and the header field codec every part
//! uses; `drr` the record types (one struct per `drr_*` header, and `Record`); `header` the
//! encoding and decoding of the 312-byte header; `stream_io` `StreamWriter`, `StreamReader`,
//! `rechecksum` and `StreamError`; `tests` the round trips and checksum checks of all of them.

mod drr;
mod header;
mod stream_io;
#[cfg(test)]
mod tests;

pub use drr::{
    DdtKey, DrrBegin, DrrEnd, DrrFree, DrrFreeObjects, DrrObject, DrrObjectRange, DrrRedact,
    DrrSpill, DrrWrite, DrrWriteByref, DrrWriteEmbedded, Record,
};
pub use header::{
    decode_header, decode_header_in, encode_header, header_checksum, header_drr_type, DecodedHeader,
};
pub(crate) use stream_io::read_full;
pub use stream_io::{payload_limit, rechecksum, StreamError, StreamReader, StreamWriter};

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
