//! Packed nvlists (BEGIN payloads): XDR and NATIVE decoding, XDR/NATIVE encoding, and the
//! `nvlist_print` text `zstream dump` shows. OpenZFS: module/nvpair/nvpair.c (nvs_xdr_*,
//! nvs_native_*), lib/libnvpair/libnvpair.c (nvlist_print). Spec: zfs-send-stream.md §1.6, §5.1.
//! Used by stream::dump and dmu::send/recv. Invariants: decoding never panics and allocates in
//! proportion to the input; nesting is bounded by NV_MAX_DEPTH; every decoded pair passed the
//! size checks of `i_validate_nvpair` (decoded size = align8(16 + name) + align8(value)).

use crate::stream::record::ByteOrder;

/// `NV_VERSION`: the only nvlist version.
pub const NV_VERSION: i32 = 0;
/// `NV_UNIQUE_NAME`, the nvflag our encoder sets.
pub const NV_UNIQUE_NAME: u32 = 1;
/// Header byte 0: NATIVE encoding.
pub const NV_ENCODE_NATIVE: u8 = 0;
/// Header byte 0: XDR encoding.
pub const NV_ENCODE_XDR: u8 = 1;
/// Deepest nesting of embedded lists (`nvpair_max_recursion`).
pub const NV_MAX_DEPTH: usize = 20;
/// Bytes of the packed header `[encoding, endian, 0, 0]`.
pub const NV_HEADER_BYTES: usize = 4;
/// Bytes of the fixed part of an in-memory nvpair (size, name_sz, reserve, nelem, type).
const NVP_HEADER_BYTES: usize = 16;
/// Bytes of an in-memory `nvlist_t` (the value of an embedded list).
const NVLIST_IMAGE_BYTES: usize = 24;
/// Smallest decoded pair: NVP_SIZE_CALC(1, 0).
const NVP_SIZE_MIN: usize = 24;

/// Data type codes (`data_type_t`), §1.6.
pub mod data_type {
    /// Presence-only flag.
    pub const BOOLEAN: i32 = 1;
    /// `uchar_t`.
    pub const BYTE: i32 = 2;
    /// `int16_t`.
    pub const INT16: i32 = 3;
    /// `uint16_t`.
    pub const UINT16: i32 = 4;
    /// `int32_t`.
    pub const INT32: i32 = 5;
    /// `uint32_t`.
    pub const UINT32: i32 = 6;
    /// `int64_t`.
    pub const INT64: i32 = 7;
    /// `uint64_t`.
    pub const UINT64: i32 = 8;
    /// C string.
    pub const STRING: i32 = 9;
    /// Byte array.
    pub const BYTE_ARRAY: i32 = 10;
    /// int16 array.
    pub const INT16_ARRAY: i32 = 11;
    /// uint16 array.
    pub const UINT16_ARRAY: i32 = 12;
    /// int32 array.
    pub const INT32_ARRAY: i32 = 13;
    /// uint32 array.
    pub const UINT32_ARRAY: i32 = 14;
    /// int64 array.
    pub const INT64_ARRAY: i32 = 15;
    /// uint64 array.
    pub const UINT64_ARRAY: i32 = 16;
    /// String array.
    pub const STRING_ARRAY: i32 = 17;
    /// `hrtime_t`.
    pub const HRTIME: i32 = 18;
    /// Embedded nvlist.
    pub const NVLIST: i32 = 19;
    /// Array of embedded nvlists.
    pub const NVLIST_ARRAY: i32 = 20;
    /// `boolean_t` value.
    pub const BOOLEAN_VALUE: i32 = 21;
    /// `int8_t`.
    pub const INT8: i32 = 22;
    /// `uint8_t`.
    pub const UINT8: i32 = 23;
    /// boolean_t array.
    pub const BOOLEAN_ARRAY: i32 = 24;
    /// int8 array.
    pub const INT8_ARRAY: i32 = 25;
    /// uint8 array.
    pub const UINT8_ARRAY: i32 = 26;
}

use data_type as dt;

/// One nvpair value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NvValue {
    /// DATA_TYPE_BOOLEAN: the name alone is the information.
    Boolean,
    /// DATA_TYPE_BOOLEAN_VALUE.
    BooleanValue(bool),
    /// DATA_TYPE_BYTE.
    Byte(u8),
    /// DATA_TYPE_INT8.
    Int8(i8),
    /// DATA_TYPE_UINT8.
    Uint8(u8),
    /// DATA_TYPE_INT16.
    Int16(i16),
    /// DATA_TYPE_UINT16.
    Uint16(u16),
    /// DATA_TYPE_INT32.
    Int32(i32),
    /// DATA_TYPE_UINT32.
    Uint32(u32),
    /// DATA_TYPE_INT64.
    Int64(i64),
    /// DATA_TYPE_UINT64.
    Uint64(u64),
    /// DATA_TYPE_STRING (no interior NUL).
    String(String),
    /// DATA_TYPE_HRTIME.
    Hrtime(i64),
    /// DATA_TYPE_BYTE_ARRAY.
    ByteArray(Vec<u8>),
    /// DATA_TYPE_BOOLEAN_ARRAY.
    BooleanArray(Vec<bool>),
    /// DATA_TYPE_INT8_ARRAY.
    Int8Array(Vec<i8>),
    /// DATA_TYPE_UINT8_ARRAY.
    Uint8Array(Vec<u8>),
    /// DATA_TYPE_INT16_ARRAY.
    Int16Array(Vec<i16>),
    /// DATA_TYPE_UINT16_ARRAY.
    Uint16Array(Vec<u16>),
    /// DATA_TYPE_INT32_ARRAY.
    Int32Array(Vec<i32>),
    /// DATA_TYPE_UINT32_ARRAY.
    Uint32Array(Vec<u32>),
    /// DATA_TYPE_INT64_ARRAY.
    Int64Array(Vec<i64>),
    /// DATA_TYPE_UINT64_ARRAY.
    Uint64Array(Vec<u64>),
    /// DATA_TYPE_STRING_ARRAY.
    StringArray(Vec<String>),
    /// DATA_TYPE_NVLIST.
    NvList(NvList),
    /// DATA_TYPE_NVLIST_ARRAY.
    NvListArray(Vec<NvList>),
}

/// An owned nvlist: pairs in packing order (duplicates are kept as found).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NvList {
    /// (name, value) in order.
    pub pairs: Vec<(String, NvValue)>,
}

impl NvList {
    /// An empty list.
    #[must_use]
    pub fn new() -> Self {
        NvList { pairs: Vec::new() }
    }

    /// Appends a pair; asserts the name has no NUL (our own data).
    pub fn add(&mut self, name: &str, value: NvValue) -> &mut Self {
        assert!(!name.contains('\0'), "nvpair name {name:?} contains NUL");
        self.pairs.push((name.to_owned(), value));
        self
    }

    /// The first value named `name`.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&NvValue> {
        self.pairs.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// The u64 named `name` (nvlist_lookup_uint64).
    #[must_use]
    pub fn lookup_uint64(&self, name: &str) -> Option<u64> {
        match self.get(name) {
            Some(NvValue::Uint64(v)) => Some(*v),
            _ => None,
        }
    }

