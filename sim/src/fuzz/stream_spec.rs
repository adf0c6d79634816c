//! The input of `recv_structured`: `StreamSpec` (BEGIN choices, records, END choices), read
//! from fuzzer bytes with `Arbitrary`; each field is drawn through `weighted!` so that the
//! shapes a sender emits are common and every edge case (zero, next to 2^48, 2^62 or 2^64,
//! past a limit, odd sizes) keeps a share. Nothing is checked here: `recv_structured` encodes
//! the spec and says what receiving it must produce.

use arbitrary::{Arbitrary, Unstructured};
use engine::limits::{DMU_MAX_OFFSET, DMU_OBJECT_END, DN_MAX_OBJECT};
use engine::stream::record::{
    DMU_BACKUP_FEATURE_COMPRESSED, DMU_BACKUP_FEATURE_EMBED_DATA, DMU_BACKUP_FEATURE_LARGE_BLOCKS,
    DMU_BACKUP_FEATURE_LZ4,
};

use super::SECTOR;

/// `Arbitrary` by a leading byte: `weighted!(u, { 0..=199 => A(u.arbitrary()?), _ => B })`.
/// Common, valid shapes take most of the byte's range, so that most generated streams get
/// far; every edge case keeps a share. Byte 0 (also what exhausted input reads as) picks the
/// first, most common arm.
macro_rules! weighted {
    ($u:ident, { $($pat:pat => $arm:expr),+ $(,)? }) => {
        Ok(match u8::arbitrary($u)? {
            $($pat => $arm),+
        })
    };
}

/// Which snapshot of `FUZZ_BASE_FS` an incremental starts from.
#[derive(Clone, Copy, Debug)]
pub(super) enum Source {
    Newest,
    Full,
    Older,
    FullIntoBase,
    Guid(u64),
}

impl<'a> Arbitrary<'a> for Source {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        weighted!(u, {
            0..=119 => Self::Newest,
            120..=199 => Self::Full,
            200..=219 => Self::Older,
            220..=235 => Self::FullIntoBase,
            _ => Self::Guid(u.arbitrary()?),
        })
    }
}

/// BEGIN fields a sender sets differently.
#[derive(Clone, Debug)]
pub(super) enum BeginQuirk {
    None,
    Compound,
    ObjsetType(u8),
    CloneFlag,
    Flags(u32),
    SnapName(u8),
    Payload(Vec<u8>),
    ZeroToguid,
    Feature(u8),
}

impl<'a> Arbitrary<'a> for BeginQuirk {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        weighted!(u, {
            0..=215 => Self::None,
            216..=219 => Self::Compound,
            220..=223 => Self::ObjsetType(u.arbitrary()?),
            224..=227 => Self::CloneFlag,
            228..=231 => Self::Flags(u.arbitrary()?),
            232..=237 => Self::SnapName(u.arbitrary()?),
            238..=241 => Self::Payload(u.arbitrary()?),
            242..=245 => Self::ZeroToguid,
            _ => Self::Feature(u.arbitrary()?),
        })
    }
}

#[derive(Clone, Debug)]
pub(super) enum EndQuirk {
    Normal,
    Missing,
    Toguid(u64),
    ZeroToguid,
    Trailing(Vec<u8>),
    Twice,
}

impl<'a> Arbitrary<'a> for EndQuirk {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        weighted!(u, {
            0..=235 => Self::Normal,
            236..=239 => Self::Missing,
            240..=243 => Self::Toguid(u.arbitrary()?),
            244..=247 => Self::ZeroToguid,
            248..=251 => Self::Trailing(u.arbitrary()?),
            _ => Self::Twice,
        })
    }
}

/// An object number: small, one of the base's, 0, or next to 2^48.
#[derive(Clone, Copy, Debug)]
pub(super) enum ObjNum {
    Low(u8),
    Base(u8),
    Zero,
    NearMax(u8),
    Raw(u64),
}

