//! DMU object types as streams carry them: validity, the metadata flag, and how a receiver
//! byteswaps a payload of each type. OpenZFS: dmu.c (dmu_ot[] and dmu_ot_byteswap[]),
//! include/sys/dmu.h (DMU_OT_NEWTYPE encoding). Spec: zfs-send-stream.md §1.5, §3.9.
//! ZAP, znode, ACL, dnode and objset payloads are swapped as arrays of u64 words: exact for
//! microzap headers and dnode/objset integer fields in this engine, documented simplification
//! for the rest (this engine stores such objects only as opaque bytes).

/// How a payload of some type is byteswapped (dmu_object_byteswap_t).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByteswapKind {
    /// Bytes: nothing to do.
    Uint8,
    /// 16-bit words.
    Uint16,
    /// 32-bit words.
    Uint32,
    /// 64-bit words.
    Uint64,
    /// ZAP blocks.
    Zap,
    /// Dnode blocks.
    Dnode,
    /// Objset blocks.
    Objset,
    /// Pre-SA znodes.
    Znode,
    /// Old ACLs.
    OldAcl,
    /// ACLs.
    Acl,
}

const KINDS: [ByteswapKind; 10] = [
    ByteswapKind::Uint8,
    ByteswapKind::Uint16,
    ByteswapKind::Uint32,
    ByteswapKind::Uint64,
    ByteswapKind::Zap,
    ByteswapKind::Dnode,
    ByteswapKind::Objset,
    ByteswapKind::Znode,
    ByteswapKind::OldAcl,
    ByteswapKind::Acl,
];

use ByteswapKind::{Acl, Dnode, Objset, OldAcl, Uint64, Uint8, Zap, Znode};

/// Legacy types 0..54: (byteswap, metadata), from OpenZFS's dmu_ot table.
const LEGACY: [(ByteswapKind, bool); 54] = [
    (Uint8, true),   // 0 unallocated
    (Zap, true),     // 1 object directory
    (Uint64, true),  // 2 object array
    (Uint8, true),   // 3 packed nvlist
    (Uint64, true),  // 4 packed nvlist size
    (Uint64, true),  // 5 bpobj
    (Uint64, true),  // 6 bpobj header
    (Uint64, true),  // 7 SPA space map header
    (Uint64, true),  // 8 SPA space map
    (Uint64, true),  // 9 ZIL intent log
    (Dnode, true),   // 10 DMU dnode
    (Objset, true),  // 11 DMU objset
    (Uint64, true),  // 12 DSL directory
    (Zap, true),     // 13 DSL directory child map
    (Zap, true),     // 14 DSL dataset snap map
    (Zap, true),     // 15 DSL props
    (Uint64, true),  // 16 DSL dataset
    (Znode, true),   // 17 ZFS znode
    (OldAcl, true),  // 18 ZFS V0 ACL
    (Uint8, false),  // 19 ZFS plain file
    (Zap, true),     // 20 ZFS directory
    (Zap, true),     // 21 ZFS master node
    (Zap, true),     // 22 ZFS delete queue
    (Uint8, false),  // 23 zvol object
    (Zap, true),     // 24 zvol prop
    (Uint8, false),  // 25 other uint8[]
    (Uint64, false), // 26 other uint64[]
    (Zap, true),     // 27 other ZAP
    (Zap, true),     // 28 persistent error log
    (Uint8, true),   // 29 SPA history
    (Uint64, true),  // 30 SPA history offsets
    (Zap, true),     // 31 Pool properties
    (Zap, true),     // 32 DSL permissions
    (Acl, true),     // 33 ZFS ACL
    (Uint8, true),   // 34 ZFS SYSACL
    (Uint8, true),   // 35 FUID table
    (Uint64, true),  // 36 FUID table size
    (Zap, true),     // 37 DSL dataset next clones
    (Zap, true),     // 38 scan work queue
    (Zap, true),     // 39 ZFS user/group/project used
    (Zap, true),     // 40 ZFS user/group/project quota
    (Zap, true),     // 41 snapshot refcount tags
    (Zap, true),     // 42 DDT ZAP algorithm
    (Zap, true),     // 43 DDT statistics
    (Uint8, true),   // 44 System attributes
    (Zap, true),     // 45 SA master node
    (Zap, true),     // 46 SA attr registration
    (Zap, true),     // 47 SA attr layouts
    (Zap, true),     // 48 scan translations
    (Uint8, true),   // 49 deduplicated block
    (Zap, true),     // 50 DSL deadlist map
    (Uint64, true),  // 51 DSL deadlist map hdr
    (Zap, true),     // 52 DSL dir clones
    (Uint64, true),  // 53 bpobj subobj
];

/// Bit marking a "new" (flag-encoded) object type (DMU_OT_NEWTYPE), §1.5.
pub const DMU_OT_NEWTYPE: u32 = 0x80;
/// Metadata bit of a new type (DMU_OT_METADATA).
pub const DMU_OT_METADATA: u32 = 0x40;
/// Encrypted bit of a new type (DMU_OT_ENCRYPTED).
pub const DMU_OT_ENCRYPTED: u32 = 0x20;
/// Byteswap index mask of a new type (DMU_OT_BYTESWAP_MASK).
pub const DMU_OT_BYTESWAP_MASK: u32 = 0x1f;
/// Number of legacy types (DMU_OT_NUMTYPES).
pub const DMU_OT_NUMTYPES: u32 = 54;
const _: () = assert!(LEGACY.len() == DMU_OT_NUMTYPES as usize);

