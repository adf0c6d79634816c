fn main() {
    let profile: sim::fault::Profile =
        std::env::args().nth(1).unwrap_or("crash".into()).parse().unwrap();
    let n: u64 = std::env::args().nth(2).map_or(20, |s| s.parse().unwrap());
    let cfg = sim::run::SimConfig { profile, ..Default::default() };
    let (mut fails, mut crashes, mut ops) = (0, 0, 0);
    for seed in 0..n {
        let r = sim::run::run_seed(seed, &cfg, false);
        crashes += r.crashes;
        ops += r.ops;
        if let Some(f) = &r.failure {
            fails += 1;
            if fails <= 3 {
                println!("seed {seed}: {}", &f[..f.len().min(600)]);
            }
        }
    }
    println!("{n} seeds, {ops} ops, {crashes} crashes, {fails} failures");
}
