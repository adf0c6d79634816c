//! Engine throughput as ratios against baselines measured in the same run (memcpy, or the
//! same work at another size), so the figures mean the same on any machine.
//! Reports: write+sync and read (cold and warm) of 128 KiB blocks vs memcpy; full send and
//! receive of a dataset of 128 KiB blocks vs memcpy; incremental send of one changed block
//! in a large dataset divided by the same in a 16 MiB dataset. `cargo bench -p engine`;
//! set ZSIM_BENCH_MIB to change the large dataset size (default 1024).

use std::hint::black_box;
use std::time::{Duration, Instant};

use engine::dmu::recv::RecvOptions;
use engine::dmu::send::SendOptions;
use engine::{MemoryDevice, ObjectSpec, Spa, SpaConfig};

const MIB: u64 = 1 << 20;
const BLOCK: usize = 128 << 10;
/// Repetitions of each measurement; the best is reported (least disturbed by the machine).
const REPS: usize = 3;

fn best<T>(mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut out = None;
    let mut best = Duration::MAX;
    for _ in 0..REPS {
        let t = Instant::now();
        let v = f();
        best = best.min(t.elapsed());
        out = Some(v);
    }
    (best, out.expect("REPS > 0"))
}

fn mbps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / MIB as f64 / d.as_secs_f64()
}

fn memcpy_mbps(bytes: u64) -> f64 {
    let src = vec![7u8; usize::try_from(bytes).expect("fits")];
    let mut dst = vec![0u8; src.len()];
    let (d, ()) = best(|| {
        for (s, t) in src.chunks(BLOCK).zip(dst.chunks_mut(BLOCK)) {
            t.copy_from_slice(s);
        }
        black_box(&dst);
    });
    mbps(bytes, d)
}

fn pool(bytes: u64) -> Spa {
    // Touch every page first: page faults of fresh memory are not the engine's cost.
    let mut dev = MemoryDevice::new(bytes + bytes / 4 + 64 * MIB);
    dev.image_mut().fill(1);
    Spa::create(Box::new(dev), "bench", SpaConfig::default()).expect("create")
}

fn block_data(i: u64) -> Vec<u8> {
    (0..BLOCK).map(|j| (j as u64 ^ i.wrapping_mul(0x9e37)) as u8).collect()
}

/// A pool holding one object of `bytes` of 128 KiB blocks, synced.
fn filled(bytes: u64) -> Spa {
    let mut spa = pool(bytes);
    let o = spa.object_alloc("bench", &ObjectSpec::new(19, BLOCK as u32, 0, 0)).expect("alloc");
    let blocks: Vec<Vec<u8>> = (0..8).map(block_data).collect();
    for i in 0..bytes / BLOCK as u64 {
        spa.write("bench", o, i * BLOCK as u64, &blocks[(i % 8) as usize]).expect("write");
    }
    spa.txg_sync().expect("sync");
    spa
}

fn bench_write(bytes: u64) -> f64 {
    let blocks: Vec<Vec<u8>> = (0..8).map(block_data).collect();
    let d = (0..REPS)
        .map(|_| {
            let mut spa = pool(bytes);
            let spec = ObjectSpec::new(19, BLOCK as u32, 0, 0);
            let o = spa.object_alloc("bench", &spec).expect("alloc");
            let t = Instant::now();
            for i in 0..bytes / BLOCK as u64 {
                let data = &blocks[(i % 8) as usize];
                spa.write("bench", o, i * BLOCK as u64, data).expect("write");
            }
            spa.txg_sync().expect("sync");
            t.elapsed()
        })
        .min()
        .expect("REPS > 0");
    mbps(bytes, d)
}

fn bench_read(spa: &mut Spa, bytes: u64) -> f64 {
    let mut buf = vec![0u8; BLOCK];
    let (d, ()) = best(|| {
        for i in 0..bytes / BLOCK as u64 {
            spa.read_into("bench", 1, i * BLOCK as u64, &mut buf).expect("read");
            black_box(&buf);
        }
    });
    mbps(bytes, d)
}

fn bench_send_recv(spa: &mut Spa, bytes: u64) -> (f64, f64) {
    spa.snapshot("bench@s").expect("snapshot");
    let mut stream = Vec::with_capacity(usize::try_from(bytes + bytes / 8).expect("fits"));
    let (ds, ()) = best(|| {
        stream.clear();
        spa.send("bench@s", None, &SendOptions::default(), &mut stream).expect("send");
    });
    let dr = (0..REPS)
        .map(|_| {
            let mut dst = pool(bytes);
            let t = Instant::now();
            dst.recv("bench/copy", &mut stream.as_slice(), &RecvOptions::default()).expect("recv");
            t.elapsed()
        })
        .min()
        .expect("REPS > 0");
    (mbps(bytes, ds), mbps(bytes, dr))
}