    /// The string named `name` (nvlist_lookup_string).
    #[must_use]
    pub fn lookup_string(&self, name: &str) -> Option<&str> {
        match self.get(name) {
            Some(NvValue::String(v)) => Some(v),
            _ => None,
        }
    }

    /// The embedded list named `name` (nvlist_lookup_nvlist).
    #[must_use]
    pub fn lookup_nvlist(&self, name: &str) -> Option<&NvList> {
        match self.get(name) {
            Some(NvValue::NvList(v)) => Some(v),
            _ => None,
        }
    }

    /// True if a pair named `name` exists (nvlist_exists).
    #[must_use]
    pub fn exists(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

/// Why a packed nvlist could not be decoded, with the errno `nvlist_unpack` would return.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NvError {
    /// Shorter than the 4-byte header (EINVAL).
    #[error("packed nvlist of {len} bytes has no header")]
    Short {
        /// Bytes given.
        len: usize,
    },
    /// Unknown encoding or endianness, or an embedded list of another version (ENOTSUP).
    #[error("unsupported packed nvlist: {reason}")]
    Unsupported {
        /// What is unsupported.
        reason: &'static str,
    },
    /// Malformed contents (EFAULT).
    #[error("malformed packed nvlist at byte {offset}: {reason}")]
    Invalid {
        /// Byte offset in the packed buffer.
        offset: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// Nested deeper than NV_MAX_DEPTH (EINVAL).
    #[error("nvlist nested deeper than {max}", max = NV_MAX_DEPTH)]
    TooDeep,
}

impl NvError {
    /// The Linux errno `nvlist_unpack` returns for this failure.
    #[must_use]
    pub fn errno(&self) -> i32 {
        match self {
            NvError::Short { .. } | NvError::TooDeep => 22,
            NvError::Unsupported { .. } => 95,
            NvError::Invalid { .. } => 14,
        }
    }

    /// `strerror(errno())` as glibc prints it.
    #[must_use]
    pub fn strerror(&self) -> &'static str {
        match self.errno() {
            22 => "Invalid argument",
            95 => "Operation not supported",
            _ => "Bad address",
        }
    }
}

const fn align8(x: usize) -> usize {
    (x + 7) & !7
}

const fn align4(x: usize) -> usize {
    (x + 3) & !3
}

/// NVP_SIZE_CALC: in-memory size of a pair with a name of `name_sz` bytes (NUL included).
const fn nvp_size_calc(name_sz: usize, value_sz: usize) -> usize {
    align8(NVP_HEADER_BYTES + name_sz) + align8(value_sz)
}

/// Size of a value per `i_get_value_size` without string contents (`None`: bad type/nelem).
fn fixed_value_size(ty: i32, nelem: u32) -> Option<usize> {
    let n = nelem as usize;
    let scalar = |size: usize| if nelem == 1 { Some(size) } else { None };
    match ty {
        dt::BOOLEAN => (nelem == 0).then_some(0),
        dt::BOOLEAN_VALUE | dt::INT32 | dt::UINT32 => scalar(4),
        dt::BYTE | dt::INT8 | dt::UINT8 => scalar(1),
        dt::INT16 | dt::UINT16 => scalar(2),
        dt::INT64 | dt::UINT64 | dt::HRTIME => scalar(8),
        dt::STRING => scalar(0),
        dt::NVLIST => scalar(NVLIST_IMAGE_BYTES),
        dt::BYTE_ARRAY | dt::INT8_ARRAY | dt::UINT8_ARRAY => n.checked_mul(1),
        dt::INT16_ARRAY | dt::UINT16_ARRAY => n.checked_mul(2),
        dt::BOOLEAN_ARRAY | dt::INT32_ARRAY | dt::UINT32_ARRAY => n.checked_mul(4),
        dt::INT64_ARRAY | dt::UINT64_ARRAY | dt::STRING_ARRAY => n.checked_mul(8),
        dt::NVLIST_ARRAY => n.checked_mul(8 + NVLIST_IMAGE_BYTES),
        _ => None,
    }
    .filter(|&v| v <= i32::MAX as usize)
}

impl NvValue {
    /// The `data_type_t` of this value.
    #[must_use]
    pub fn data_type(&self) -> i32 {
        match self {
            NvValue::Boolean => dt::BOOLEAN,
            NvValue::BooleanValue(_) => dt::BOOLEAN_VALUE,
            NvValue::Byte(_) => dt::BYTE,
            NvValue::Int8(_) => dt::INT8,
            NvValue::Uint8(_) => dt::UINT8,
            NvValue::Int16(_) => dt::INT16,
            NvValue::Uint16(_) => dt::UINT16,
            NvValue::Int32(_) => dt::INT32,
            NvValue::Uint32(_) => dt::UINT32,
            NvValue::Int64(_) => dt::INT64,
            NvValue::Uint64(_) => dt::UINT64,
            NvValue::String(_) => dt::STRING,
            NvValue::Hrtime(_) => dt::HRTIME,
            NvValue::ByteArray(_) => dt::BYTE_ARRAY,
            NvValue::BooleanArray(_) => dt::BOOLEAN_ARRAY,
            NvValue::Int8Array(_) => dt::INT8_ARRAY,
            NvValue::Uint8Array(_) => dt::UINT8_ARRAY,
            NvValue::Int16Array(_) => dt::INT16_ARRAY,
            NvValue::Uint16Array(_) => dt::UINT16_ARRAY,
            NvValue::Int32Array(_) => dt::INT32_ARRAY,
            NvValue::Uint32Array(_) => dt::UINT32_ARRAY,
            NvValue::Int64Array(_) => dt::INT64_ARRAY,
            NvValue::Uint64Array(_) => dt::UINT64_ARRAY,
            NvValue::StringArray(_) => dt::STRING_ARRAY,
            NvValue::NvList(_) => dt::NVLIST,
            NvValue::NvListArray(_) => dt::NVLIST_ARRAY,
        }
    }

    /// `nvp_value_elem`: 0 for BOOLEAN, the length for arrays, else 1.
    #[must_use]
    pub fn nelem(&self) -> u32 {
        let n = match self {
            NvValue::Boolean => 0,
            NvValue::ByteArray(v) | NvValue::Uint8Array(v) => v.len(),
            NvValue::BooleanArray(v) => v.len(),
            NvValue::Int8Array(v) => v.len(),
            NvValue::Int16Array(v) => v.len(),
            NvValue::Uint16Array(v) => v.len(),
            NvValue::Int32Array(v) => v.len(),
            NvValue::Uint32Array(v) => v.len(),
            NvValue::Int64Array(v) => v.len(),
            NvValue::Uint64Array(v) => v.len(),
            NvValue::StringArray(v) => v.len(),
            NvValue::NvListArray(v) => v.len(),
            _ => 1,
        };
        u32::try_from(n).expect("invariant: nvpair arrays hold < 2^32 elements")
    }

