//! Block and stream checksums: Fletcher-4 exactly as ZFS computes it, and SHA-256.
//! OpenZFS: module/zcommon/zfs_fletcher.c, module/zfs/sha256.c, zio_checksum.c.
//! Used by zio (verify every block read), dmu::send/recv and stream (running stream checksum).
//! Invariants: Fletcher-4 reads 32-bit words and ignores 1-3 trailing bytes (spec §2.1);
//! `update(A); update(B)` equals `update(A ++ B)` whenever A is a multiple of 4 bytes; the
//! multi-lane kernel is bit-identical to the scalar loop (checked by property tests).

use sha2::{Digest, Sha256};

/// A 256-bit block checksum (`zio_cksum_t`): four 64-bit words.
pub type ZioCksum = [u64; 4];

/// Bytes consumed per step of the lane kernel: one 32-bit word per lane.
const LANE_CHUNK_BYTES: usize = 16;
/// Number of interleaved lanes of the fast kernel (lane i takes words 4t + i).
const LANES: usize = 4;
/// 16-bit halves per chunk: the kernel sums each half of each word in its own u32 lane.
const HALVES: usize = 2 * LANES;
/// Steps per block of the u32 kernel. The largest per-half sum after n steps is
/// d = 0xffff * C(n+3, 4), which must stay below 2^32; n = 33 is the last that fits.
const BLOCK_STEPS: usize = 32;
/// Below this many bytes the scalar loop is as fast as the lanes plus their combine step.
const LANE_MIN_BYTES: usize = 512;

const _: () = assert!(LANE_CHUNK_BYTES == LANES * 4);
const _: () = assert!(LANE_MIN_BYTES.is_multiple_of(LANE_CHUNK_BYTES));
const _: () = assert!(pent_u64(BLOCK_STEPS as u64) * 0xffff < (1u64 << 32));

/// C(n+3, 4): the weight of the first word in `d` after n steps.
const fn pent_u64(n: u64) -> u64 {
    n * (n + 1) * (n + 2) * (n + 3) / 24
}

/// Running Fletcher-4 state (`a, b, c, d`), all arithmetic modulo 2^64 (spec §2.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fletcher4 {
    /// Sum of all words.
    pub a: u64,
    /// Sum of the successive values of `a`.
    pub b: u64,
    /// Sum of the successive values of `b`.
    pub c: u64,
    /// Sum of the successive values of `c`.
    pub d: u64,
}

/// Word order of a Fletcher-4 pass: "native" reads little-endian words, "byteswap" big-endian.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WordOrder {
    Little,
    Big,
}

impl WordOrder {
    #[inline(always)]
    fn word(self, b: [u8; 4]) -> u64 {
        match self {
            WordOrder::Little => u64::from(u32::from_le_bytes(b)),
            WordOrder::Big => u64::from(u32::from_be_bytes(b)),
        }
    }
}

impl Fletcher4 {
    /// The zero state every checksum starts from.
    #[must_use]
    pub const fn new() -> Self {
        Fletcher4 { a: 0, b: 0, c: 0, d: 0 }
    }

    /// Folds `data` in as little-endian 32-bit words ("native" on x86, spec §2.1).
    /// Trailing 1-3 bytes are ignored, as ZFS does.
    pub fn update(&mut self, data: &[u8]) {
        self.update_order(data, WordOrder::Little);
    }

    /// Folds `data` in as big-endian 32-bit words ("byteswap" mode, for big-endian streams).
    pub fn update_byteswap(&mut self, data: &[u8]) {
        self.update_order(data, WordOrder::Big);
    }

    /// The checksum so far, as `[a, b, c, d]`.
    #[must_use]
    pub fn finish(&self) -> ZioCksum {
        [self.a, self.b, self.c, self.d]
    }

