//! `zsim`: the simulator's command line (forms fixed by docs/design.md). `run` is the main
//! job; `replay`, `shrink`, `explore` work on one seed or scenario; `gen`, `recv`, `dump` work
//! on streams; `completions` and `man` describe the tool itself. Exit status is a contract
//! (`EXIT_HELP`): 0 checked and clean, 1 the oracle found violations, 2 bad usage or
//! unreadable/invalid input. The progress display is the only wall-clock user, and it never
//! feeds a simulation.

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use clap::{CommandFactory, Parser, Subcommand};
use sim::fault::Profile;
use sim::main_job::{run_job, JobConfig, Summary, DETERMINISM_SHARE_PCT_DEFAULT, SEEDS_MAX};
use sim::run::{run_seed, SimConfig, OPS_PER_SEED_DEFAULT, OPS_PER_SEED_MAX};

/// The allocator: a simulation allocates and frees whole disk images and block buffers
/// (megabytes each) all the time; glibc's malloc maps and unmaps each one, which cost about
/// half of a crash sweep's time in page faults. mimalloc keeps them in its heaps.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Checked, and the oracle found nothing.
const EXIT_CLEAN: u8 = 0;
/// The oracle found violations (failing seeds, crash states, a damaged stream under
/// `dump --strict`, a scenario the engine cannot build).
const EXIT_VIOLATIONS: u8 = 1;
/// Bad usage, or input that cannot be read or is invalid (clap uses 2 for usage errors too).
const EXIT_USAGE: u8 = 2;

/// Most parallel jobs `--jobs` takes.
const JOBS_MAX: u64 = 1024;
/// Without a terminal, one progress line this often (to standard error).
const PROGRESS_LINE_INTERVAL: Duration = Duration::from_secs(10);

const EXIT_HELP: &str = "\
Exit status:
  0  checked, and the oracle found nothing
  1  the oracle found violations (failing seeds or crash states; dump --strict: a checksum
     mismatch or a truncated stream; a scenario the engine cannot build)
  2  bad usage, or unreadable or invalid input (unknown scenario or profile, missing file,
     out-of-range number, a stream that is refused or is not a send stream)";

#[derive(Parser)]
#[command(
    name = "zsim",
    version,
    about = "Deterministic simulator and test oracle for a ZFS-style engine",
    after_help = EXIT_HELP
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// The main job: N seeded simulations against the reference model.
    #[command(after_help = EXIT_HELP)]
    Run {
        /// Number of seeds (at most 10^9; iterated lazily).
        #[arg(long, default_value_t = 1000,
              value_parser = clap::value_parser!(u64).range(1..=SEEDS_MAX))]
        seeds: u64,
        /// First seed.
        #[arg(long, default_value_t = 0)]
        start: u64,
        /// Parallel jobs (OS threads; default: all cores).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=JOBS_MAX))]
        jobs: Option<u64>,
        /// Run only shard I of N (seed % N == I), e.g. 0/4.
        #[arg(long, value_parser = parse_shard)]
        shard: Option<(u64, u64)>,
        /// Fault profile: none, crash, faults, unrestricted, lying-flush.
        #[arg(long, default_value = "crash")]
        profile: Profile,
        /// Operations per seed.
        #[arg(long, default_value_t = OPS_PER_SEED_DEFAULT as u64, value_parser = ops_range())]
        ops: u64,
        /// Share of seeds run twice to compare trace hashes, in percent.
        #[arg(long, default_value_t = DETERMINISM_SHARE_PCT_DEFAULT,
              value_parser = clap::value_parser!(u64).range(0..=100))]
        determinism: u64,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
        /// Stop at the first failing seed (seeds already running finish); the summary covers
        /// the seeds run.
        #[arg(long)]
        fail_fast: bool,
    },
    /// Rerun one seed with a readable trace and its trace hash.
    #[command(after_help = EXIT_HELP)]
    Replay {
        /// The seed.
        #[arg(long)]
        seed: u64,
        /// Fault profile.
        #[arg(long, default_value = "crash")]
        profile: Profile,
        /// Operations per seed.
        #[arg(long, default_value_t = OPS_PER_SEED_DEFAULT as u64, value_parser = ops_range())]
        ops: u64,
    },
    /// Minimize a failing seed to the shortest operation list that still fails.
    #[command(after_help = EXIT_HELP)]
    Shrink {
        /// The seed.
        #[arg(long)]
        seed: u64,
        /// Fault profile.
        #[arg(long, default_value = "crash")]
        profile: Profile,
        /// Operations per seed.
        #[arg(long, default_value_t = OPS_PER_SEED_DEFAULT as u64, value_parser = ops_range())]
        ops: u64,
    },
    /// Enumerate the crash states of a golden scenario and check each.
    #[command(after_help = EXIT_HELP)]
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
    #[command(after_help = EXIT_HELP)]
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
    #[command(after_help = EXIT_HELP)]
    Recv {
        /// Stream files.
        #[arg(required = true)]
        streams: Vec<PathBuf>,
    },
    /// Print a stream as OpenZFS `zstream dump` does (`-` reads standard input).
    #[command(after_help = EXIT_HELP)]
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
        /// Exit 1 if a record or END checksum does not match or the stream is truncated
        /// (the text is unchanged: zstream dump prints such damage but exits 0).
        #[arg(long)]
        strict: bool,
        /// The stream file, or `-`.
        stream: String,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) to standard output.
    Man,
}