    /// In-memory value size (`i_get_value_size` with the data).
    fn value_size(&self) -> usize {
        let fixed = fixed_value_size(self.data_type(), self.nelem()).unwrap_or(0);
        match self {
            NvValue::String(s) => s.len() + 1,
            NvValue::StringArray(v) => fixed + v.iter().map(|s| s.len() + 1).sum::<usize>(),
            _ => fixed,
        }
    }
}

/// A bounded cursor over the packed buffer; offsets in errors are absolute.
struct Cur<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cur<'a> {
    fn err(&self, reason: &'static str) -> NvError {
        NvError::Invalid { offset: self.pos, reason }
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], NvError> {
        if n > self.remaining() {
            return Err(self.err("truncated"));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn take4(&mut self) -> Result<[u8; 4], NvError> {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.take(4)?);
        Ok(b)
    }

    fn take8(&mut self) -> Result<[u8; 8], NvError> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(b)
    }
}

/// Bytes up to the first NUL, lossily decoded: what C's `%s` and `strlen` see.
fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// The encoding and endian bytes of a packed nvlist's header, if it has one.
#[must_use]
pub fn packed_header(buf: &[u8]) -> Option<(u8, u8)> {
    (buf.len() >= NV_HEADER_BYTES).then(|| (buf[0], buf[1]))
}

/// Decodes a packed nvlist, XDR or NATIVE in either byte order (`nvlist_unpack`, but also
/// accepting a NATIVE list of the other byte order, which the C code refuses with ENOTSUP).
/// Embedded lists must have version 0. Never panics.
pub fn unpack(buf: &[u8]) -> Result<NvList, NvError> {
    let Some((encoding, endian)) = packed_header(buf) else {
        return Err(NvError::Short { len: buf.len() });
    };
    let mut cur = Cur { buf, pos: NV_HEADER_BYTES };
    match encoding {
        NV_ENCODE_XDR => xdr::list(&mut cur, 0),
        NV_ENCODE_NATIVE => {
            let order = match endian {
                1 => ByteOrder::Little,
                0 => ByteOrder::Big,
                _ => return Err(NvError::Unsupported { reason: "unknown endianness" }),
            };
            native::top(&mut cur, order)
        }
        _ => Err(NvError::Unsupported { reason: "unknown encoding" }),
    }
}

/// Packs `nvl` in XDR, as libnvpair does on a little-endian host (endian byte 1).
#[must_use]
pub fn pack_xdr(nvl: &NvList) -> Vec<u8> {
    let endian = u8::from(ByteOrder::HOST == ByteOrder::Little);
    let mut out = vec![NV_ENCODE_XDR, endian, 0, 0];
    xdr::put_list(&mut out, nvl);
    out
}

/// Packs `nvl` in NATIVE encoding for a host of byte order `order`.
#[must_use]
pub fn pack_native(nvl: &NvList, order: ByteOrder) -> Vec<u8> {
    let endian = u8::from(order == ByteOrder::Little);
    let mut out = vec![NV_ENCODE_NATIVE, endian, 0, 0];
    out.extend_from_slice(&order.u32_bytes(NV_VERSION as u32));
    out.extend_from_slice(&order.u32_bytes(NV_UNIQUE_NAME));
    native::put_pairs(&mut out, nvl, order);
    out
}

/// The checks of `i_validate_nvpair` on a decoded pair: the decoded size must be exactly
/// NVP_SIZE_CALC(name, value) and the name must fit.
fn validate_pair(
    cur: &Cur<'_>,
    nvp_size: usize,
    name_sz: usize,
    value: &NvValue,
) -> Result<(), NvError> {
    if nvp_size < nvp_size_calc(name_sz, 0) {
        return Err(cur.err("pair too small for its name"));
    }
    let valoff = align8(NVP_HEADER_BYTES + name_sz);
    if nvp_size - valoff != align8(value.value_size()) {
        return Err(cur.err("pair size does not match its value"));
    }
    Ok(())
}

mod xdr {
    //! XDR encoding (§1.6): big-endian 4-byte units, strings and opaques padded to 4.

    use super::{
        align4, align8, c_string, dt, fixed_value_size, nvp_size_calc, validate_pair, Cur, NvError,
        NvList, NvValue, NVP_HEADER_BYTES, NVP_SIZE_MIN, NV_MAX_DEPTH, NV_UNIQUE_NAME, NV_VERSION,
    };

    fn i32(c: &mut Cur<'_>) -> Result<i32, NvError> {
        Ok(i32::from_be_bytes(c.take4()?))
    }

    fn u32(c: &mut Cur<'_>) -> Result<u32, NvError> {
        Ok(u32::from_be_bytes(c.take4()?))
    }

    fn u64(c: &mut Cur<'_>) -> Result<u64, NvError> {
        Ok(u64::from_be_bytes(c.take8()?))
    }

    /// `xdr_string` with a maximum length.
    fn string(c: &mut Cur<'_>, max: usize) -> Result<String, NvError> {
        let len = u32(c)? as usize;
        if len > max {
            return Err(c.err("string longer than its pair"));
        }
        let s = c_string(c.take(len)?);
        c.take(align4(len) - len)?;
        Ok(s)
    }

    /// `xdr_array` header: the element count must equal the pair's nelem.
    fn count(c: &mut Cur<'_>, nelem: u32) -> Result<usize, NvError> {
        if u32(c)? != nelem {
            return Err(c.err("array count differs from nelem"));
        }
        Ok(nelem as usize)
    }

    /// NVS_XDR_MAX_LEN: the largest decoded pair `avail` encoded bytes can describe.
    fn max_decoded_len(avail: usize) -> usize {
        let data = avail.saturating_sub(20);
        NVP_SIZE_MIN + data * 2 + align4(data / 4)
    }

    /// A list: version, nvflag, pairs, terminator (§1.6).
    pub(super) fn list(c: &mut Cur<'_>, depth: usize) -> Result<NvList, NvError> {
        if depth > NV_MAX_DEPTH {
            return Err(NvError::TooDeep);
        }
        if i32(c)? != NV_VERSION {
            return Err(NvError::Unsupported { reason: "nvlist version" });
        }
        let _nvflag = u32(c)?;
        let mut nvl = NvList::new();
        loop {
            let _encode_len = i32(c)?;
            let decode_len = i32(c)?;
            if decode_len == 0 {
                return Ok(nvl);
            }
            let nvp_size = usize::try_from(decode_len).map_err(|_| c.err("negative size"))?;
            if nvp_size > max_decoded_len(c.remaining()) || nvp_size < NVP_SIZE_MIN {
                return Err(c.err("implausible decoded pair size"));
            }
            nvl.pairs.push(pair(c, nvp_size, depth)?);
        }
    }

    fn pair(c: &mut Cur<'_>, nvp_size: usize, depth: usize) -> Result<(String, NvValue), NvError> {
        let name = string(c, nvp_size - NVP_HEADER_BYTES - 1)?;
        let name_sz = name.len() + 1;
        let ty = i32(c)?;
        let nelem = u32(c)?;
        let Some(fixed) = fixed_value_size(ty, nelem) else {
            return Err(c.err("bad type or element count"));
        };
        let valoff = align8(NVP_HEADER_BYTES + name_sz);
        let value = if nelem == 0 {
            empty_value(ty).ok_or_else(|| c.err("bad type or element count"))?
        } else {
            if valoff >= nvp_size || nvp_size - valoff < fixed {
                return Err(c.err("value larger than its pair"));
            }
            value(c, ty, nelem, nvp_size - valoff, depth)?
        };
        validate_pair(c, nvp_size, name_sz, &value)?;
        Ok((name, value))
    }