    fn update_order(&mut self, data: &[u8], order: WordOrder) {
        let words_len = data.len() - data.len() % 4;
        let (lane_part, tail) = if words_len >= LANE_MIN_BYTES {
            let lane_len = words_len - words_len % LANE_CHUNK_BYTES;
            data[..words_len].split_at(lane_len)
        } else {
            data[..words_len].split_at(0)
        };
        debug_assert_eq!(lane_part.len() % LANE_CHUNK_BYTES, 0);
        if !lane_part.is_empty() {
            let block = match order {
                WordOrder::Little => lanes_little(lane_part),
                WordOrder::Big => lanes_big(lane_part),
            };
            self.fold_block(&block, (lane_part.len() / 4) as u64);
        }
        assert_eq!(tail.len() % 4, 0, "tail must be whole words");
        self.update_scalar(tail, order);
    }

    /// The reference loop: one word at a time (spec §2.1).
    fn update_scalar(&mut self, data: &[u8], order: WordOrder) {
        let (words, _trailing) = data.as_chunks::<4>();
        let (mut a, mut b, mut c, mut d) = (self.a, self.b, self.c, self.d);
        for w in words {
            a = a.wrapping_add(order.word(*w));
            b = b.wrapping_add(a);
            c = c.wrapping_add(b);
            d = d.wrapping_add(c);
        }
        *self = Fletcher4 { a, b, c, d };
    }

    /// Folds the checksum `block` of `n` words (computed from the zero state) into `self`,
    /// as if those words had been fed to the scalar loop after the current state.
    fn fold_block(&mut self, block: &Fletcher4, n: u64) {
        self.fold_weighted(block, &FoldWeights::new(n));
    }

    /// `fold_block` with the weights of n precomputed.
    fn fold_weighted(&mut self, block: &Fletcher4, w: &FoldWeights) {
        let (a0, b0, c0, d0) = (self.a, self.b, self.c, self.d);
        self.a = a0.wrapping_add(block.a);
        self.b = b0.wrapping_add(w.n.wrapping_mul(a0)).wrapping_add(block.b);
        self.c = c0
            .wrapping_add(w.n.wrapping_mul(b0))
            .wrapping_add(w.tri.wrapping_mul(a0))
            .wrapping_add(block.c);
        self.d = d0
            .wrapping_add(w.n.wrapping_mul(c0))
            .wrapping_add(w.tri.wrapping_mul(b0))
            .wrapping_add(w.tet.wrapping_mul(a0))
            .wrapping_add(block.d);
    }
}

/// The weights n, T(n), Tet(n) (mod 2^64) of a block of n words folded into a prior state:
/// a = a0 + A; b = b0 + n·a0 + B; c = c0 + n·b0 + T(n)·a0 + C;
/// d = d0 + n·c0 + T(n)·b0 + Tet(n)·a0 + D.
struct FoldWeights {
    n: u64,
    tri: u64,
    tet: u64,
}

impl FoldWeights {
    fn new(n: u64) -> Self {
        FoldWeights { n, tri: tri(n), tet: tetra(n) }
    }
}

/// Below this n, n(n+1)(n+2) fits in u64 and the weights need no 128-bit division.
const FAST_WEIGHTS_MAX_N: u64 = 1 << 21;

/// T(n) = n(n+1)/2 modulo 2^64 (divide before wrapping).
fn tri(n: u64) -> u64 {
    if n < FAST_WEIGHTS_MAX_N {
        return n * (n + 1) / 2;
    }
    let v = u128::from(n) * (u128::from(n) + 1) / 2;
    v as u64
}

/// Tet(n) = n(n+1)(n+2)/6 modulo 2^64: the exact divisions by 3 and 2 happen on the
/// factors before the (wrapping) products.
fn tetra(n: u64) -> u64 {
    if n < FAST_WEIGHTS_MAX_N {
        return n * (n + 1) * (n + 2) / 6;
    }
    let mut f = [u128::from(n), u128::from(n) + 1, u128::from(n) + 2];
    let i3 = f.iter().position(|x| x % 3 == 0).expect("invariant: one of 3 consecutive");
    f[i3] /= 3;
    let i2 = f.iter().position(|x| x % 2 == 0).expect("invariant: one of 3 consecutive");
    f[i2] /= 2;
    f[0].wrapping_mul(f[1]).wrapping_mul(f[2]) as u64
}

