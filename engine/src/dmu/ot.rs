//! DMU object types (dmu_object_type_t numbering) the engine checks and uses.
//! OpenZFS: include/sys/dmu.h, dmu.c (dmu_ot table). The stream layer has the byteswap table.

/// Free dnode slot.
pub const DMU_OT_NONE: u8 = 0;
/// Pool directory (our MOS blob blocks).
pub const DMU_OT_OBJECT_DIRECTORY: u8 = 1;
/// Dnode blocks of an objset's meta-dnode.
pub const DMU_OT_DNODE: u8 = 10;
/// Objset blocks.
pub const DMU_OT_OBJSET: u8 = 11;
/// ZPL file contents.
pub const DMU_OT_PLAIN_FILE_CONTENTS: u8 = 19;
/// ZPL master node (a ZAP).
pub const DMU_OT_MASTER_NODE: u8 = 21;
/// Plain "other" object.
pub const DMU_OT_PLAIN_OTHER: u8 = 25;
/// uint64 "other" (bonus type used by the fixtures).
pub const DMU_OT_UINT64_OTHER: u8 = 26;
/// Number of legacy types (DMU_OT_NUMTYPES).
pub const DMU_OT_NUMTYPES: u8 = 54;

/// True if `ot` is a valid object type for an allocated object (not NONE, ZFS validity
/// rule: legacy types below 54, or new-style 0x80 types with a byteswap index below 10).
#[must_use]
pub const fn ot_is_valid(ot: u8) -> bool {
    if ot & 0x80 != 0 {
        (ot & 0x1f) < 10
    } else {
        ot > 0 && ot < DMU_OT_NUMTYPES
    }
}

/// True if `ot` is a valid bonus type (NONE allowed).
#[must_use]
pub const fn bonustype_is_valid(ot: u8) -> bool {
    ot == DMU_OT_NONE || ot_is_valid(ot)
}