    /// The value of a pair with nelem 0 (BOOLEAN or an empty array): nothing is encoded.
    pub(super) fn empty_value(ty: i32) -> Option<NvValue> {
        Some(match ty {
            dt::BOOLEAN => NvValue::Boolean,
            dt::BYTE_ARRAY => NvValue::ByteArray(Vec::new()),
            dt::BOOLEAN_ARRAY => NvValue::BooleanArray(Vec::new()),
            dt::INT8_ARRAY => NvValue::Int8Array(Vec::new()),
            dt::UINT8_ARRAY => NvValue::Uint8Array(Vec::new()),
            dt::INT16_ARRAY => NvValue::Int16Array(Vec::new()),
            dt::UINT16_ARRAY => NvValue::Uint16Array(Vec::new()),
            dt::INT32_ARRAY => NvValue::Int32Array(Vec::new()),
            dt::UINT32_ARRAY => NvValue::Uint32Array(Vec::new()),
            dt::INT64_ARRAY => NvValue::Int64Array(Vec::new()),
            dt::UINT64_ARRAY => NvValue::Uint64Array(Vec::new()),
            dt::STRING_ARRAY => NvValue::StringArray(Vec::new()),
            dt::NVLIST_ARRAY => NvValue::NvListArray(Vec::new()),
            _ => return None,
        })
    }

    fn value(
        c: &mut Cur<'_>,
        ty: i32,
        nelem: u32,
        room: usize,
        depth: usize,
    ) -> Result<NvValue, NvError> {
        Ok(match ty {
            dt::BOOLEAN_VALUE => match i32(c)? {
                0 => NvValue::BooleanValue(false),
                1 => NvValue::BooleanValue(true),
                _ => return Err(c.err("boolean not 0 or 1")),
            },
            dt::BYTE => NvValue::Byte(u32(c)? as u8),
            dt::INT8 => NvValue::Int8(i32(c)? as i8),
            dt::UINT8 => NvValue::Uint8(u32(c)? as u8),
            dt::INT16 => NvValue::Int16(i32(c)? as i16),
            dt::UINT16 => NvValue::Uint16(u32(c)? as u16),
            dt::INT32 => NvValue::Int32(i32(c)?),
            dt::UINT32 => NvValue::Uint32(u32(c)?),
            dt::INT64 => NvValue::Int64(u64(c)? as i64),
            dt::UINT64 => NvValue::Uint64(u64(c)?),
            dt::HRTIME => NvValue::Hrtime(u64(c)? as i64),
            dt::STRING => NvValue::String(string(c, room - 1)?),
            dt::NVLIST => NvValue::NvList(list(c, depth + 1)?),
            _ => array(c, ty, nelem, room, depth)?,
        })
    }

    fn array(
        c: &mut Cur<'_>,
        ty: i32,
        nelem: u32,
        room: usize,
        depth: usize,
    ) -> Result<NvValue, NvError> {
        let n = nelem as usize;
        Ok(match ty {
            dt::BYTE_ARRAY => {
                let v = c.take(n)?.to_vec();
                c.take(align4(n) - n)?;
                NvValue::ByteArray(v)
            }
            dt::INT8_ARRAY => NvValue::Int8Array(units(c, nelem, |w| w as i8)?),
            dt::UINT8_ARRAY => NvValue::Uint8Array(units(c, nelem, |w| w as u8)?),
            dt::INT16_ARRAY => NvValue::Int16Array(units(c, nelem, |w| w as i16)?),
            dt::UINT16_ARRAY => NvValue::Uint16Array(units(c, nelem, |w| w as u16)?),
            dt::INT32_ARRAY => NvValue::Int32Array(units(c, nelem, |w| w as i32)?),
            dt::UINT32_ARRAY => NvValue::Uint32Array(units(c, nelem, |w| w)?),
            dt::BOOLEAN_ARRAY => {
                let v = units(c, nelem, |w| w)?;
                if v.iter().any(|&b| b > 1) {
                    return Err(c.err("boolean not 0 or 1"));
                }
                NvValue::BooleanArray(v.into_iter().map(|b| b == 1).collect())
            }
            dt::INT64_ARRAY => NvValue::Int64Array(hypers(c, nelem)?.map(|v| v as i64).collect()),
            dt::UINT64_ARRAY => NvValue::Uint64Array(hypers(c, nelem)?.collect()),
            dt::STRING_ARRAY => {
                let mut v = Vec::new();
                let mut left = room.saturating_sub(n * 8);
                for _ in 0..n {
                    let s = string(c, left.saturating_sub(1))?;
                    left = left.saturating_sub(s.len() + 1);
                    v.push(s);
                }
                NvValue::StringArray(v)
            }
            dt::NVLIST_ARRAY => {
                let mut v = Vec::new();
                for _ in 0..n {
                    v.push(list(c, depth + 1)?);
                }
                NvValue::NvListArray(v)
            }
            _ => return Err(c.err("bad type")),
        })
    }

    /// `xdr_array` of 4-byte units (chars, shorts and ints all take one unit).
    fn units<T>(c: &mut Cur<'_>, nelem: u32, f: impl Fn(u32) -> T) -> Result<Vec<T>, NvError> {
        let n = count(c, nelem)?;
        let bytes = c.take(n.checked_mul(4).ok_or_else(|| c.err("array too large"))?)?;
        Ok(bytes.chunks_exact(4).map(|w| f(u32::from_be_bytes([w[0], w[1], w[2], w[3]]))).collect())
    }

