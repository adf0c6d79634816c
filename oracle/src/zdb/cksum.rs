//! Checksums and decompression for the integrity walk, independent of the engine's:
//! Fletcher-4 written here from its ZFS definition (module/zcommon/zfs_fletcher.c: four
//! running 64-bit sums over little-endian 32-bit words, trailing 1-3 bytes ignored),
//! SHA-256 from `sha2` (zio_cksum_t words are big-endian digest bytes), LZ4 from `lz4_flex`
//! in ZFS's framing (u32 big-endian length, then the block, then zero padding).
//! Also the two sealed formats of the engine: 1 KiB headers with an embedded Fletcher-4 of
//! their first 992 bytes plus their device offset, and the intent-log record-area digest.

use sha2::{Digest, Sha256};

use super::phys::{le64, Bad, Bp, CKSUM_FLETCHER4, CKSUM_OFF, CKSUM_SHA256, COMPRESS_LZ4, ECK_AT};

/// Bytes of ZFS's LZ4 length prefix.
const LZ4_HEADER_BYTES: usize = 4;

/// Fletcher-4 of `data` ("native" order: little-endian words), as `[a, b, c, d]`.
#[must_use]
pub fn fletcher4(data: &[u8]) -> [u64; 4] {
    let (mut a, mut b, mut c, mut d) = (0u64, 0u64, 0u64, 0u64);
    for w in data.chunks_exact(4) {
        a = a.wrapping_add(u64::from(u32::from_le_bytes([w[0], w[1], w[2], w[3]])));
        b = b.wrapping_add(a);
        c = c.wrapping_add(b);
        d = d.wrapping_add(c);
    }
    [a, b, c, d]
}

/// SHA-256 of `data` as four u64 words, each the big-endian value of 8 digest bytes.
#[must_use]
pub fn sha256(data: &[u8]) -> [u64; 4] {
    let digest = Sha256::digest(data);
    let mut out = [0u64; 4];
    for (i, w) in out.iter_mut().enumerate() {
        let mut b = [0u8; 8];
        b.copy_from_slice(&digest[8 * i..8 * i + 8]);
        *w = u64::from_be_bytes(b);
    }
    out
}

/// The checksum `kind` (an enum value from a block pointer) of `data`.
///
/// # Errors
/// An unknown checksum type.
pub fn compute(kind: u8, data: &[u8]) -> Result<[u64; 4], Bad> {
    match kind {
        CKSUM_OFF => Ok([0; 4]),
        CKSUM_FLETCHER4 => Ok(fletcher4(data)),
        CKSUM_SHA256 => Ok(sha256(data)),
        _ => Err("unknown checksum type"),
    }
}

/// True if the stored bytes of `bp` (its first `psize` bytes) match its checksum.
#[must_use]
pub fn verifies(bp: &Bp, stored: &[u8]) -> bool {
    compute(bp.checksum, stored).is_ok_and(|c| c == bp.cksum)
}

/// The logical contents of `bp` from its verified stored bytes (or its embedded payload).
///
/// # Errors
/// Malformed LZ4 framing or data, or a result that is not exactly `lsize` bytes.
pub fn decompress(bp: &Bp, stored: &[u8]) -> Result<Vec<u8>, Bad> {
    let lsize = bp.lsize as usize;
    if bp.compress != COMPRESS_LZ4 {
        let mut v = stored.to_vec();
        v.resize(lsize, 0);
        return Ok(v);
    }
    let Some((head, body)) = stored.split_first_chunk::<LZ4_HEADER_BYTES>() else {
        return Err("lz4 block without its length header");
    };
    let len = usize::try_from(u32::from_be_bytes(*head)).map_err(|_| "lz4 length")?;
    if len > body.len() {
        return Err("lz4 length header beyond the block");
    }
    let mut out = vec![0u8; lsize];
    match lz4_flex::block::decompress_into(&body[..len], &mut out) {
        Ok(n) if n == lsize => Ok(out),
        Ok(_) => Err("lz4 block decoded to the wrong size"),
        Err(_) => Err("corrupt lz4 block"),
    }
}

/// Fletcher-4 of a 1 KiB sealed block's first 992 bytes followed by its device offset.
#[must_use]
pub fn seal_of(block: &[u8], offset: u64) -> [u64; 4] {
    assert!(block.len() >= ECK_AT, "sealed block of {} bytes", block.len());
    assert!(ECK_AT.is_multiple_of(4), "the offset must start on a word boundary");
    let mut buf = Vec::with_capacity(ECK_AT + 8);
    buf.extend_from_slice(&block[..ECK_AT]);
    buf.extend_from_slice(&offset.to_le_bytes());
    fletcher4(&buf)
}

/// True if a sealed 1 KiB block read at `offset` carries its own checksum.
#[must_use]
pub fn seal_ok(block: &[u8], offset: u64) -> bool {
    if block.len() != ECK_AT + 32 {
        return false;
    }
    let want = seal_of(block, offset);
    (0..4).all(|i| le64(block, ECK_AT + 8 * i) == want[i])
}

/// The digest of an intent-log block's record area kept in its header (zil.rs block_cksum).
#[must_use]
pub fn zil_area_digest(area: &[u8]) -> u64 {
    let c = fletcher4(area);
    c[0] ^ c[1].rotate_left(17) ^ c[2].rotate_left(31) ^ c[3].rotate_left(47)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fletcher4_matches_the_definition_on_small_inputs() {
        assert_eq!(fletcher4(&[]), [0; 4]);
        // Words 1 and 2: a = 1, 3; b = 1, 4; c = 1, 5; d = 1, 6. Trailing bytes ignored.
        let data = [1, 0, 0, 0, 2, 0, 0, 0, 0xff];
        assert_eq!(fletcher4(&data), [3, 4, 5, 6]);
    }

    #[test]
    fn fletcher4_agrees_with_the_engine() {
        // A cross-check only: the oracle never calls the engine's checksum in `check`.
        let data: Vec<u8> =
            (0..70_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        for len in [0, 3, 4, 511, 512, 4096, 65_537, 70_000] {
            let ours = fletcher4(&data[..len]);
            assert_eq!(ours, engine::zio::checksum::fletcher4(&data[..len]), "len {len}");
            assert_eq!(sha256(&data[..len]), engine::zio::checksum::sha256(&data[..len]));
        }
    }

    #[test]
    fn decompress_rejects_garbage() {
        let bp = Bp {
            dva: [engine::zio::blkptr::Dva::default(); 2],
            lsize: 512,
            psize: 512,
            ot: 19,
            level: 0,
            checksum: CKSUM_FLETCHER4,
            compress: COMPRESS_LZ4,
            embedded: false,
            birth: 1,
            cksum: [0; 4],
            payload: [0; 112],
        };
        assert!(decompress(&bp, &[0, 0]).is_err());
        assert!(decompress(&bp, &[0, 0, 9, 0, 1]).is_err());
        assert!(decompress(&bp, &[0, 0, 0, 2, 0xff, 0xff, 0, 0]).is_err());
    }
}