/// Unallocated dnode.
pub const DMU_OT_NONE: u32 = 0;
/// MOS object directory (ZAP).
pub const DMU_OT_OBJECT_DIRECTORY: u32 = 1;
/// Array of object numbers.
pub const DMU_OT_OBJECT_ARRAY: u32 = 2;
/// Packed nvlist.
pub const DMU_OT_PACKED_NVLIST: u32 = 3;
/// Size of a packed nvlist (bonus).
pub const DMU_OT_PACKED_NVLIST_SIZE: u32 = 4;
/// Block pointer object.
pub const DMU_OT_BPOBJ: u32 = 5;
/// Block pointer object header (bonus).
pub const DMU_OT_BPOBJ_HDR: u32 = 6;
/// Space map header.
pub const DMU_OT_SPACE_MAP_HEADER: u32 = 7;
/// Space map.
pub const DMU_OT_SPACE_MAP: u32 = 8;
/// ZIL intent log.
pub const DMU_OT_INTENT_LOG: u32 = 9;
/// Dnode blocks (the meta-dnode's data).
pub const DMU_OT_DNODE: u32 = 10;
/// Objset.
pub const DMU_OT_OBJSET: u32 = 11;
/// DSL directory.
pub const DMU_OT_DSL_DIR: u32 = 12;
/// DSL directory child map (ZAP).
pub const DMU_OT_DSL_DIR_CHILD_MAP: u32 = 13;
/// DSL dataset snapshot map (ZAP).
pub const DMU_OT_DSL_DS_SNAP_MAP: u32 = 14;
/// DSL properties (ZAP).
pub const DMU_OT_DSL_PROPS: u32 = 15;
/// DSL dataset.
pub const DMU_OT_DSL_DATASET: u32 = 16;
/// Pre-SA znode (bonus).
pub const DMU_OT_ZNODE: u32 = 17;
/// Version-0 ACL.
pub const DMU_OT_OLDACL: u32 = 18;
/// File data.
pub const DMU_OT_PLAIN_FILE_CONTENTS: u32 = 19;
/// Directory (ZAP).
pub const DMU_OT_DIRECTORY_CONTENTS: u32 = 20;
/// ZPL master node (ZAP).
pub const DMU_OT_MASTER_NODE: u32 = 21;
/// ZPL unlinked set (ZAP).
pub const DMU_OT_UNLINKED_SET: u32 = 22;
/// Volume data.
pub const DMU_OT_ZVOL: u32 = 23;
/// Volume properties (ZAP).
pub const DMU_OT_ZVOL_PROP: u32 = 24;
/// Other uint8 array.
pub const DMU_OT_PLAIN_OTHER: u32 = 25;
/// Other uint64 array.
pub const DMU_OT_UINT64_OTHER: u32 = 26;
/// Other ZAP.
pub const DMU_OT_ZAP_OTHER: u32 = 27;
/// Persistent error log (ZAP).
pub const DMU_OT_ERROR_LOG: u32 = 28;
/// Pool history.
pub const DMU_OT_SPA_HISTORY: u32 = 29;
/// Pool history offsets (bonus).
pub const DMU_OT_SPA_HISTORY_OFFSETS: u32 = 30;
/// Pool properties (ZAP).
pub const DMU_OT_POOL_PROPS: u32 = 31;
/// Delegated permissions (ZAP).
pub const DMU_OT_DSL_PERMS: u32 = 32;
/// ACL.
pub const DMU_OT_ACL: u32 = 33;
/// System ACL.
pub const DMU_OT_SYSACL: u32 = 34;
/// FUID table.
pub const DMU_OT_FUID: u32 = 35;
/// FUID table size (bonus).
pub const DMU_OT_FUID_SIZE: u32 = 36;
/// Next clones (ZAP).
pub const DMU_OT_NEXT_CLONES: u32 = 37;
/// Scrub/scan queue (ZAP).
pub const DMU_OT_SCAN_QUEUE: u32 = 38;
/// User/group/project used (ZAP).
pub const DMU_OT_USERGROUP_USED: u32 = 39;
/// User/group/project quota (ZAP).
pub const DMU_OT_USERGROUP_QUOTA: u32 = 40;
/// Snapshot holds (ZAP).
pub const DMU_OT_USERREFS: u32 = 41;
/// DDT ZAP.
pub const DMU_OT_DDT_ZAP: u32 = 42;
/// DDT statistics (ZAP).
pub const DMU_OT_DDT_STATS: u32 = 43;
/// System attributes (bonus of SA znodes).
pub const DMU_OT_SA: u32 = 44;
/// SA master node (ZAP).
pub const DMU_OT_SA_MASTER_NODE: u32 = 45;
/// SA attribute registration (ZAP).
pub const DMU_OT_SA_ATTR_REGISTRATION: u32 = 46;
/// SA attribute layouts (ZAP).
pub const DMU_OT_SA_ATTR_LAYOUTS: u32 = 47;
/// Scan translations (ZAP).
pub const DMU_OT_SCAN_XLATE: u32 = 48;
/// Deduplicated block.
pub const DMU_OT_DEDUP: u32 = 49;
/// Deadlist map (ZAP).
pub const DMU_OT_DEADLIST: u32 = 50;
/// Deadlist header (bonus).
pub const DMU_OT_DEADLIST_HDR: u32 = 51;
/// DSL directory clones (ZAP).
pub const DMU_OT_DSL_CLONES: u32 = 52;
/// Block pointer object sub-objects.
pub const DMU_OT_BPOBJ_SUBOBJ: u32 = 53;
/// New-style uint64 metadata type (DMU_OTN_UINT64_METADATA).
pub const DMU_OTN_UINT64_METADATA: u32 = DMU_OT_NEWTYPE | DMU_OT_METADATA | 3;
/// New-style ZAP metadata type (DMU_OTN_ZAP_METADATA).
pub const DMU_OTN_ZAP_METADATA: u32 = DMU_OT_NEWTYPE | DMU_OT_METADATA | 4;