/// Time of an incremental send with one changed block in a dataset of `bytes`.
fn incremental(bytes: u64) -> Duration {
    let mut spa = filled(bytes);
    spa.snapshot("bench@a").expect("snap a");
    spa.write("bench", 1, bytes / 2, &block_data(99)).expect("change one block");
    spa.snapshot("bench@b").expect("snap b");
    let mut out = Vec::new();
    let (d, ()) = best(|| {
        out.clear();
        spa.send("bench@b", Some("bench@a"), &SendOptions::default(), &mut out).expect("send");
    });
    d
}

/// Disk commands per fsync of a small write, and synchronous (write + fsync per block)
/// versus asynchronous write throughput of 4 KiB and 128 KiB blocks, in the same run.
fn bench_fsync() {
    let mut dev = MemoryDevice::new(256 * MIB);
    dev.image_mut().fill(1);
    let mut spa = Spa::create(Box::new(dev), "bench", SpaConfig::default()).expect("create");
    let o = spa.object_alloc("bench", &ObjectSpec::new(19, 4096, 0, 0)).expect("alloc");
    spa.txg_sync().expect("sync");
    let n = 200u64;
    let mut blocks = 0;
    let mut flushes = 0;
    for i in 0..n {
        let st = spa.write_sync("bench", o, i * 100, &[7u8; 100]).expect("write_sync");
        blocks += st.log_blocks + st.indirect_blocks;
        flushes += st.flushes;
    }
    let per = |x: u64| x as f64 / n as f64;
    println!(
        "fsync of a 100-byte write: {:.2} block writes + {:.2} flushes per fsync (txg sync: \
         data, indirects, dnode and objset blocks, MOS, 2 uberblocks, 2 flushes)",
        per(blocks),
        per(flushes)
    );
    for bs in [4096u32, 131072] {
        let total = 64 * MIB;
        let data = vec![3u8; bs as usize];
        let run = |sync: bool| {
            let mut dev = MemoryDevice::new(256 * MIB);
            dev.image_mut().fill(1);
            let mut spa =
                Spa::create(Box::new(dev), "bench", SpaConfig::default()).expect("create");
            let o = spa.object_alloc("bench", &ObjectSpec::new(19, bs, 0, 0)).expect("alloc");
            let t = Instant::now();
            for i in 0..total / u64::from(bs) {
                if sync {
                    spa.write_sync("bench", o, i * u64::from(bs), &data).expect("write_sync");
                } else {
                    spa.write("bench", o, i * u64::from(bs), &data).expect("write");
                }
            }
            spa.txg_sync().expect("sync");
            t.elapsed()
        };
        let (a, s) = (run(false), run(true));
        println!(
            "{} KiB writes: synchronous {:.0} MB/s vs asynchronous {:.0} MB/s = {:.2}x",
            bs / 1024,
            mbps(total, s),
            mbps(total, a),
            a.as_secs_f64() / s.as_secs_f64()
        );
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let large =
        std::env::var("ZSIM_BENCH_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(1024) * MIB;
    let memcpy = memcpy_mbps(256 * MIB);
    println!("memcpy (128 KiB chunks, 256 MiB): {memcpy:.0} MB/s");
    let w = bench_write(large.min(1024 * MIB));
    println!("write+sync 128 KiB blocks: {w:.0} MB/s = {:.2}x memcpy (aim >= 0.25x)", w / memcpy);
    let mut spa = filled(large);
    let warm = bench_read(&mut spa, large);
    let dev = spa.export().expect("export");
    let mut spa = Spa::import(dev, SpaConfig::default(), None).expect("import");
    let cold = bench_read(&mut spa, large);
    println!("read 128 KiB blocks (verify every block): {cold:.0} MB/s = {:.2}x memcpy (aim >= 0.5x); repeated reads {warm:.0} MB/s = {:.2}x", cold / memcpy, warm / memcpy);
    let (s, r) = bench_send_recv(&mut spa, large);
    println!("full send {} MiB: {s:.0} MB/s = {:.2}x memcpy; receive: {r:.0} MB/s = {:.2}x memcpy (aim >= 0.25x)", large / MIB, s / memcpy, r / memcpy);
    bench_fsync();
    let big = incremental(large);
    let small = incremental(16 * MIB);
    println!(
        "incremental send, one changed block: {} MiB dataset {:?}, 16 MiB dataset {:?}, ratio {:.2} (aim <= 2)",
        large / MIB,
        big,
        small,
        big.as_secs_f64() / small.as_secs_f64()
    );
}