    /// `xdr_array` of 8-byte hypers.
    fn hypers<'a>(c: &mut Cur<'a>, nelem: u32) -> Result<impl Iterator<Item = u64> + 'a, NvError> {
        let n = count(c, nelem)?;
        let bytes = c.take(n.checked_mul(8).ok_or_else(|| c.err("array too large"))?)?;
        Ok(bytes
            .chunks_exact(8)
            .map(|w| u64::from_be_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]])))
    }

    fn put_u32(out: &mut Vec<u8>, v: u32) {
        out.extend_from_slice(&v.to_be_bytes());
    }

    fn put_string(out: &mut Vec<u8>, s: &str) {
        assert!(!s.contains('\0'), "nvlist string {s:?} contains NUL");
        put_u32(out, u32::try_from(s.len()).expect("invariant: string < 4 GiB"));
        out.extend_from_slice(s.as_bytes());
        out.resize(align4(out.len()), 0);
    }

    /// Encoded size of a list (nvs_xdr_nvlist GETSIZE: version, nvflag, terminator, pairs).
    fn list_size(nvl: &NvList) -> usize {
        16 + nvl.pairs.iter().map(|(n, v)| pair_size(n, v)).sum::<usize>()
    }

    /// `nvs_xdr_nvp_size`: the encode_size field of a pair (counts an array's count word
    /// even when nelem is 0 and nothing is written, as libnvpair does).
    fn pair_size(name: &str, v: &NvValue) -> usize {
        let base = 4 + 4 + 4 + align4(name.len()) + 4 + 4;
        base + match v {
            NvValue::Boolean => 0,
            NvValue::BooleanValue(_)
            | NvValue::Byte(_)
            | NvValue::Int8(_)
            | NvValue::Uint8(_)
            | NvValue::Int16(_)
            | NvValue::Uint16(_)
            | NvValue::Int32(_)
            | NvValue::Uint32(_) => 4,
            NvValue::Int64(_) | NvValue::Uint64(_) | NvValue::Hrtime(_) => 8,
            NvValue::String(s) => 4 + align4(s.len()),
            NvValue::ByteArray(b) => align4(b.len()),
            NvValue::Int64Array(_) | NvValue::Uint64Array(_) => 4 + 8 * v.nelem() as usize,
            NvValue::StringArray(v) => v.iter().map(|s| 4 + align4(s.len())).sum(),
            NvValue::NvList(l) => list_size(l),
            NvValue::NvListArray(ls) => ls.iter().map(list_size).sum(),
            _ => 4 + 4 * v.nelem() as usize,
        }
    }

    pub(super) fn put_list(out: &mut Vec<u8>, nvl: &NvList) {
        put_u32(out, NV_VERSION as u32);
        put_u32(out, NV_UNIQUE_NAME);
        for (name, v) in &nvl.pairs {
            let enc = u32::try_from(pair_size(name, v)).expect("invariant: pair < 2 GiB");
            let dec = nvp_size_calc(name.len() + 1, v.value_size());
            put_u32(out, enc);
            put_u32(out, u32::try_from(dec).expect("invariant: pair < 2 GiB"));
            put_string(out, name);
            put_u32(out, v.data_type() as u32);
            put_u32(out, v.nelem());
            if v.nelem() != 0 {
                put_value(out, v);
            }
        }
        out.extend_from_slice(&[0; 8]);
    }

    fn put_value(out: &mut Vec<u8>, v: &NvValue) {
        let n = v.nelem();
        match v {
            NvValue::Boolean => {}
            NvValue::BooleanValue(b) => put_u32(out, u32::from(*b)),
            NvValue::Byte(x) | NvValue::Uint8(x) => put_u32(out, u32::from(*x)),
            NvValue::Int8(x) => put_u32(out, i32::from(*x) as u32),
            NvValue::Int16(x) => put_u32(out, i32::from(*x) as u32),
            NvValue::Uint16(x) => put_u32(out, u32::from(*x)),
            NvValue::Int32(x) => put_u32(out, *x as u32),
            NvValue::Uint32(x) => put_u32(out, *x),
            NvValue::Int64(x) | NvValue::Hrtime(x) => out.extend_from_slice(&x.to_be_bytes()),
            NvValue::Uint64(x) => out.extend_from_slice(&x.to_be_bytes()),
            NvValue::String(s) => put_string(out, s),
            NvValue::ByteArray(b) => {
                out.extend_from_slice(b);
                out.resize(align4(out.len()), 0);
            }
            NvValue::StringArray(v) => v.iter().for_each(|s| put_string(out, s)),
            NvValue::NvList(l) => put_list(out, l),
            NvValue::NvListArray(ls) => ls.iter().for_each(|l| put_list(out, l)),
            _ => put_array(out, v, n),
        }
    }

    fn put_array(out: &mut Vec<u8>, v: &NvValue, n: u32) {
        put_u32(out, n);
        match v {
            NvValue::BooleanArray(a) => a.iter().for_each(|&b| put_u32(out, u32::from(b))),
            NvValue::Int8Array(a) => a.iter().for_each(|&x| put_u32(out, i32::from(x) as u32)),
            NvValue::Uint8Array(a) => a.iter().for_each(|&x| put_u32(out, u32::from(x))),
            NvValue::Int16Array(a) => a.iter().for_each(|&x| put_u32(out, i32::from(x) as u32)),
            NvValue::Uint16Array(a) => a.iter().for_each(|&x| put_u32(out, u32::from(x))),
            NvValue::Int32Array(a) => a.iter().for_each(|&x| put_u32(out, x as u32)),
            NvValue::Uint32Array(a) => a.iter().for_each(|&x| put_u32(out, x)),
            NvValue::Int64Array(a) => {
                a.iter().for_each(|x| out.extend_from_slice(&x.to_be_bytes()))
            }
            NvValue::Uint64Array(a) => {
                a.iter().for_each(|x| out.extend_from_slice(&x.to_be_bytes()))
            }
            _ => unreachable!("put_array called for a non-array {v:?}"),
        }
    }
}

mod native {
    //! NATIVE encoding (§1.6): the in-memory nvpair images in the sender's byte order;
    //! embedded lists follow their pair inline and end with a 4-byte zero.

    use super::{
        align8, c_string, dt, fixed_value_size, nvp_size_calc, validate_pair, xdr, ByteOrder, Cur,
        NvError, NvList, NvValue, NVLIST_IMAGE_BYTES, NVP_HEADER_BYTES, NVP_SIZE_MIN, NV_MAX_DEPTH,
        NV_UNIQUE_NAME, NV_VERSION,
    };

    pub(super) fn top(c: &mut Cur<'_>, order: ByteOrder) -> Result<NvList, NvError> {
        let _version = order.u32(c.take4()?);
        let _nvflag = order.u32(c.take4()?);
        pairs(c, order, 0)
    }

    fn pairs(c: &mut Cur<'_>, order: ByteOrder, depth: usize) -> Result<NvList, NvError> {
        if depth > NV_MAX_DEPTH {
            return Err(NvError::TooDeep);
        }
        let mut nvl = NvList::new();
        loop {
            let start = c.pos;
            let size = order.u32(c.take4()?) as i32;
            if size == 0 {
                return Ok(nvl);
            }
            c.pos = start;
            let nvp_size = usize::try_from(size).map_err(|_| c.err("negative pair size"))?;
            if nvp_size > c.remaining() || nvp_size < NVP_SIZE_MIN {
                return Err(c.err("implausible pair size"));
            }
            let image = c.take(nvp_size)?;
            let (name, value) = pair(c, image, order, depth)?;
            nvl.pairs.push((name, value));
        }
    }

    /// One pair from its image; embedded lists are read from `c`, right after the image.
    fn pair(
        c: &mut Cur<'_>,
        image: &[u8],
        order: ByteOrder,
        depth: usize,
    ) -> Result<(String, NvValue), NvError> {
        let name_sz = order.u16([image[4], image[5]]) as i16;
        let nelem = order.u32([image[8], image[9], image[10], image[11]]);
        let ty = order.u32([image[12], image[13], image[14], image[15]]) as i32;
        let name_sz = usize::try_from(name_sz).map_err(|_| c.err("bad name size"))?;
        if name_sz == 0 || image.len() < nvp_size_calc(name_sz, 0) {
            return Err(c.err("bad name size"));
        }
        let name_bytes = &image[NVP_HEADER_BYTES..NVP_HEADER_BYTES + name_sz];
        if name_bytes.iter().position(|&b| b == 0) != Some(name_sz - 1) {
            return Err(c.err("name not terminated"));
        }
        let Some(fixed) = fixed_value_size(ty, nelem) else {
            return Err(c.err("bad type or element count"));
        };
        if nvp_size_calc(name_sz, fixed) > image.len() {
            return Err(c.err("value larger than its pair"));
        }
        let val = &image[align8(NVP_HEADER_BYTES + name_sz)..];
        let value = if nelem == 0 {
            xdr::empty_value(ty).ok_or_else(|| c.err("bad type or element count"))?
        } else {
            value(c, val, ty, nelem, order, depth)?
        };
        validate_pair(c, image.len(), name_sz, &value)?;
        Ok((c_string(name_bytes), value))
    }