/// Per-lane accumulators of the lane kernel, indexed by lane.
struct Lanes {
    a: [u64; LANES],
    b: [u64; LANES],
    c: [u64; LANES],
    d: [u64; LANES],
}

/// Sums of one block of at most BLOCK_STEPS chunks, per 16-bit half: `[a, b, c, d][half]`.
/// Half 2i and 2i+1 are the two halves of lane i's word, in memory order. Every sum is exact
/// (no u32 wrap) by the BLOCK_STEPS bound. Written as plain u32 arrays so that LLVM's SLP
/// vectorizer turns each step into 8 SIMD adds on baseline x86-64 (SSE2); kept out of line
/// because inlining it into the caller defeats that vectorization.
#[inline(never)]
fn block_sums<const BIG: bool>(block: &[[u8; LANE_CHUNK_BYTES]]) -> [[u32; HALVES]; 4] {
    assert!(block.len() <= BLOCK_STEPS, "block of {} steps", block.len());
    let (mut a, mut b) = ([0u32; HALVES], [0u32; HALVES]);
    let (mut c, mut d) = ([0u32; HALVES], [0u32; HALVES]);
    for ch in block {
        let (hs, _) = ch.as_chunks::<2>();
        let h: [u32; HALVES] = std::array::from_fn(|i| {
            u32::from(if BIG { u16::from_be_bytes(hs[i]) } else { u16::from_le_bytes(hs[i]) })
        });
        for i in 0..HALVES {
            a[i] = a[i].wrapping_add(h[i]);
        }
        for i in 0..HALVES {
            b[i] = b[i].wrapping_add(a[i]);
        }
        for i in 0..HALVES {
            c[i] = c[i].wrapping_add(b[i]);
        }
        for i in 0..HALVES {
            d[i] = d[i].wrapping_add(c[i]);
        }
    }
    [a, b, c, d]
}

/// The lane kernel: lane i checksums words 4t + i, from the zero state, in u64.
/// Each block's exact u32 half sums are joined (hi·2^16 + lo) and folded into the lane.
fn lanes_run<const BIG: bool>(data: &[u8]) -> Lanes {
    let (chunks, rest) = data.as_chunks::<LANE_CHUNK_BYTES>();
    assert!(rest.is_empty(), "lane input must be whole chunks");
    let full = FoldWeights::new(BLOCK_STEPS as u64);
    let mut lanes = [Fletcher4::new(); LANES];
    for block in chunks.chunks(BLOCK_STEPS) {
        let s = block_sums::<BIG>(block);
        let partial;
        let w = if block.len() == BLOCK_STEPS {
            &full
        } else {
            partial = FoldWeights::new(block.len() as u64);
            &partial
        };
        for (i, lane) in lanes.iter_mut().enumerate() {
            // Big-endian words have their high half first in memory.
            let (hi, lo) = if BIG { (2 * i, 2 * i + 1) } else { (2 * i + 1, 2 * i) };
            let join = |k: usize| u64::from(s[k][lo]) + (u64::from(s[k][hi]) << 16);
            let sums = Fletcher4 { a: join(0), b: join(1), c: join(2), d: join(3) };
            lane.fold_weighted(&sums, w);
        }
    }
    Lanes {
        a: lanes.map(|l| l.a),
        b: lanes.map(|l| l.b),
        c: lanes.map(|l| l.c),
        d: lanes.map(|l| l.d),
    }
}