fn ops_range() -> clap::builder::RangedU64ValueParser<u64> {
    clap::value_parser!(u64).range(1..=OPS_PER_SEED_MAX as u64)
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

fn sim_config(profile: Profile, ops: u64) -> SimConfig {
    let ops_per_seed = usize::try_from(ops).expect("clap bounds --ops by OPS_PER_SEED_MAX");
    SimConfig { profile, ops_per_seed, ..SimConfig::default() }
}

/// Why a command stopped without a clean verdict.
enum Stop {
    /// Bad usage or input: exit 2.
    Input(anyhow::Error),
    /// The engine or the oracle failed on valid input: exit 1.
    Violation(anyhow::Error),
}

impl From<anyhow::Error> for Stop {
    fn from(e: anyhow::Error) -> Self {
        Self::Input(e)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli.cmd) {
        Ok(code) => code,
        Err(Stop::Input(e)) => {
            eprintln!("zsim: {e:#}");
            ExitCode::from(EXIT_USAGE)
        }
        Err(Stop::Violation(e)) => {
            eprintln!("zsim: {e:#}");
            ExitCode::from(EXIT_VIOLATIONS)
        }
    }
}

/// `Ok` for a verdict (0 or 1), `Err` for anything that stopped the command early.
fn verdict(clean: bool) -> ExitCode {
    ExitCode::from(if clean { EXIT_CLEAN } else { EXIT_VIOLATIONS })
}

fn known_scenario(name: &str, cmd: &str) -> Result<(), Stop> {
    if golden::about(name).is_none() {
        return Err(Stop::Input(anyhow!("unknown scenario {name:?}; see zsim {cmd} --list")));
    }
    Ok(())
}

fn dispatch(cmd: Cmd) -> Result<ExitCode, Stop> {
    match cmd {
        Cmd::Run { seeds, start, jobs, shard, profile, ops, determinism, json, fail_fast } => {
            if start.checked_add(seeds).is_none() {
                return Err(Stop::Input(anyhow!(
                    "--start {start} with --seeds {seeds} runs past the last seed (2^64 - 1)"
                )));
            }
            let jobs = jobs.map_or_else(
                || std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
                |j| usize::try_from(j).expect("clap bounds --jobs by JOBS_MAX"),
            );
            let cfg = JobConfig {
                start,
                seeds,
                jobs,
                shard: shard.unwrap_or((0, 1)),
                determinism_pct: determinism,
                fail_fast,
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
                return Err(Stop::Input(anyhow!("gen needs SCENARIO and OUTDIR")));
            };
            known_scenario(&name, "gen")?;
            match golden::gen(&name, &dir) {
                Ok(()) => {}
                Err(e @ golden::GoldenError::Io { .. }) => return Err(Stop::Input(e.into())),
                Err(e) => {
                    return Err(Stop::Violation(anyhow!(e).context(format!("generating {name}"))))
                }
            }
            println!("wrote {name} streams and manifests to {}", dir.display());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Explore { scenario, seed, .. } => {
            let name = scenario.context("explore needs SCENARIO")?;
            known_scenario(&name, "explore")?;
            sim::explore::cmd_explore(&name, seed).map_err(Stop::Violation)
        }
        Cmd::Dump { v, d, no_checksum, strict, stream } => {
            cmd_dump(v, d, no_checksum, strict, &stream)
        }
        Cmd::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "zsim", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Man => {
            clap_mangen::Man::new(Cli::command())
                .render(&mut std::io::stdout())
                .context("writing the manual page")?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Progress for people (an indicatif bar on a terminal) and for logs (elsewhere, one plain
/// line every `PROGRESS_LINE_INTERVAL` on standard error).
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    total: u64,
    done: AtomicU64,
    failing: AtomicU64,
    started: Instant,
    last_line: Mutex<Instant>,
}

impl Progress {
    fn new(total: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(total);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{elapsed_precise} [{bar:40}] {pos}/{len} seeds {msg}",
                )
                .expect("static template")
                .progress_chars("=> "),
            );
            bar
        });
        let now = Instant::now();
        Self {
            bar,
            total,
            done: AtomicU64::new(0),
            failing: AtomicU64::new(0),
            started: now,
            last_line: Mutex::new(now),
        }
    }

    fn line(&self) -> String {
        let done = self.done.load(Ordering::Relaxed);
        #[allow(clippy::cast_precision_loss)]
        let rate = done as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
        format!(
            "zsim run: {done}/{} seeds, {} failing, {rate:.1} seeds/s",
            self.total,
            self.failing.load(Ordering::Relaxed)
        )
    }

    fn tick(&self, failed: bool) {
        self.done.fetch_add(1, Ordering::Relaxed);
        if failed {
            self.failing.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(bar) = &self.bar {
            bar.set_message(format!("{} failing", self.failing.load(Ordering::Relaxed)));
            bar.inc(1);
            return;
        }
        let mut last = self.last_line.lock().expect("no poisoned lock");
        if last.elapsed() >= PROGRESS_LINE_INTERVAL {
            *last = Instant::now();
            eprintln!("{}", self.line());
        }
    }

    fn finish(&self) {
        match &self.bar {
            Some(bar) => bar.finish_and_clear(),
            None => eprintln!("{}", self.line()),
        }
    }
}

/// What `zsim run --json` prints: the job's settings, then the summary's fields.
#[derive(serde::Serialize)]
struct RunJson<'a> {
    profile: String,
    ops_per_seed: usize,
    start: u64,
    seeds_requested: u64,
    shard: String,
    #[serde(flatten)]
    summary: &'a Summary,
}

fn cmd_run(cfg: &JobConfig, json: bool) -> ExitCode {
    let progress = Progress::new(sim::main_job::shard_seeds(cfg).len());
    let summary = run_job(cfg, &|r| progress.tick(r.failure.is_some()));
    progress.finish();
    let p = cfg.sim.profile;
    if json {
        let out = RunJson {
            profile: p.to_string(),
            ops_per_seed: cfg.sim.ops_per_seed,
            start: cfg.start,
            seeds_requested: cfg.seeds,
            shard: format!("{}/{}", cfg.shard.0, cfg.shard.1),
            summary: &summary,
        };
        println!("{}", serde_json::to_string(&out).expect("the summary serializes"));
    } else {
        print_summary(cfg, &summary);
    }
    verdict(summary.clean())
}

fn print_summary(cfg: &JobConfig, s: &Summary) {
    if cfg.fail_fast && s.failing() > 0 {
        println!("stopped at the first failure (--fail-fast): the figures cover the seeds run");
    }
    println!(
        "profile {}: {} seeds of {} ops ({} ops applied, {} while a txg synced), {} txgs \
         committed, {} crashes ({} mid-sync), {} oracle checks, {} seeds re-run for \
         determinism, {} failing",
        cfg.sim.profile,
        s.seeds,
        cfg.sim.ops_per_seed,
        s.ops,
        s.ops_while_syncing,
        s.txgs,
        s.crashes,
        s.crashes_mid_sync,
        s.checks,
        s.determinism_checked,
        s.failing()
    );
    println!(
        "faults: {} injected by the disk; {} errors returned for injected damage (every \
         failed read or write counts, so one damaged block read again counts again); {} \
         re-imports of a suspended pool",
        s.faults_injected, s.damage_errors, s.recoveries
    );
    println!(
        "intent log: {} fsyncs returned, {} imports replayed {} logged ops",
        s.fsyncs, s.log_replays, s.ops_replayed
    );
    println!(
        "send/receive: {} streams sent, {} received and checked, {} refused as the model \
         said, {} damaged streams refused; backup pool: {} crashes, {} crash states inside a \
         receive",
        s.streams_sent,
        s.streams_received,
        s.streams_refused,
        s.damaged_refused,
        s.backup_crashes,
        s.backup_crash_states
    );
    println!(
        "space: {} operations and receives refused for space, each allowed by the model's \
         space bound (any other refusal is a violation)",
        s.space_refused
    );
    println!(
        "unmodelled: {} seeds ended early where no model of the pool is known (at most {}% \
         may); {} pools lost to damage beyond repair (detected) and created anew",
        s.unmodelled,
        sim::main_job::UNMODELLED_SHARE_MAX_PCT,
        s.pools_recreated
    );
    if s.too_many_unmodelled() {
        println!("FAIL: too many unmodelled seeds: the run checked too little");
    }
    for f in &s.failures {
        println!("FAIL seed {}: {}", f.seed, f.failure.lines().next().unwrap_or(""));
        println!("  reproduce: {}", f.reproducer);
    }
    if s.failures_unlisted > 0 {
        println!("... and {} more failing seeds, not listed", s.failures_unlisted);
    }
}

fn cmd_replay(seed: u64, profile: Profile, ops: u64) -> ExitCode {
    let r = run_seed(seed, &sim_config(profile, ops), true);
    for line in &r.trace {
        println!("{line}");
    }
    println!(
        "seed {seed} profile {profile}: {} ops, {} crashes, {} faults injected, {} checks",
        r.ops, r.crashes, r.faults, r.checks
    );
    println!("trace hash {}", r.trace_hash);
    if let Some(f) = &r.failure {
        println!("FAIL: {f}");
    }
    verdict(r.failure.is_none())
}

fn cmd_shrink(seed: u64, profile: Profile, ops: u64) -> ExitCode {
    let cfg = sim_config(profile, ops);
    match sim::shrink::shrink(seed, &cfg) {
        None => {
            println!(
                "seed {seed} passes under profile {profile} with {ops} ops: nothing to shrink"
            );
            verdict(true)
        }
        Some(s) => {
            println!("// {} of {} ops still fail ({} runs):", s.ops.len(), s.ops_generated, s.runs);
            print!("{}", sim::shrink::as_regression_test(seed, &cfg, &s.ops, &s.failure));
            verdict(false)
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

fn cmd_dump(
    v: u8,
    d: bool,
    no_checksum: bool,
    strict: bool,
    stream: &str,
) -> Result<ExitCode, Stop> {
    let data = read_input(stream)?;
    let opts = engine::stream::dump::DumpOptions {
        verbose: if d { 2 } else { v },
        dump_payload: d,
        no_checksum,
    };
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let outcome = engine::stream::dump::dump_checked(
        &mut data.as_slice(),
        &opts,
        &mut stdout.lock(),
        &mut stderr.lock(),
    )
    .context("writing the dump")?;
    std::io::stdout().flush().context("writing the dump")?;
    if outcome.status != 0 {
        // zstream's own failures: not a send stream, or a record type it does not know.
        return Err(Stop::Input(anyhow!("{stream}: not a valid send stream")));
    }
    if strict && (outcome.checksum_errors > 0 || outcome.truncated) {
        eprintln!(
            "zsim: {stream}: {} checksum mismatch(es){}",
            outcome.checksum_errors,
            if outcome.truncated { ", truncated" } else { "" }
        );
        return Ok(verdict(false));
    }
    Ok(verdict(true))
}

fn cmd_recv(streams: &[PathBuf]) -> Result<ExitCode, Stop> {
    let dev = Box::new(engine::MemoryDevice::new(1 << 30));
    let mut spa = engine::Spa::create(dev, "zsim", engine::SpaConfig::default())
        .context("creating the in-memory pool")
        .map_err(Stop::Violation)?;
    for path in streams {
        let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let out = spa
            .recv("zsim/recv", &mut data.as_slice(), &engine::dmu::recv::RecvOptions::default())
            .map_err(|e| anyhow!("cannot receive {}: {e}", path.display()))?;
        let text = oracle::manifest(&mut spa, &out.snapshot)
            .with_context(|| format!("manifest of {}", out.snapshot))
            .map_err(Stop::Violation)?;
        print!("{text}");
    }
    Ok(ExitCode::SUCCESS)
}