    fn value(
        c: &mut Cur<'_>,
        val: &[u8],
        ty: i32,
        nelem: u32,
        order: ByteOrder,
        depth: usize,
    ) -> Result<NvValue, NvError> {
        let u16_at = |i: usize| order.u16([val[i], val[i + 1]]);
        let u32_at = |i: usize| order.u32([val[i], val[i + 1], val[i + 2], val[i + 3]]);
        let u64_at = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&val[i..i + 8]);
            order.u64(b)
        };
        Ok(match ty {
            dt::BOOLEAN_VALUE => match u32_at(0) {
                0 => NvValue::BooleanValue(false),
                1 => NvValue::BooleanValue(true),
                _ => return Err(c.err("boolean not 0 or 1")),
            },
            dt::BYTE => NvValue::Byte(val[0]),
            dt::INT8 => NvValue::Int8(val[0] as i8),
            dt::UINT8 => NvValue::Uint8(val[0]),
            dt::INT16 => NvValue::Int16(u16_at(0) as i16),
            dt::UINT16 => NvValue::Uint16(u16_at(0)),
            dt::INT32 => NvValue::Int32(u32_at(0) as i32),
            dt::UINT32 => NvValue::Uint32(u32_at(0)),
            dt::INT64 => NvValue::Int64(u64_at(0) as i64),
            dt::UINT64 => NvValue::Uint64(u64_at(0)),
            dt::HRTIME => NvValue::Hrtime(u64_at(0) as i64),
            dt::STRING => NvValue::String(string_at(c, val)?),
            dt::NVLIST => NvValue::NvList(embedded(c, &val[..NVLIST_IMAGE_BYTES], order, depth)?),
            dt::NVLIST_ARRAY => {
                let n = nelem as usize;
                let mut v = Vec::new();
                for i in 0..n {
                    let off = n * 8 + i * NVLIST_IMAGE_BYTES;
                    v.push(embedded(c, &val[off..off + NVLIST_IMAGE_BYTES], order, depth)?);
                }
                NvValue::NvListArray(v)
            }
            dt::STRING_ARRAY => {
                NvValue::StringArray(strings(c, &val[nelem as usize * 8..], nelem)?)
            }
            _ => array(c, val, ty, nelem as usize, order)?,
        })
    }

    fn string_at(c: &Cur<'_>, bytes: &[u8]) -> Result<String, NvError> {
        if !bytes.contains(&0) {
            return Err(c.err("string not terminated"));
        }
        Ok(c_string(bytes))
    }

    fn strings(c: &Cur<'_>, mut bytes: &[u8], nelem: u32) -> Result<Vec<String>, NvError> {
        let mut v = Vec::new();
        for _ in 0..nelem {
            let Some(end) = bytes.iter().position(|&b| b == 0) else {
                return Err(c.err("string not terminated"));
            };
            v.push(c_string(&bytes[..end]));
            bytes = &bytes[end + 1..];
        }
        Ok(v)
    }

    /// An embedded list: its `nvlist_t` image (version must be 0), then its pairs inline.
    fn embedded(
        c: &mut Cur<'_>,
        image: &[u8],
        order: ByteOrder,
        depth: usize,
    ) -> Result<NvList, NvError> {
        if order.u32([image[0], image[1], image[2], image[3]]) != NV_VERSION as u32 {
            return Err(NvError::Unsupported { reason: "embedded nvlist version" });
        }
        pairs(c, order, depth + 1)
    }

    fn array(
        c: &Cur<'_>,
        val: &[u8],
        ty: i32,
        n: usize,
        order: ByteOrder,
    ) -> Result<NvValue, NvError> {
        let w2 = || val[..2 * n].chunks_exact(2).map(|w| order.u16([w[0], w[1]]));
        let w4 = || val[..4 * n].chunks_exact(4).map(|w| order.u32([w[0], w[1], w[2], w[3]]));
        let w8 = || {
            val[..8 * n]
                .chunks_exact(8)
                .map(|w| order.u64([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]))
        };
        Ok(match ty {
            dt::BYTE_ARRAY => NvValue::ByteArray(val[..n].to_vec()),
            dt::UINT8_ARRAY => NvValue::Uint8Array(val[..n].to_vec()),
            dt::INT8_ARRAY => NvValue::Int8Array(val[..n].iter().map(|&b| b as i8).collect()),
            dt::INT16_ARRAY => NvValue::Int16Array(w2().map(|x| x as i16).collect()),
            dt::UINT16_ARRAY => NvValue::Uint16Array(w2().collect()),
            dt::INT32_ARRAY => NvValue::Int32Array(w4().map(|x| x as i32).collect()),
            dt::UINT32_ARRAY => NvValue::Uint32Array(w4().collect()),
            dt::INT64_ARRAY => NvValue::Int64Array(w8().map(|x| x as i64).collect()),
            dt::UINT64_ARRAY => NvValue::Uint64Array(w8().collect()),
            dt::BOOLEAN_ARRAY => {
                if w4().any(|b| b > 1) {
                    return Err(c.err("boolean not 0 or 1"));
                }
                NvValue::BooleanArray(w4().map(|b| b == 1).collect())
            }
            _ => return Err(c.err("bad type")),
        })
    }

    pub(super) fn put_pairs(out: &mut Vec<u8>, nvl: &NvList, order: ByteOrder) {
        for (name, v) in &nvl.pairs {
            assert!(!name.contains('\0'), "nvpair name {name:?} contains NUL");
            let name_sz = name.len() + 1;
            let size = nvp_size_calc(name_sz, v.value_size());
            let start = out.len();
            out.extend_from_slice(&order.u32_bytes(u32::try_from(size).expect("pair < 2 GiB")));
            out.extend_from_slice(&order.u16_bytes(u16::try_from(name_sz).expect("name < 32K")));
            out.extend_from_slice(&[0, 0]);
            out.extend_from_slice(&order.u32_bytes(v.nelem()));
            out.extend_from_slice(&order.u32_bytes(v.data_type() as u32));
            out.extend_from_slice(name.as_bytes());
            out.resize(start + align8(NVP_HEADER_BYTES + name_sz), 0);
            put_value(out, v, order);
            out.resize(start + size, 0);
            match v {
                NvValue::NvList(l) => put_embedded(out, l, order),
                NvValue::NvListArray(ls) => ls.iter().for_each(|l| put_embedded(out, l, order)),
                _ => {}
            }
        }
        out.extend_from_slice(&[0; 4]);
    }

    fn put_embedded(out: &mut Vec<u8>, nvl: &NvList, order: ByteOrder) {
        put_pairs(out, nvl, order);
    }

    fn nvlist_image(out: &mut Vec<u8>, order: ByteOrder) {
        out.extend_from_slice(&order.u32_bytes(NV_VERSION as u32));
        out.extend_from_slice(&order.u32_bytes(NV_UNIQUE_NAME));
        out.extend_from_slice(&[0; NVLIST_IMAGE_BYTES - 8]);
    }

    fn put_value(out: &mut Vec<u8>, v: &NvValue, order: ByteOrder) {
        match v {
            NvValue::Boolean => {}
            NvValue::BooleanValue(b) => out.extend_from_slice(&order.u32_bytes(u32::from(*b))),
            NvValue::Byte(x) | NvValue::Uint8(x) => out.push(*x),
            NvValue::Int8(x) => out.push(*x as u8),
            NvValue::Int16(x) => out.extend_from_slice(&order.u16_bytes(*x as u16)),
            NvValue::Uint16(x) => out.extend_from_slice(&order.u16_bytes(*x)),
            NvValue::Int32(x) => out.extend_from_slice(&order.u32_bytes(*x as u32)),
            NvValue::Uint32(x) => out.extend_from_slice(&order.u32_bytes(*x)),
            NvValue::Int64(x) | NvValue::Hrtime(x) => {
                out.extend_from_slice(&order.u64_bytes(*x as u64));
            }
            NvValue::Uint64(x) => out.extend_from_slice(&order.u64_bytes(*x)),
            NvValue::String(s) => {
                out.extend_from_slice(s.as_bytes());
                out.push(0);
            }
            NvValue::NvList(_) => nvlist_image(out, order),
            NvValue::NvListArray(ls) => {
                out.resize(out.len() + 8 * ls.len(), 0);
                ls.iter().for_each(|_| nvlist_image(out, order));
            }
            NvValue::StringArray(ss) => {
                out.resize(out.len() + 8 * ss.len(), 0);
                for s in ss {
                    out.extend_from_slice(s.as_bytes());
                    out.push(0);
                }
            }
            _ => put_array(out, v, order),
        }
    }

    fn put_array(out: &mut Vec<u8>, v: &NvValue, order: ByteOrder) {
        match v {
            NvValue::ByteArray(a) | NvValue::Uint8Array(a) => out.extend_from_slice(a),
            NvValue::Int8Array(a) => out.extend(a.iter().map(|&x| x as u8)),
            NvValue::BooleanArray(a) => {
                a.iter().for_each(|&b| out.extend_from_slice(&order.u32_bytes(u32::from(b))));
            }
            NvValue::Int16Array(a) => {
                a.iter().for_each(|&x| out.extend_from_slice(&order.u16_bytes(x as u16)));
            }
            NvValue::Uint16Array(a) => {
                a.iter().for_each(|&x| out.extend_from_slice(&order.u16_bytes(x)));
            }
            NvValue::Int32Array(a) => {
                a.iter().for_each(|&x| out.extend_from_slice(&order.u32_bytes(x as u32)));
            }
            NvValue::Uint32Array(a) => {
                a.iter().for_each(|&x| out.extend_from_slice(&order.u32_bytes(x)));
            }
            NvValue::Int64Array(a) => {
                a.iter().for_each(|&x| out.extend_from_slice(&order.u64_bytes(x as u64)));
            }
            NvValue::Uint64Array(a) => {
                a.iter().for_each(|&x| out.extend_from_slice(&order.u64_bytes(x)));
            }
            _ => unreachable!("put_array called for a non-array {v:?}"),
        }
    }
}