/// True if `ot` is a valid object type number (NONE included).
#[must_use]
pub fn ot_is_valid(ot: u32) -> bool {
    // DMU_OT_IS_VALID: `ot & 0x80 ? (ot & 0x1f) < 10 : ot < 54`.
    if ot & DMU_OT_NEWTYPE != 0 {
        (ot & DMU_OT_BYTESWAP_MASK) < KINDS.len() as u32
    } else {
        ot < DMU_OT_NUMTYPES
    }
}

/// True if blocks of type `ot` are metadata (never compressed by `-c`, holes past the end
/// still sent).
#[must_use]
pub fn ot_is_metadata(ot: u32) -> bool {
    if ot & DMU_OT_NEWTYPE != 0 {
        return ot & DMU_OT_METADATA != 0;
    }
    LEGACY.get(ot as usize).is_some_and(|&(_, meta)| meta)
}

/// The byteswap kind of `ot`, or None for an invalid type.
#[must_use]
pub fn ot_byteswap_kind(ot: u32) -> Option<ByteswapKind> {
    if !ot_is_valid(ot) {
        return None;
    }
    if ot & DMU_OT_NEWTYPE != 0 {
        return Some(KINDS[(ot & DMU_OT_BYTESWAP_MASK) as usize]);
    }
    Some(LEGACY[ot as usize].0)
}

/// Byteswap `buf` in place as a payload of `kind` (trailing partial words are left alone).
pub fn byteswap_in_place(kind: ByteswapKind, buf: &mut [u8]) {
    let width = match kind {
        ByteswapKind::Uint8 => return,
        ByteswapKind::Uint16 => 2,
        ByteswapKind::Uint32 => 4,
        _ => 8,
    };
    for w in buf.chunks_exact_mut(width) {
        w.reverse();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_validity_and_metadata() {
        assert!(ot_is_valid(19) && !ot_is_metadata(19));
        assert!(ot_is_metadata(21) && ot_is_metadata(10));
        assert!(!ot_is_valid(54) && ot_is_valid(0xc4) && !ot_is_valid(0x8a));
        assert!(ot_is_metadata(0xc4) && !ot_is_metadata(0x83));
        assert_eq!(ot_byteswap_kind(26), Some(ByteswapKind::Uint64));
        assert_eq!(ot_byteswap_kind(DMU_OTN_ZAP_METADATA), Some(ByteswapKind::Zap));
        assert_eq!(ot_byteswap_kind(0xc8), Some(ByteswapKind::OldAcl));
        assert_eq!(ot_byteswap_kind(0xea), None);
        assert_eq!(ot_byteswap_kind(DMU_OT_NUMTYPES), None);
        assert_eq!(ot_byteswap_kind(DMU_OT_SA), Some(ByteswapKind::Uint8));
        assert_eq!(ot_byteswap_kind(DMU_OT_MASTER_NODE), Some(ByteswapKind::Zap));
        assert!(!ot_is_metadata(DMU_OT_ZVOL) && ot_is_metadata(DMU_OT_ZVOL_PROP));
        assert!(!ot_is_metadata(DMU_OT_UINT64_OTHER) && ot_is_metadata(DMU_OT_ZAP_OTHER));
    }

    #[test]
    fn byteswap_swaps_words() {
        let mut b = vec![1, 2, 3, 4, 5, 6, 7, 8, 9];
        byteswap_in_place(ByteswapKind::Uint64, &mut b);
        assert_eq!(b, vec![8, 7, 6, 5, 4, 3, 2, 1, 9]);
        let mut c = vec![1, 2, 3, 4];
        byteswap_in_place(ByteswapKind::Uint16, &mut c);
        assert_eq!(c, vec![2, 1, 4, 3]);
        byteswap_in_place(ByteswapKind::Uint8, &mut c);
        assert_eq!(c, vec![2, 1, 4, 3]);
    }
}
