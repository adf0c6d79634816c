//! The OpenZFS send-stream wire format: records, checksums, nvlists, and `zstream dump` text.
//! Spec: `shared/docs/zfs-send-stream.md`. Used by dmu::send (writer), dmu::recv (reader) and
//! `zsim dump`. Knows nothing of pools or datasets.

pub mod nvlist;
pub mod record;

pub use record::{
    decode_header, encode_header, rechecksum, ByteOrder, DecodedHeader, Record, StreamError,
    StreamReader, StreamWriter,
};
pub mod ot;