/// The text of libnvpair's `nvlist_print` (§5.1): "nvlist version: 0", then one line per
/// pair indented by tabs; embedded lists between "(embedded nvlist)" and "(end name)".
#[must_use]
pub fn print(nvl: &NvList) -> String {
    let mut out = String::new();
    print_indent(&mut out, nvl, 0);
    out
}

fn tabs(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n('\t', n));
}

fn print_indent(out: &mut String, nvl: &NvList, indent: usize) {
    tabs(out, indent);
    out.push_str(&format!("nvlist version: {NV_VERSION}\n"));
    for (name, v) in &nvl.pairs {
        print_pair(out, name, v, indent);
    }
}

fn print_pair(out: &mut String, name: &str, v: &NvValue, indent: usize) {
    match v {
        NvValue::NvList(l) => {
            tabs(out, indent + 1);
            out.push_str(&format!("{name} = (embedded nvlist)\n"));
            print_indent(out, l, indent + 1);
            tabs(out, indent + 1);
            out.push_str(&format!("(end {name})\n"));
        }
        NvValue::NvListArray(ls) => {
            tabs(out, indent + 1);
            out.push_str(&format!("{name} = (array of embedded nvlists)\n"));
            for (i, l) in ls.iter().enumerate() {
                tabs(out, indent + 1);
                out.push_str(&format!("(start {name}[{i}])\n"));
                print_indent(out, l, indent + 1);
                tabs(out, indent + 1);
                out.push_str(&format!("(end {name}[{i}])\n"));
            }
        }
        _ => {
            let items = value_strings(v);
            // An empty array prints nothing before its newline, not even its name.
            if let Some((first, rest)) = items.split_first() {
                tabs(out, indent + 1);
                out.push_str(&format!("{name} = {first}"));
                rest.iter().for_each(|s| out.push_str(&format!(" {s}")));
            }
        }
    }
    out.push('\n');
}

