//! Deterministic contents for scenarios: the fixtures' bonus and block patterns, microzap
//! blocks, ZPL-like SA bonuses, and the object type numbers used. No randomness but
//! splitmix64 over fixed inputs. Neighbours: the scenario builders; nothing else.

use engine::dmu::object::ObjectSpec;

/// DMU_OT_PLAIN_FILE_CONTENTS.
pub const OT_FILE: u8 = 19;
/// DMU_OT_DIRECTORY_CONTENTS (ZAP).
pub const OT_DIRECTORY: u8 = 20;
/// DMU_OT_MASTER_NODE (ZAP).
pub const OT_MASTER_NODE: u8 = 21;
/// DMU_OT_UNLINKED_SET (ZAP).
pub const OT_UNLINKED_SET: u8 = 22;
/// DMU_OT_PLAIN_OTHER (uint8 array).
pub const OT_PLAIN_OTHER: u8 = 25;
/// DMU_OT_UINT64_OTHER: the fixtures' bonus type, and a uint64 data type.
pub const OT_UINT64_OTHER: u8 = 26;
/// DMU_OT_ZAP_OTHER.
pub const OT_ZAP_OTHER: u8 = 27;
/// DMU_OT_SA: bonus type of ZPL znodes.
pub const OT_SA: u8 = 44;
/// DMU_OT_SA_MASTER_NODE (ZAP).
pub const OT_SA_MASTER_NODE: u8 = 45;
/// DMU_OT_SA_ATTR_REGISTRATION (ZAP).
pub const OT_SA_ATTR_REGISTRATION: u8 = 46;
/// DMU_OT_SA_ATTR_LAYOUTS (ZAP).
pub const OT_SA_ATTR_LAYOUTS: u8 = 47;

/// Bytes of the fixtures' bonus buffer (four u64).
pub const FIXTURE_BONUS_LEN: usize = 32;
/// Bytes of a ZPL SA bonus in the wiki walkthrough.
pub const SA_BONUS_LEN: usize = 168;
/// The fixtures' bonus magic: "!elcaroz" as a little-endian u64 ("zoracle!" reversed).
const FIXTURE_MAGIC: u64 = 0x7a6f_7261_636c_6521;
/// ZBT_MICRO: block type word of a microzap.
const ZBT_MICRO: u64 = (1 << 63) + 3;
/// Bytes of a microzap header and of each entry (mzap_phys_t, mzap_ent_phys_t).
const MZAP_ENT_LEN: usize = 64;
/// Longest microzap entry name, NUL included (MZAP_NAME_LEN).
const MZAP_NAME_LEN: usize = 50;
/// SA_MAGIC at the start of an SA bonus.
const SA_MAGIC: u32 = 0x2F_505A;
/// ZPL directory entry type bits for a regular file (DT_REG << 60).
pub const ZPL_DIRENT_REG: u64 = 8 << 60;

/// splitmix64: the fixtures' generator (their bonus word 3 is `splitmix64(obj | gen << 32)`).
#[must_use]
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The fixtures' 32-byte bonus of object `obj` at generation `gen` (bonus type 26).
#[must_use]
pub fn fixture_bonus(obj: u64, gen: u64) -> Vec<u8> {
    let words = [FIXTURE_MAGIC, obj, gen, splitmix64(obj | (gen << 32))];
    let out: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    assert_eq!(out.len(), FIXTURE_BONUS_LEN);
    out
}

/// Bytes of each half of the fixtures' 4 KiB data period.
const FIXTURE_HALF_PERIOD: u64 = 2048;

/// `len` bytes of file data at `offset` of `obj`, laid out as the OpenZFS fixtures' data:
/// in every 4 KiB of the file, 2 KiB of `"zoracle-"` with each byte xor `obj % 32` (which
/// compresses well), then 2 KiB of splitmix64 words seeded by (`obj`, `seed`, position)
/// (which does not). Equal arguments give equal bytes; use a new `seed` for a rewrite.
#[must_use]
pub fn fixture_data(obj: u64, seed: u64, offset: u64, len: usize) -> Vec<u8> {
    let tag = u8::try_from(obj % 32).expect("< 32");
    let key = splitmix64((obj << 32) ^ seed);
    let mut out = Vec::with_capacity(len);
    let mut pos = offset;
    while out.len() < len {
        let word = if pos % (2 * FIXTURE_HALF_PERIOD) < FIXTURE_HALF_PERIOD {
            u64::from_le_bytes(*b"zoracle-") ^ u64::from_le_bytes([tag; 8])
        } else {
            splitmix64(key ^ (pos / 8))
        };
        let at = usize::try_from(pos % 8).expect("< 8");
        let take = (8 - at).min(len - out.len());
        out.extend_from_slice(&word.to_le_bytes()[at..at + take]);
        pos += take as u64;
    }
    assert_eq!(out.len(), len);
    out
}