/// Weights that turn lane sums into the sums of the whole interleaved sequence.
/// With L lanes and k chunks left, a word of lane i sits x = L·k − i words from the end, and
/// x, T(x), Tet(x) expand exactly in the lane weights k, T(k), Tet(k), 1 (T(n) = n(n+1)/2,
/// Tet(n) = n(n+1)(n+2)/6). For L = 4 this is A = Σ A_i; B = Σ (4B_i − iA_i);
/// C = Σ (16C_i − (6+4i)B_i + ((i²−i)/2)A_i);
/// D = Σ (64D_i − (48+16i)C_i + (2i²+4i+4)B_i − (i(i−1)(i−2)/6)A_i).
/// Row r gives the coefficients of (A_i, B_i, C_i, D_i) in output word r.
const fn lane_weights(i: i128) -> [[i128; 4]; 4] {
    let l = LANES as i128;
    [
        [1, 0, 0, 0],
        [-i, l, 0, 0],
        [(i * i - i) / 2, -l * (l + 2 * i - 1) / 2, l * l, 0],
        [
            -(i * (i - 1) * (i - 2)) / 6,
            (3 * l * i * i + 3 * l * l * i - 6 * l * i + l * l * l - 3 * l * l + 2 * l) / 6,
            -l * l * (l + i - 1),
            l * l * l,
        ],
    ]
}

/// `lane_weights` of every lane, computed at compile time.
const LANE_WEIGHTS: [[[i128; 4]; 4]; LANES] =
    [lane_weights(0), lane_weights(1), lane_weights(2), lane_weights(3)];
// The L = 4 instance of the derivation: k_3 = -1, C's B-coefficient -(6+4i), D's C-coefficient
// -(48+16i), D's B-coefficient 2i²+4i+4.
const _: () = assert!(LANE_WEIGHTS[3][3][0] == -1 && LANE_WEIGHTS[2][3][0] == 0);
const _: () = assert!(LANE_WEIGHTS[2][2][1] == -(6 + 4 * 2));
const _: () = assert!(LANE_WEIGHTS[1][3][2] == -(48 + 16));
const _: () = assert!(LANE_WEIGHTS[3][3][1] == 2 * 9 + 4 * 3 + 4);

/// Combines lane sums into the checksum of the whole interleaved sequence (from zero state).
fn lanes_combine(l: &Lanes) -> Fletcher4 {
    let mut out = [0u64; 4];
    for (i, w) in LANE_WEIGHTS.iter().enumerate() {
        let sums = [l.a[i], l.b[i], l.c[i], l.d[i]];
        for (r, row) in w.iter().enumerate() {
            for (s, coef) in sums.iter().zip(row) {
                // Coefficients are small; wrapping multiply by the two's complement is exact
                // modulo 2^64.
                out[r] = out[r].wrapping_add(s.wrapping_mul(*coef as u64));
            }
        }
    }
    Fletcher4 { a: out[0], b: out[1], c: out[2], d: out[3] }
}

fn lanes_little(data: &[u8]) -> Fletcher4 {
    lanes_combine(&lanes_run::<false>(data))
}

fn lanes_big(data: &[u8]) -> Fletcher4 {
    lanes_combine(&lanes_run::<true>(data))
}

/// One-shot Fletcher-4 of `data` in native (little-endian word) order.
#[must_use]
pub fn fletcher4(data: &[u8]) -> ZioCksum {
    let mut f = Fletcher4::new();
    f.update(data);
    f.finish()
}

/// SHA-256 of `data` as a `zio_cksum_t`: word i is the big-endian u64 of digest bytes
/// [8i, 8i+8), the ZFS convention.
#[must_use]
pub fn sha256(data: &[u8]) -> ZioCksum {
    let digest = Sha256::digest(data);
    let mut out = [0u64; 4];
    for (i, w) in out.iter_mut().enumerate() {
        let mut b = [0u8; 8];
        b.copy_from_slice(&digest[8 * i..8 * i + 8]);
        *w = u64::from_be_bytes(b);
    }
    out
}

/// Checksum algorithms the engine supports, with their ZFS `zio_checksum` enum values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum ChecksumType {
    /// ZIO_CHECKSUM_OFF: no checksum (the value is all zero).
    Off = 2,
    /// ZIO_CHECKSUM_FLETCHER_4.
    Fletcher4 = 7,
    /// ZIO_CHECKSUM_SHA256 (dedup-capable).
    Sha256 = 8,
}