/// The printed form of each element, with libnvpair's per-type formats.
fn value_strings(v: &NvValue) -> Vec<String> {
    fn each<T>(a: &[T], f: impl Fn(&T) -> String) -> Vec<String> {
        a.iter().map(f).collect()
    }
    match v {
        NvValue::Boolean => vec!["1".into()],
        NvValue::BooleanValue(b) => vec![u8::from(*b).to_string()],
        NvValue::Byte(x) => vec![format!("0x{x:02x}")],
        NvValue::Int8(x) => vec![x.to_string()],
        NvValue::Uint8(x) => vec![format!("0x{x:x}")],
        NvValue::Int16(x) => vec![x.to_string()],
        NvValue::Uint16(x) => vec![format!("0x{x:x}")],
        NvValue::Int32(x) => vec![x.to_string()],
        NvValue::Uint32(x) => vec![format!("0x{x:x}")],
        NvValue::Int64(x) => vec![x.to_string()],
        NvValue::Uint64(x) => vec![format!("0x{x:x}")],
        NvValue::Hrtime(x) => vec![format!("0x{:x}", *x as u64)],
        NvValue::String(s) => vec![s.clone()],
        NvValue::ByteArray(a) => each(a, |x| format!("0x{x:02x}")),
        NvValue::BooleanArray(a) => each(a, |b| u8::from(*b).to_string()),
        NvValue::Int8Array(a) => each(a, ToString::to_string),
        NvValue::Uint8Array(a) => each(a, |x| format!("0x{x:x}")),
        NvValue::Int16Array(a) => each(a, ToString::to_string),
        NvValue::Uint16Array(a) => each(a, |x| format!("0x{x:x}")),
        NvValue::Int32Array(a) => each(a, ToString::to_string),
        NvValue::Uint32Array(a) => each(a, |x| format!("0x{x:x}")),
        NvValue::Int64Array(a) => each(a, ToString::to_string),
        NvValue::Uint64Array(a) => each(a, |x| format!("0x{x:x}")),
        NvValue::StringArray(a) => a.clone(),
        NvValue::NvList(_) | NvValue::NvListArray(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> NvList {
        let mut snaps = NvList::new();
        snaps.add("a", NvValue::Uint64(0x1111_2222_3333_4444)).add("b", NvValue::Uint64(7));
        let mut fs = NvList::new();
        fs.add("name", NvValue::String("pool/fs".into()))
            .add("parentfromsnap", NvValue::Uint64(0))
            .add("snaps", NvValue::NvList(snaps))
            .add("is_encroot", NvValue::Boolean);
        let mut fss = NvList::new();
        fss.add("0x1234", NvValue::NvList(fs));
        let mut top = NvList::new();
        top.add("tosnap", NvValue::String("snap".into()))
            .add("not_recursive", NvValue::Boolean)
            .add("fss", NvValue::NvList(fss))
            .add("redact_snaps", NvValue::Uint64Array(vec![0x9649_50de_82b7_d299, 3]))
            .add("empty", NvValue::Uint64Array(Vec::new()))
            .add("flag", NvValue::BooleanValue(true))
            .add("b", NvValue::Byte(0xab))
            .add("i8", NvValue::Int8(-3))
            .add("u8", NvValue::Uint8(200))
            .add("i16", NvValue::Int16(-300))
            .add("u16", NvValue::Uint16(60000))
            .add("i32", NvValue::Int32(-70000))
            .add("u32", NvValue::Uint32(4_000_000_000))
            .add("i64", NvValue::Int64(-5))
            .add("hr", NvValue::Hrtime(12345))
            .add("bytes", NvValue::ByteArray(vec![1, 2, 3, 4, 5]))
            .add("bools", NvValue::BooleanArray(vec![true, false]))
            .add("i8s", NvValue::Int8Array(vec![-1, 2]))
            .add("u8s", NvValue::Uint8Array(vec![0xde, 0xad, 0xbe]))
            .add("i16s", NvValue::Int16Array(vec![-1, 2]))
            .add("u16s", NvValue::Uint16Array(vec![1, 0xffff]))
            .add("i32s", NvValue::Int32Array(vec![-1]))
            .add("u32s", NvValue::Uint32Array(vec![9, 10, 11]))
            .add("i64s", NvValue::Int64Array(vec![i64::MIN]))
            .add("strs", NvValue::StringArray(vec!["x".into(), String::new(), "yz".into()]))
            .add("lists", NvValue::NvListArray(vec![NvList::new(), sample_leaf()]));
        top
    }

    fn sample_leaf() -> NvList {
        let mut l = NvList::new();
        l.add("k", NvValue::String("v".into()));
        l
    }

    #[test]
    fn xdr_and_native_round_trip_in_both_orders() {
        let nvl = sample();
        assert_eq!(unpack(&pack_xdr(&nvl)).expect("xdr"), nvl);
        for order in [ByteOrder::Little, ByteOrder::Big] {
            let packed = pack_native(&nvl, order);
            assert_eq!(packed.len() % 4, 0);
            assert_eq!(unpack(&packed).expect("native"), nvl, "{order:?}");
        }
    }

    #[test]
    fn xdr_layout_matches_libnvpair() {
        let mut nvl = NvList::new();
        nvl.add("tosnap", NvValue::String("b".into())).add("raw", NvValue::Boolean);
        let p = pack_xdr(&nvl);
        #[rustfmt::skip]
        let want: Vec<u8> = vec![
            1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
            // tosnap: encode 36, decode align8(16+7)+align8(2) = 32
            0, 0, 0, 36, 0, 0, 0, 32, 0, 0, 0, 6, b't', b'o', b's', b'n', b'a', b'p', 0, 0,
            0, 0, 0, 9, 0, 0, 0, 1, 0, 0, 0, 1, b'b', 0, 0, 0,
            // raw: BOOLEAN, nelem 0, no value; decode align8(16+4) = 24
            0, 0, 0, 24, 0, 0, 0, 24, 0, 0, 0, 3, b'r', b'a', b'w', 0,
            0, 0, 0, 1, 0, 0, 0, 0,
            0, 0, 0, 0, 0, 0, 0, 0,
        ];
        assert_eq!(p, want);
    }

    #[test]
    fn native_layout_puts_embedded_pairs_inline() {
        let mut inner = NvList::new();
        inner.add("x", NvValue::Uint64(5));
        let mut nvl = NvList::new();
        nvl.add("e", NvValue::NvList(inner));
        let p = pack_native(&nvl, ByteOrder::Little);
        // header 4 + version/flag 8 + pair "e" (align8(18) + 24 = 48) + inner pair
        // (align8(18) + 8 = 32) + inner end 4 + outer end 4
        assert_eq!(p.len(), 4 + 8 + 48 + 32 + 4 + 4);
        assert_eq!(&p[12..16], &48u32.to_le_bytes());
        assert_eq!(&p[60..64], &32u32.to_le_bytes());
    }

    #[test]
    fn print_matches_nvlist_print() {
        let mut snaps = NvList::new();
        snaps.add("a", NvValue::Uint64(0x10));
        let mut top = NvList::new();
        top.add("redact_snaps", NvValue::Uint64Array(vec![0x9649_50de_82b7_d299]))
            .add("tosnap", NvValue::String("b".into()))
            .add("not_recursive", NvValue::Boolean)
            .add("snaps", NvValue::NvList(snaps))
            .add("i", NvValue::Int32(-2))
            .add("u", NvValue::Uint32(10))
            .add("u8s", NvValue::Uint8Array(vec![1, 0xff]))
            .add("none", NvValue::Uint64Array(Vec::new()));
        let want = "nvlist version: 0\n\
                    \tredact_snaps = 0x964950de82b7d299\n\
                    \ttosnap = b\n\
                    \tnot_recursive = 1\n\
                    \tsnaps = (embedded nvlist)\n\
                    \tnvlist version: 0\n\
                    \t\ta = 0x10\n\
                    \t(end snaps)\n\
                    \n\
                    \ti = -2\n\
                    \tu = 0xa\n\
                    \tu8s = 0x1 0xff\n\
                    \n";
        assert_eq!(print(&top), want);
    }

    #[test]
    fn unpack_rejects_garbage_without_panicking() {
        assert_eq!(unpack(&[1, 1]), Err(NvError::Short { len: 2 }));
        assert!(matches!(unpack(&[7, 1, 0, 0, 0, 0, 0, 0]), Err(NvError::Unsupported { .. })));
        let good_x = pack_xdr(&sample());
        let good_n = pack_native(&sample(), ByteOrder::Big);
        let mut x = 0x2545_f491u64;
        for round in 0..4000usize {
            for good in [&good_x, &good_n] {
                let mut b = good.clone();
                for _ in 0..1 + round % 4 {
                    x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1442695040888963407);
                    let i = (x >> 33) as usize % b.len();
                    b[i] = (x >> 20) as u8;
                }
                let cut = (x >> 40) as usize % (b.len() + 1);
                let r = unpack(if round.is_multiple_of(2) { &b } else { &b[..cut] });
                if let Err(e) = r {
                    assert!(matches!(e.errno(), 14 | 22 | 95));
                }
            }
        }
    }

    #[test]
    fn deep_nesting_is_bounded() {
        let mut l = NvList::new();
        for _ in 0..NV_MAX_DEPTH + 3 {
            let mut outer = NvList::new();
            outer.add("n", NvValue::NvList(l));
            l = outer;
        }
        assert_eq!(unpack(&pack_xdr(&l)), Err(NvError::TooDeep));
        assert_eq!(unpack(&pack_native(&l, ByteOrder::Little)), Err(NvError::TooDeep));
    }
}
