//! The record types (§1.3): one struct per member of the `dmu_replay_record_t` header union,
//! `DdtKey`, and `Record`, a header with its payload. Input: none, plain data (built by
//! senders and by `decode_header_in`). Must hold: every field is the C field of the same name;
//! each `payload_len` is the §1.4 rule; payloads are kept as on the wire, never byteswapped.

use crate::zio::checksum::ZioCksum;

use super::{
    dmu_get_featureflags, dmu_get_stream_hdrtype, dmu_versioninfo, roundup8_u32, DMU_BACKUP_MAGIC,
    DMU_SUBSTREAM, DRR_BEGIN, DRR_END, DRR_FREE, DRR_FREEOBJECTS, DRR_OBJECT, DRR_OBJECT_RANGE,
    DRR_REDACT, DRR_SPILL, DRR_TONAME_LEN, DRR_TONAME_MAX_LEN, DRR_WRITE, DRR_WRITE_BYREF,
    DRR_WRITE_EMBEDDED, ZIO_DATA_IV_LEN, ZIO_DATA_MAC_LEN, ZIO_DATA_SALT_LEN,
};

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

    pub(super) fn payload_mut(&mut self) -> Option<&mut Vec<u8>> {
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