impl<'a> Arbitrary<'a> for ObjNum {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        weighted!(u, {
            0..=119 => Self::Low(u.arbitrary()?),
            120..=229 => Self::Base(u.arbitrary()?),
            230..=235 => Self::Zero,
            236..=247 => Self::NearMax(u.arbitrary()?),
            _ => Self::Raw(u.arbitrary()?),
        })
    }
}

#[derive(Clone, Copy, Debug)]
pub(super) enum Blksz {
    Pow(u8),
    Multiple(u8),
    Large(u8),
    Raw(u32),
}

impl<'a> Arbitrary<'a> for Blksz {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        weighted!(u, {
            0..=199 => Self::Pow(u.arbitrary()?),
            200..=229 => Self::Multiple(u.arbitrary()?),
            230..=245 => Self::Large(u.arbitrary()?),
            _ => Self::Raw(u.arbitrary()?),
        })
    }
}

impl Blksz {
    pub(super) fn value(self) -> u32 {
        match self {
            Self::Pow(s) => 512 << (s % 9),
            Self::Multiple(m) => 512 * (u32::from(m) + 1),
            Self::Large(i) => [256 << 10, 1 << 20, 16 << 20, 0][usize::from(i % 4)],
            Self::Raw(v) => v,
        }
    }
}

/// A bonus length: small, at the 320-byte limit, or past it.
#[derive(Clone, Copy, Debug)]
pub(super) enum BonusLen {
    Small(u8),
    Limit(u8),
    Raw(u16),
}

impl<'a> Arbitrary<'a> for BonusLen {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        weighted!(u, {
            0..=189 => Self::Small(u.arbitrary()?),
            190..=239 => Self::Limit(u.arbitrary()?),
            _ => Self::Raw(u.arbitrary()?),
        })
    }
}

impl BonusLen {
    pub(super) fn value(self) -> u32 {
        match self {
            Self::Small(v) => u32::from(v % 65),
            Self::Limit(d) => 318 + u32::from(d % 5),
            Self::Raw(v) => u32::from(v % 4097),
        }
    }
}

/// An offset: a block of the object, unaligned, next to 2^62, next to 2^64, or anything.
#[derive(Clone, Copy, Debug)]
pub(super) enum Offset {
    Block(u8),
    Unaligned(u32),
    NearMax(u16),
    Huge(u16),
    Raw(u64),
}

impl<'a> Arbitrary<'a> for Offset {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        weighted!(u, {
            0..=179 => Self::Block(u.arbitrary()?),
            180..=219 => Self::Unaligned(u.arbitrary()?),
            220..=234 => Self::NearMax(u.arbitrary()?),
            235..=244 => Self::Huge(u.arbitrary()?),
            _ => Self::Raw(u.arbitrary()?),
        })
    }
}

impl Offset {
    pub(super) fn value(self, blksz: u64) -> u64 {
        match self {
            Self::Block(b) => u64::from(b) * blksz,
            Self::Unaligned(v) => u64::from(v),
            Self::NearMax(d) => DMU_MAX_OFFSET - u64::from(d) * SECTOR,
            Self::Huge(d) => u64::MAX - u64::from(d),
            Self::Raw(v) => v,
        }
    }
}

/// A WRITE's logical size.
#[derive(Clone, Copy, Debug)]
pub(super) enum Lsize {
    Block,
    Pow(u8),
    Odd(u16),
    Large(u8),
    Zero,
}

impl<'a> Arbitrary<'a> for Lsize {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        weighted!(u, {
            0..=199 => Self::Block,
            200..=224 => Self::Pow(u.arbitrary()?),
            225..=244 => Self::Odd(u.arbitrary()?),
            245..=250 => Self::Large(u.arbitrary()?),
            _ => Self::Zero,
        })
    }
}

