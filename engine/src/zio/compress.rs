//! Block compression in ZFS's on-disk LZ4 format. OpenZFS: module/zfs/lz4_zfs.c, zio_compress.c.
//! Used by zio (compressed blocks), dmu::send/recv (compressed WRITE, WRITE_EMBEDDED payloads).
//! Format: `[u32 big-endian length of the LZ4 block][raw LZ4 block]`, then zero padding up to
//! the physical size. Invariants: decompression never panics and never allocates more than
//! LZ4_LSIZE_MAX bytes, whatever the input; a decoded buffer is exactly `lsize` bytes.

use lz4_flex::block::{compress_into, decompress_into, get_maximum_output_size};

/// Bytes of the big-endian length prefix ZFS puts before the LZ4 block.
pub const LZ4_HEADER_BYTES: usize = 4;
/// Largest logical size we decompress to (SPA_MAXBLOCKSIZE of OpenZFS, 16 MiB).
pub const LZ4_LSIZE_MAX: usize = 16 << 20;

/// Compression algorithms the engine supports, with their ZFS `zio_compress` enum values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Compress {
    /// ZIO_COMPRESS_OFF: stored as is.
    Off = 2,
    /// ZIO_COMPRESS_LZ4.
    Lz4 = 15,
}

impl Compress {
    /// Decodes a ZFS compression enum value; `None` for values this engine does not support.
    #[must_use]
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            2 => Some(Compress::Off),
            15 => Some(Compress::Lz4),
            _ => None,
        }
    }
}

/// Why a ZFS LZ4 buffer could not be decompressed. All of these mean corrupt input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompressError {
    /// The buffer is shorter than the 4-byte length prefix.
    #[error("lz4 buffer of {len} bytes has no length header")]
    NoHeader {
        /// Bytes available.
        len: usize,
    },
    /// The length prefix claims more bytes than the buffer holds.
    #[error("lz4 header claims {claimed} bytes but only {available} follow")]
    BadLength {
        /// Length from the header.
        claimed: u64,
        /// Bytes after the header.
        available: usize,
    },
    /// The requested logical size exceeds LZ4_LSIZE_MAX.
    #[error("logical size {lsize} exceeds the limit {max}", max = LZ4_LSIZE_MAX)]
    TooLarge {
        /// Requested logical size.
        lsize: usize,
    },
    /// The LZ4 block itself is malformed or decodes to more than `lsize` bytes.
    #[error("corrupt lz4 block: {reason}")]
    Corrupt {
        /// The decoder's description.
        reason: String,
    },
    /// The block decoded to fewer bytes than the logical size.
    #[error("lz4 block decoded to {got} bytes, expected {expected}")]
    WrongSize {
        /// Logical size asked for.
        expected: usize,
        /// Bytes produced.
        got: usize,
    },
}

/// Compresses `src` in ZFS LZ4 format into at most `max_len` bytes (header included).
/// Returns `None` if the result does not fit (ZFS then stores the block uncompressed).
/// The returned buffer has exactly `4 + block length` bytes; callers pad it with zeros.
#[must_use]
pub fn lz4_compress(src: &[u8], max_len: usize) -> Option<Vec<u8>> {
    if max_len <= LZ4_HEADER_BYTES {
        return None;
    }
    let room = max_len - LZ4_HEADER_BYTES;
    // lz4_flex wants room for the worst case even when the result will be small.
    let mut out = vec![0u8; LZ4_HEADER_BYTES + get_maximum_output_size(src.len())];
    let n = compress_into(src, &mut out[LZ4_HEADER_BYTES..]).ok()?;
    if n > room {
        return None;
    }
    let n32 = u32::try_from(n).ok()?;
    out[..LZ4_HEADER_BYTES].copy_from_slice(&n32.to_be_bytes());
    out.truncate(LZ4_HEADER_BYTES + n);
    assert!(out.len() <= max_len, "{} > {max_len}", out.len());
    Some(out)
}

