//! The OpenZFS send-stream wire format: records, checksums, nvlists, and `zstream dump` text.
//! Spec: `docs/zfs-send-stream.md`. Used by dmu::send (writer), dmu::recv (reader) and
//! `zsim dump`. Knows nothing of pools or datasets.
//! record: `dmu_replay_record_t`, StreamWriter / StreamReader, rechecksum (§1-2);
//! nvlist: packed BEGIN payloads (§1.6); dump: `zstream dump` output (§5);
//! ot: DMU object types, their metadata flag and payload byteswapping (§1.5, §3.9).

pub mod dump;
pub mod nvlist;
pub mod ot;
pub mod record;

pub use dump::{dump, DumpOptions};
pub use nvlist::{NvError, NvList, NvValue};
pub use ot::{byteswap_in_place, ot_byteswap_kind, ot_is_metadata, ot_is_valid, ByteswapKind};
pub use record::{
    decode_header, encode_header, rechecksum, ByteOrder, DecodedHeader, Record, StreamError,
    StreamReader, StreamWriter,
};