impl Lsize {
    pub(super) fn value(self, blksz: u64) -> u64 {
        match self {
            Self::Block => blksz,
            Self::Pow(s) => 512 << (s % 9),
            Self::Odd(v) => u64::from(v) + 1,
            Self::Large(i) => [256 << 10, 1 << 20][usize::from(i % 2)],
            Self::Zero => 0,
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub(super) enum Length {
    Blocks(u8),
    End,
    Raw(u64),
    Overflow,
}

impl<'a> Arbitrary<'a> for Length {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        weighted!(u, {
            0..=159 => Self::Blocks(u.arbitrary()?),
            160..=219 => Self::End,
            220..=247 => Self::Raw(u.arbitrary()?),
            _ => Self::Overflow,
        })
    }
}

impl Length {
    pub(super) fn value(self, blksz: u64) -> u64 {
        match self {
            Self::Blocks(n) => u64::from(n) * blksz,
            Self::End => DMU_OBJECT_END,
            Self::Raw(v) => v,
            Self::Overflow => u64::MAX - 1,
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub(super) enum Count {
    Small(u8),
    ToMax,
    Old,
    Overflow,
    Raw(u64),
}

impl<'a> Arbitrary<'a> for Count {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        weighted!(u, {
            0..=159 => Self::Small(u.arbitrary()?),
            160..=199 => Self::ToMax,
            200..=219 => Self::Old,
            220..=229 => Self::Overflow,
            _ => Self::Raw(u.arbitrary()?),
        })
    }
}

impl Count {
    pub(super) fn value(self, first: u64) -> u64 {
        match self {
            Self::Small(n) => u64::from(n),
            Self::ToMax => DN_MAX_OBJECT.saturating_sub(first),
            Self::Old => u64::MAX - first,
            Self::Overflow => u64::MAX,
            Self::Raw(v) => v,
        }
    }
}

#[derive(Clone, Debug)]
pub(super) enum WriteCompress {
    Off,
    Lz4,
    Garbage(Vec<u8>),
    Type(u8),
}

impl<'a> Arbitrary<'a> for WriteCompress {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        weighted!(u, {
            0..=189 => Self::Off,
            190..=239 => Self::Lz4,
            240..=249 => Self::Garbage(u.arbitrary()?),
            _ => Self::Type(u.arbitrary()?),
        })
    }
}

/// OBJECT fields a sender never sets this way.
#[derive(Clone, Copy, Debug)]
pub(super) enum ObjectQuirk {
    None,
    DnSlots(u8),
    Flags(u8),
    Checksum(u8),
    Compress(u8),
    RawFields(u8),
    RawBonuslen(u16),
}

impl<'a> Arbitrary<'a> for ObjectQuirk {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        weighted!(u, {
            0..=219 => Self::None,
            220..=225 => Self::DnSlots(u.arbitrary()?),
            226..=231 => Self::Flags(u.arbitrary()?),
            232..=237 => Self::Checksum(u.arbitrary()?),
            238..=243 => Self::Compress(u.arbitrary()?),
            244..=249 => Self::RawFields(u.arbitrary()?),
            _ => Self::RawBonuslen(u.arbitrary()?),
        })
    }
}

/// One record of a structured stream.
#[derive(Clone, Debug)]
pub(super) enum RecSpec {
    Object {
        object: ObjNum,
        ot: u8,
        bonustype: u8,
        blksz: Blksz,
        bonuslen: BonusLen,
        seed: u8,
        quirk: ObjectQuirk,
    },
    FreeObjects {
        first: ObjNum,
        count: Count,
    },
    Write {
        object: ObjNum,
        offset: Offset,
        lsize: Lsize,
        seed: u8,
        ot: u8,
        compress: WriteCompress,
    },
    Embedded {
        object: ObjNum,
        offset: Offset,
        lsize: u16,
        fill: u8,
        mode: u8,
        etype: u8,
    },
    Free {
        object: ObjNum,
        offset: Offset,
        length: Length,
    },
    Spill {
        object: ObjNum,
        sectors: u8,
        unmodified: bool,
    },
    Redact {
        object: ObjNum,
        offset: Offset,
        length: Length,
    },
    ObjectRange {
        first: u64,
        numslots: u64,
    },
    WriteByref {
        object: ObjNum,
    },
    Oversize {
        kind: u8,
        extra: u16,
    },
}

impl<'a> Arbitrary<'a> for RecSpec {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        weighted!(u, {
            0..=89 => Self::Write {
                object: u.arbitrary()?,
                offset: u.arbitrary()?,
                lsize: u.arbitrary()?,
                seed: u.arbitrary()?,
                ot: u.arbitrary()?,
                compress: u.arbitrary()?,
            },
            90..=139 => Self::Object {
                object: u.arbitrary()?,
                ot: u.arbitrary()?,
                bonustype: u.arbitrary()?,
                blksz: u.arbitrary()?,
                bonuslen: u.arbitrary()?,
                seed: u.arbitrary()?,
                quirk: u.arbitrary()?,
            },
            140..=174 => Self::Free {
                object: u.arbitrary()?,
                offset: u.arbitrary()?,
                length: u.arbitrary()?,
            },
            175..=194 => Self::FreeObjects { first: u.arbitrary()?, count: u.arbitrary()? },
            195..=214 => Self::Embedded {
                object: u.arbitrary()?,
                offset: u.arbitrary()?,
                lsize: u.arbitrary()?,
                fill: u.arbitrary()?,
                mode: u.arbitrary()?,
                etype: u.arbitrary()?,
            },
            215..=224 => Self::Redact {
                object: u.arbitrary()?,
                offset: u.arbitrary()?,
                length: u.arbitrary()?,
            },
            225..=234 => Self::Spill {
                object: u.arbitrary()?,
                sectors: u.arbitrary()?,
                unmodified: u.arbitrary()?,
            },
            235..=241 => Self::ObjectRange { first: u.arbitrary()?, numslots: u.arbitrary()? },
            242..=248 => Self::WriteByref { object: u.arbitrary()? },
            _ => Self::Oversize { kind: u.arbitrary()?, extra: u.arbitrary()? },
        })
    }
}

impl RecSpec {
    /// Sort key of a sender's order: by object, OBJECT before FREE before data.
    pub(super) fn rank(&self, resolve: &dyn Fn(ObjNum) -> u64) -> (u64, u8) {
        match self {
            Self::FreeObjects { first, .. } => (resolve(*first), 0),
            Self::Object { object, .. } => (resolve(*object), 1),
            Self::Free { object, .. } | Self::Redact { object, .. } => (resolve(*object), 2),
            Self::Write { object, .. } | Self::Embedded { object, .. } => (resolve(*object), 3),
            Self::Spill { object, .. } | Self::WriteByref { object } => (resolve(*object), 4),
            Self::ObjectRange { first, .. } => (*first, 0),
            Self::Oversize { .. } => (u64::MAX, u8::MAX),
        }
    }
}

/// Feature bits a sender of this pool's streams sets (the low four bits of a byte choose);
/// others come from `BeginQuirk::Feature`.
pub(super) const FEATURE_CHOICES: [u64; 4] = [
    DMU_BACKUP_FEATURE_EMBED_DATA,
    DMU_BACKUP_FEATURE_LZ4,
    DMU_BACKUP_FEATURE_COMPRESSED,
    DMU_BACKUP_FEATURE_LARGE_BLOCKS,
];

/// A structured stream: BEGIN choices, records, END choices.
#[derive(Arbitrary, Clone, Debug)]
pub(super) struct StreamSpec {
    pub(super) big_endian: bool,
    pub(super) source: Source,
    pub(super) force: bool,
    pub(super) features: u8,
    pub(super) toguid: u16,
    pub(super) begin: BeginQuirk,
    pub(super) canonical: bool,
    pub(super) end: EndQuirk,
    pub(super) records: Vec<RecSpec>,
}