/// A microzap block of `bs` bytes with `salt` and `entries` (name, value), cd 0 each.
#[must_use]
pub fn microzap(bs: u32, salt: u64, entries: &[(&str, u64)]) -> Vec<u8> {
    let bs = usize::try_from(bs).expect("block size fits usize");
    assert!((entries.len() + 1) * MZAP_ENT_LEN <= bs, "{} entries in {bs} B", entries.len());
    let mut out = vec![0u8; bs];
    out[..8].copy_from_slice(&ZBT_MICRO.to_le_bytes());
    out[8..16].copy_from_slice(&salt.to_le_bytes());
    for (i, (name, value)) in entries.iter().enumerate() {
        assert!(name.len() < MZAP_NAME_LEN, "microzap name {name:?}");
        let at = (i + 1) * MZAP_ENT_LEN;
        out[at..at + 8].copy_from_slice(&value.to_le_bytes());
        out[at + 14..at + 14 + name.len()].copy_from_slice(name.as_bytes());
    }
    out
}

/// A ZPL-like SA bonus (168 bytes): SA header, then mode, size, gen, uid, gid, parent,
/// flags, atime, mtime, ctime, crtime (seconds, nanoseconds), links, as u64 words.
#[must_use]
pub fn sa_bonus(mode: u64, size: u64, gen: u64, parent: u64, time_secs: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(SA_BONUS_LEN);
    out.extend_from_slice(&SA_MAGIC.to_le_bytes());
    out.extend_from_slice(&0x0404_u32.to_le_bytes()); // layout 4, header size 8 (as ZPL)
    let times = [time_secs, 0, time_secs, 0, time_secs, 0, time_secs, 0];
    let words = [mode, size, gen, 0, 0, parent, 0x0008_0000_0800]
        .into_iter()
        .chain(times)
        .chain([1, 0, 0, 0, 0]);
    for w in words {
        out.extend_from_slice(&u64::to_le_bytes(w));
    }
    assert_eq!(out.len(), SA_BONUS_LEN);
    out
}

/// Object spec with the default indirect block size.
#[must_use]
pub fn spec(ot: u8, blksz: u32, bonustype: u8, bonuslen: usize) -> ObjectSpec {
    ObjectSpec::new(ot, blksz, bonustype, bonuslen)
}

/// A plain file object of the fixtures: type 19, bonus type 26 with the fixture bonus.
#[must_use]
pub fn fixture_file(blksz: u32) -> ObjectSpec {
    spec(OT_FILE, blksz, OT_UINT64_OTHER, FIXTURE_BONUS_LEN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixture_bonus_is_the_openzfs_fixtures_bonus() {
        // golden/fixtures/openzfs/basic: object 2's bonus at generations 1 and 2.
        let words = |b: Vec<u8>| -> Vec<u64> {
            b.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().expect("8"))).collect()
        };
        assert_eq!(words(fixture_bonus(2, 1)), [FIXTURE_MAGIC, 2, 1, 0xb370_3ad8_9450_7022]);
        assert_eq!(words(fixture_bonus(2, 2)), [FIXTURE_MAGIC, 2, 2, 0xa839_1e45_28c2_a97f]);
        assert_eq!(&fixture_bonus(3, 1)[..8], b"!elcaroz");
    }

    #[test]
    fn fixture_data_alternates_pattern_and_noise_every_2_kib_of_the_file() {
        let data = fixture_data(34, 1, 1024, 8192);
        let pattern: Vec<u8> = b"zoracle-".iter().map(|b| b ^ 2).collect();
        assert_eq!(&data[..8], &pattern[..]);
        assert_eq!(&data[1016..1024], &pattern[..]); // file offset 2040..2048
        assert_ne!(&data[1024..1032], &pattern[..]); // file offset 2048: noise
        assert_eq!(&data[3072..3080], &pattern[..]); // file offset 4096: pattern again
        assert_eq!(fixture_data(34, 1, 1028, 4), data[4..8].to_vec(), "position-determined");
        assert_ne!(fixture_data(34, 2, 3072, 8), data[2048..2056].to_vec(), "seeded noise");
    }

    #[test]
    fn microzap_has_the_mzap_layout() {
        let zap = microzap(512, 0x39313, &[("VERSION", 5)]);
        assert_eq!(zap.len(), 512);
        assert_eq!(&zap[..16], &[3, 0, 0, 0, 0, 0, 0, 0x80, 0x13, 0x93, 3, 0, 0, 0, 0, 0]);
        assert_eq!(&zap[64..72], &5u64.to_le_bytes());
        assert_eq!(&zap[78..86], b"VERSION\0");
        assert!(zap[128..].iter().all(|&b| b == 0));
    }

    #[test]
    fn sa_bonus_starts_with_the_sa_magic() {
        let sa = sa_bonus(0o100_644, 4, 9, 4, 1_700_000_000);
        assert_eq!(sa.len(), SA_BONUS_LEN);
        assert_eq!(&sa[..4], &SA_MAGIC.to_le_bytes());
        assert_eq!(&sa[16..24], &4u64.to_le_bytes(), "size");
    }
}
