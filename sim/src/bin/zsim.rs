//! `zsim`: the simulator's command line (forms fixed by design.md). `run` is the main job;
//! `replay`, `shrink`, `explore` work on one seed or scenario; `gen`, `recv`, `dump` work on
//! streams. Bad arguments print a clear message and exit 2 (clap's convention). The progress
//! bar is the only wall-clock user, and it never feeds a simulation.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use sim::fault::Profile;
use sim::main_job::{reproducer, run_job, JobConfig, DETERMINISM_SHARE_PCT_DEFAULT};
use sim::run::{run_seed, SimConfig, OPS_PER_SEED_DEFAULT};

#[derive(Parser)]
#[command(
    name = "zsim",
    version,
    about = "Deterministic simulator and test oracle for a ZFS-style engine"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// The main job: N seeded simulations against the reference model.
    Run {
        /// Number of seeds.
        #[arg(long, default_value_t = 1000)]
        seeds: u64,
        /// First seed.
        #[arg(long, default_value_t = 0)]
        start: u64,
        /// Parallel jobs (OS threads; default: all cores).
        #[arg(long)]
        jobs: Option<usize>,
        /// Run only shard I of N (seed % N == I), e.g. 0/4.
        #[arg(long, value_parser = parse_shard)]
        shard: Option<(u64, u64)>,
        /// Fault profile: none, crash, faults, unrestricted, lying-flush.
        #[arg(long, default_value = "crash")]
        profile: Profile,
        /// Operations per seed.
        #[arg(long, default_value_t = OPS_PER_SEED_DEFAULT)]
        ops: usize,
        /// Share of seeds run twice to compare trace hashes, in percent.
        #[arg(long, default_value_t = DETERMINISM_SHARE_PCT_DEFAULT)]
        determinism: u64,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Rerun one seed with a readable trace and its trace hash.
    Replay {
        /// The seed.
        #[arg(long)]
        seed: u64,
        /// Fault profile.
        #[arg(long, default_value = "crash")]
        profile: Profile,
        /// Operations per seed.
        #[arg(long, default_value_t = OPS_PER_SEED_DEFAULT)]
        ops: usize,
    },
    /// Minimize a failing seed to the shortest operation list that still fails.
    Shrink {
        /// The seed.
        #[arg(long)]
        seed: u64,
        /// Fault profile.
        #[arg(long, default_value = "crash")]
        profile: Profile,
        /// Operations per seed.
        #[arg(long, default_value_t = OPS_PER_SEED_DEFAULT)]
        ops: usize,
    },
    /// Enumerate the crash states of a golden scenario and check each.
    Explore {
        /// Scenario name (see --list).
        #[arg(required_unless_present = "list")]
        scenario: Option<String>,
        /// List the scenarios.
        #[arg(long)]
        list: bool,
        /// Seed of the sample drawn when a crash point has too many cached-write subsets.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Build a golden scenario and write its streams and manifests to OUTDIR.
    Gen {
        /// Scenario name (see --list).
        #[arg(required_unless_present = "list")]
        scenario: Option<String>,
        /// Output directory (created if missing).
        #[arg(required_unless_present = "list")]
        outdir: Option<PathBuf>,
        /// List the scenarios.
        #[arg(long)]
        list: bool,
    },
    /// Receive streams in order into an empty in-memory pool; print a v1 manifest each.
    Recv {
        /// Stream files.
        #[arg(required = true)]
        streams: Vec<PathBuf>,
    },
    /// Print a stream as OpenZFS `zstream dump` does (`-` reads standard input).
    Dump {
        /// One line per record (-vv adds checksums).
        #[arg(short, action = clap::ArgAction::Count)]
        v: u8,
        /// Dump payloads (implies -vv).
        #[arg(short)]
        d: bool,
        /// Do not compute or compare checksums.
        #[arg(short = 'C')]
        no_checksum: bool,
        /// The stream file, or `-`.
        stream: String,
    },
}

fn parse_shard(s: &str) -> Result<(u64, u64), String> {
    let (i, n) = s.split_once('/').ok_or("expected I/N, e.g. 0/4")?;
    let i: u64 = i.parse().map_err(|_| format!("bad shard index {i:?}"))?;
    let n: u64 = n.parse().map_err(|_| format!("bad shard count {n:?}"))?;
    if n == 0 || i >= n {
        return Err(format!("shard {i}/{n}: need 0 <= I < N"));
    }
    Ok((i, n))
}

fn sim_config(profile: Profile, ops: usize) -> SimConfig {
    SimConfig { profile, ops_per_seed: ops, ..SimConfig::default() }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli.cmd) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("zsim: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn dispatch(cmd: Cmd) -> Result<ExitCode> {
    match cmd {
        Cmd::Run { seeds, start, jobs, shard, profile, ops, determinism, json } => {
            let jobs =
                jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
            let cfg = JobConfig {
                start,
                seeds,
                jobs,
                shard: shard.unwrap_or((0, 1)),
                determinism_pct: determinism,
                sim: sim_config(profile, ops),
            };
            Ok(cmd_run(&cfg, json))
        }
        Cmd::Replay { seed, profile, ops } => Ok(cmd_replay(seed, profile, ops)),
        Cmd::Shrink { seed, profile, ops } => Ok(cmd_shrink(seed, profile, ops)),
        Cmd::Recv { streams } => cmd_recv(&streams),
        Cmd::Gen { list: true, .. } | Cmd::Explore { list: true, .. } => {
            for name in golden::names() {
                println!("{name}\t{}", golden::about(name).unwrap_or(""));
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Gen { scenario, outdir, .. } => {
            let (Some(name), Some(dir)) = (scenario, outdir) else {
                bail!("gen needs SCENARIO and OUTDIR")
            };
            golden::gen(&name, &dir).with_context(|| format!("generating {name}"))?;
            println!("wrote {name} streams and manifests to {}", dir.display());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Explore { scenario, seed, .. } => {
            let name = scenario.context("explore needs SCENARIO")?;
            sim::explore::cmd_explore(&name, seed)
        }
        Cmd::Dump { v, d, no_checksum, stream } => cmd_dump(v, d, no_checksum, &stream),
    }
}

fn cmd_run(cfg: &JobConfig, json: bool) -> ExitCode {
    let total = sim::main_job::shard_seeds(cfg).len() as u64;
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{bar:40}] {pos}/{len} seeds {msg}",
        )
        .expect("static template")
        .progress_chars("=> "),
    );
    let fails = std::sync::atomic::AtomicU64::new(0);
    let summary = run_job(cfg, &|r| {
        if r.failure.is_some() {
            fails.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        bar.set_message(format!("{} failing", fails.load(std::sync::atomic::Ordering::Relaxed)));
        bar.inc(1);
    });
    bar.finish_and_clear();
    let p = cfg.sim.profile;
    if json {
        let failures: Vec<String> = summary
            .failures
            .iter()
            .map(|(s, f)| {
                format!(
                    "{{\"seed\":{s},\"reproducer\":{:?},\"failure\":{:?}}}",
                    reproducer(*s, p),
                    f
                )
            })
            .collect();
        println!(
            "{{\"profile\":\"{p}\",\"seeds\":{},\"ops\":{},\"crashes\":{},\"faults\":{},\"detections\":{},\"checks\":{},\"determinism_checked\":{},\"fsyncs\":{},\"log_replays\":{},\"ops_replayed\":{},\"failures\":[{}]}}",
            summary.seeds, summary.ops, summary.crashes, summary.faults, summary.detections, summary.checks, summary.determinism_checked, summary.fsyncs, summary.log_replays, summary.ops_replayed, failures.join(",")
        );
    } else {
        println!(
            "profile {p}: {} seeds, {} ops, {} crashes, {} faults injected ({} detected), {} checks, {} seeds re-run for determinism, {} failing",
            summary.seeds, summary.ops, summary.crashes, summary.faults, summary.detections, summary.checks, summary.determinism_checked, summary.failures.len()
        );
        println!(
            "intent log: {} fsyncs returned, {} imports replayed {} logged ops",
            summary.fsyncs, summary.log_replays, summary.ops_replayed
        );
        for (seed, f) in &summary.failures {
            println!("FAIL seed {seed}: {}", f.lines().next().unwrap_or(""));
            println!("  reproduce: {}", reproducer(*seed, p));
        }
    }
    if summary.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn cmd_replay(seed: u64, profile: Profile, ops: usize) -> ExitCode {
    let r = run_seed(seed, &sim_config(profile, ops), true);
    for line in &r.trace {
        println!("{line}");
    }
    println!(
        "seed {seed} profile {profile}: {} ops, {} crashes, {} faults, {} checks",
        r.ops, r.crashes, r.faults, r.checks
    );
    println!("trace hash {}", r.trace_hash);
    match r.failure {
        None => ExitCode::SUCCESS,
        Some(f) => {
            println!("FAIL: {f}");
            ExitCode::from(1)
        }
    }
}

fn cmd_shrink(seed: u64, profile: Profile, ops: usize) -> ExitCode {
    match sim::shrink::shrink(seed, &sim_config(profile, ops)) {
        None => {
            println!("seed {seed} passes under profile {profile}: nothing to shrink");
            ExitCode::SUCCESS
        }
        Some((ops, failure)) => {
            println!("// {} ops still fail:", ops.len());
            print!(
                "{}",
                sim::shrink::as_regression_test(seed, &profile.to_string(), &ops, &failure)
            );
            ExitCode::from(1)
        }
    }
}

fn read_input(path: &str) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    if path == "-" {
        std::io::stdin().read_to_end(&mut buf).context("reading standard input")?;
    } else {
        buf = std::fs::read(path).with_context(|| format!("reading {path}"))?;
    }
    Ok(buf)
}

fn cmd_dump(v: u8, d: bool, no_checksum: bool, stream: &str) -> Result<ExitCode> {
    let data = read_input(stream)?;
    let opts = engine::stream::dump::DumpOptions {
        verbose: if d { 2 } else { v },
        dump_payload: d,
        no_checksum,
    };
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let code = engine::stream::dump::dump(
        &mut data.as_slice(),
        &opts,
        &mut stdout.lock(),
        &mut stderr.lock(),
    )?;
    std::io::stdout().flush()?;
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}

fn cmd_recv(streams: &[PathBuf]) -> Result<ExitCode> {
    let dev = Box::new(engine::MemoryDevice::new(1 << 30));
    let mut spa = engine::Spa::create(dev, "zsim", engine::SpaConfig::default())
        .context("creating the in-memory pool")?;
    for path in streams {
        let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let out = match spa.recv(
            "zsim/recv",
            &mut data.as_slice(),
            &engine::dmu::recv::RecvOptions::default(),
        ) {
            Ok(o) => o,
            Err(e) => bail!("cannot receive {}: {e}", path.display()),
        };
        let text = oracle::manifest(&mut spa, &out.snapshot)
            .with_context(|| format!("manifest of {}", out.snapshot))?;
        print!("{text}");
    }
    Ok(ExitCode::SUCCESS)
}