/// Decompresses a ZFS LZ4 buffer (header + block; trailing padding allowed) into exactly
/// `lsize` bytes. Never panics on garbage.
pub fn lz4_decompress(src: &[u8], lsize: usize) -> Result<Vec<u8>, CompressError> {
    if lsize > LZ4_LSIZE_MAX {
        return Err(CompressError::TooLarge { lsize });
    }
    let Some((head, body)) = src.split_first_chunk::<LZ4_HEADER_BYTES>() else {
        return Err(CompressError::NoHeader { len: src.len() });
    };
    let claimed = u32::from_be_bytes(*head);
    let block_len = usize::try_from(claimed).unwrap_or(usize::MAX);
    if block_len > body.len() {
        return Err(CompressError::BadLength {
            claimed: u64::from(claimed),
            available: body.len(),
        });
    }
    let mut out = vec![0u8; lsize];
    let got = decompress_into(&body[..block_len], &mut out)
        .map_err(|e| CompressError::Corrupt { reason: e.to_string() })?;
    if got != lsize {
        return Err(CompressError::WrongSize { expected: lsize, got });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(len: usize) -> Vec<u8> {
        (0..len).map(|i| b"zfs send stream "[i % 16] ^ ((i / 1000) as u8)).collect()
    }

    #[test]
    fn lz4_round_trip_and_header_is_big_endian() {
        for len in [0usize, 1, 15, 512, 4096, 131_072] {
            let src = sample(len);
            let packed = lz4_compress(&src, len + 64).expect("compressible data fits");
            let claimed = u32::from_be_bytes([packed[0], packed[1], packed[2], packed[3]]);
            assert_eq!(claimed as usize, packed.len() - LZ4_HEADER_BYTES);
            // Trailing zero padding, as on disk, is allowed.
            let mut padded = packed.clone();
            padded.resize(packed.len() + 13, 0);
            assert_eq!(lz4_decompress(&padded, len).expect("valid"), src);
        }
    }

    #[test]
    fn lz4_compress_returns_none_when_it_does_not_fit() {
        let mut x = 0x1234_5678u32;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        assert_eq!(lz4_compress(&noise, 4096 - 512), None);
        assert_eq!(lz4_compress(&noise, 3), None);
        assert!(lz4_compress(&sample(4096), 4096 / 8).is_some());
    }

    #[test]
    fn lz4_decompress_rejects_garbage_without_panicking() {
        assert!(matches!(lz4_decompress(&[1, 2], 10), Err(CompressError::NoHeader { len: 2 })));
        assert!(matches!(
            lz4_decompress(&[0, 0, 1, 0, 9], 10),
            Err(CompressError::BadLength { claimed: 256, available: 1 })
        ));
        assert!(matches!(lz4_decompress(&[0; 8], 1 << 30), Err(CompressError::TooLarge { .. })));
        let good = lz4_compress(&sample(512), 600).expect("fits");
        assert!(matches!(lz4_decompress(&good, 511), Err(CompressError::Corrupt { .. })));
        assert!(matches!(lz4_decompress(&good, 513), Err(CompressError::WrongSize { .. })));
        let mut x = 7u64;
        for round in 0..2000 {
            let len = round % 300;
            let junk: Vec<u8> = (0..len)
                .map(|_| {
                    x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                    (x >> 33) as u8
                })
                .collect();
            let _ = lz4_decompress(&junk, round % 1024);
            let mut hdr = (len.saturating_sub(4) as u32).to_be_bytes().to_vec();
            hdr.extend_from_slice(&junk);
            let _ = lz4_decompress(&hdr, 512);
        }
    }

    #[test]
    fn compress_from_u8_uses_zfs_values() {
        assert_eq!(Compress::from_u8(15), Some(Compress::Lz4));
        assert_eq!(Compress::from_u8(2), Some(Compress::Off));
        assert_eq!(Compress::from_u8(0), None);
        assert_eq!(Compress::Lz4 as u8, 15);
    }
}