impl ChecksumType {
    /// Decodes a ZFS checksum enum value; `None` for values this engine does not support.
    #[must_use]
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            2 => Some(ChecksumType::Off),
            7 => Some(ChecksumType::Fletcher4),
            8 => Some(ChecksumType::Sha256),
            _ => None,
        }
    }

    /// Computes this checksum of `data`; `Off` gives all zeros.
    #[must_use]
    pub fn compute(self, data: &[u8]) -> ZioCksum {
        match self {
            ChecksumType::Off => [0; 4],
            ChecksumType::Fletcher4 => fletcher4(data),
            ChecksumType::Sha256 => sha256(data),
        }
    }

    /// True for algorithms strong enough for dedup (ZCHECKSUM_FLAG_DEDUP): sha256 here.
    #[must_use]
    pub fn is_dedup_capable(self) -> bool {
        matches!(self, ChecksumType::Sha256)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar(data: &[u8], big: bool) -> ZioCksum {
        let mut f = Fletcher4::new();
        let order = if big { WordOrder::Big } else { WordOrder::Little };
        f.update_scalar(&data[..data.len() - data.len() % 4], order);
        f.finish()
    }

    /// xorshift64*: deterministic test data without a dependency.
    fn rng_bytes(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
            })
            .collect()
    }

    fn hex(c: ZioCksum) -> String {
        format!("{:x}/{:x}/{:x}/{:x}", c[0], c[1], c[2], c[3])
    }

    #[test]
    fn fletcher4_spec_vectors_native_and_byteswap() {
        assert_eq!(fletcher4(&[]), [0; 4]);
        let small = [1u8, 0, 0, 0, 2, 0, 0, 0];
        assert_eq!(hex(fletcher4(&small)), "3/4/5/6");
        let mut f = Fletcher4::new();
        f.update_byteswap(&small);
        assert_eq!(hex(f.finish()), "3000000/4000000/5000000/6000000");
        let ramp: Vec<u8> = (0..65536u32).map(|i| (i & 0xff) as u8).collect();
        assert_eq!(
            hex(fletcher4(&ramp)),
            "20601fdf8000/40abd95695a8000/2ee2395d66b54000/58019134aea4c000"
        );
        let mut f = Fletcher4::new();
        f.update_byteswap(&ramp);
        assert_eq!(
            hex(f.finish()),
            "1f9fe0204000/3f2b53d617ae000/2e20332569758000/b70c8cb6b4b4f000"
        );
        let ones = vec![0xffu8; 16 << 20];
        let want = "3fffffffc00000/1ff7ffffe00000/154d5555400000/55654dfffff00000";
        assert_eq!(hex(fletcher4(&ones)), want);
        let mut f = Fletcher4::new();
        f.update_byteswap(&ones);
        assert_eq!(hex(f.finish()), want);
        assert_eq!(hex(fletcher4(&[1, 0, 0, 0, 9, 9, 9])), "1/1/1/1");
    }

    #[test]
    fn fletcher4_lanes_match_scalar_on_random_lengths() {
        for seed in 1..300u64 {
            let len = (seed as usize * 7919) % 5000 + (seed as usize % 5);
            let data = rng_bytes(seed, len);
            for big in [false, true] {
                let mut f = Fletcher4::new();
                if big {
                    f.update_byteswap(&data);
                } else {
                    f.update(&data);
                }
                assert_eq!(f.finish(), scalar(&data, big), "seed {seed} len {len} big {big}");
            }
        }
    }

    #[test]
    fn fletcher4_incremental_split_equals_whole() {
        for seed in 1..200u64 {
            let len = (seed as usize * 104_729) % 9000 + 4;
            let data = rng_bytes(seed ^ 0xabcdef, len);
            let whole = fletcher4(&data);
            // Split points at 4-byte boundaries, several pieces.
            let mut f = Fletcher4::new();
            let mut pos = 0;
            let mut step = (seed as usize * 31) % 700 + 1;
            while pos < data.len() {
                let end = (pos + step * 4).min(data.len());
                f.update(&data[pos..end]);
                pos = end;
                step = step * 3 % 701 + 1;
            }
            assert_eq!(f.finish(), whole, "seed {seed}");
            let mut g = Fletcher4::new();
            let mid = (len / 3) & !3;
            g.update_byteswap(&data[..mid]);
            g.update_byteswap(&data[mid..]);
            assert_eq!(g.finish(), scalar(&data, true), "seed {seed} byteswap");
        }
    }

    #[test]
    fn fletcher4_fold_from_nonzero_state_with_large_counts() {
        // Tet(n) with n near the top of u64 must not overflow before dividing.
        for n in [0u64, 1, 2, 3, 5, (1 << 21) - 1, 1 << 21, 1 << 40, u64::MAX - 2, u64::MAX - 1] {
            let v = (u128::from(n) * (u128::from(n) + 1) % (1 << 64)) as u64;
            assert_eq!(tri(n).wrapping_mul(2), v);
            let t = u128::from(n) * (u128::from(n) + 1) / 2 % 3;
            // Tet(n) * 6 == n(n+1)(n+2) modulo 2^64.
            let prod = (u128::from(n) * (u128::from(n) + 1) % (1 << 64))
                .wrapping_mul(u128::from(n) + 2) as u64;
            assert_eq!(tetra(n).wrapping_mul(6), prod, "n {n} ({t})");
        }
        assert_eq!(tetra(3), 10);
        assert_eq!(tetra(4), 20);
        assert_eq!(tri(4), 10);
        let data = rng_bytes(77, 4096);
        let mut f = Fletcher4::new();
        f.update(&data[..52]);
        f.update(&data[52..]);
        assert_eq!(f.finish(), scalar(&data, false));
    }

    #[test]
    fn sha256_words_are_big_endian_digest_bytes() {
        let c = sha256(b"abc");
        assert_eq!(c[0], 0xba78_16bf_8f01_cfea);
        assert_eq!(c[3], 0xb410_ff61_f200_15ad);
        assert_eq!(ChecksumType::Sha256.compute(b"abc"), c);
        assert_eq!(ChecksumType::Off.compute(b"abc"), [0; 4]);
        assert!(ChecksumType::Sha256.is_dedup_capable());
        assert!(!ChecksumType::Fletcher4.is_dedup_capable());
    }

    #[test]
    fn checksum_type_from_u8_round_trips() {
        for t in [ChecksumType::Off, ChecksumType::Fletcher4, ChecksumType::Sha256] {
            assert_eq!(ChecksumType::from_u8(t as u8), Some(t));
        }
        assert_eq!(ChecksumType::from_u8(0), None);
        assert_eq!(ChecksumType::from_u8(255), None);
    }

    #[test]
    #[ignore = "timing; run with --release -- --ignored fletcher --nocapture"]
    fn fletcher4_throughput() {
        for len in [280usize, 512, 1024, 2048, 4096, 128 << 10] {
            let buf = rng_bytes(5, len);
            let rounds = (5u64 << 30) / len as u64;
            let mut acc = 0u64;
            let t0 = std::time::Instant::now();
            for _ in 0..rounds {
                acc = acc.wrapping_add(fletcher4(std::hint::black_box(&buf))[3]);
            }
            let lanes = (rounds * len as u64) as f64 / 1e6 / t0.elapsed().as_secs_f64();
            let t0 = std::time::Instant::now();
            for _ in 0..rounds / 4 {
                acc = acc.wrapping_add(scalar(std::hint::black_box(&buf), false)[3]);
            }
            let one = (rounds / 4 * len as u64) as f64 / 1e6 / t0.elapsed().as_secs_f64();
            println!("fletcher4 {len:>6} B: {lanes:.0} MB/s (scalar {one:.0} MB/s) {acc:x}");
        }
    }
}
