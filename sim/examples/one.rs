fn main() {
    let profile: sim::fault::Profile = std::env::args().nth(1).unwrap().parse().unwrap();
    let seed: u64 = std::env::args().nth(2).unwrap().parse().unwrap();
    let cfg = sim::run::SimConfig { profile, ..Default::default() };
    let r = sim::run::run_seed(seed, &cfg, true);
    for l in &r.trace {
        println!("{}", &l[..l.len().min(300)]);
    }
    println!("{:?}", r.failure);
}
