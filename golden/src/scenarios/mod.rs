//! The catalog table (name, description, guid seed, builder) and the `Builder` every
//! scenario drives: a fresh in-memory pool with `pool/fs`, a fixed clock and guid seed.
//! Neighbours: lib.rs (build, streams, gen), fixtures.rs / shapes.rs / bugs.rs (builders).
//! Invariants: a builder only calls the engine's public API, in a fixed order; every step
//! changes `oracle::Model` as it changes the engine, and the model accepts every step.

mod bugs;
mod content;
mod fixtures;
mod shapes;
mod zil;

use engine::dmu::object::ObjectSpec;
use engine::{BlockDevice, Compress, DatasetProps, MemoryDevice, Spa, SpaConfig};
use oracle::model::{as_received, RecvMaxblkids};
use oracle::Model;

use crate::{GoldenError, Scenario, FS_NAME, POOL_DEVICE_BYTES, POOL_NAME, SCENARIO_EPOCH_SECS};

/// Seconds the clock advances after each snapshot.
const SNAPSHOT_INTERVAL_SECS: u64 = 3600;

/// One catalog entry.
struct Entry {
    name: &'static str,
    about: &'static str,
    guid_seed: u64,
    props: fn() -> DatasetProps,
    build: fn(&mut Builder) -> Result<(), GoldenError>,
}

fn lz4() -> DatasetProps {
    DatasetProps { compress: engine::Compress::Lz4, ..DatasetProps::default() }
}

/// The catalog. Guid seeds are fixed per entry so adding an entry changes no other stream.
const CATALOG: &[Entry] = &[
    Entry {
        name: "wiki",
        about: "the wiki walkthrough: ZPL-like objects 1-7 (master node 21, directory 4); \
                @after adds file 8 with \"123\\n\" and its directory entry",
        guid_seed: 0x601d_0001,
        props: lz4,
        build: fixtures::wiki,
    },
    Entry {
        name: "basic",
        about: "fixture basic: object 2 (512 B blocks) \"123\\n\" at 0; @after \"456\\n\" at 4, \
                bonus changed (same bytes as the OpenZFS fixture)",
        guid_seed: 0x601d_0002,
        props: lz4,
        build: fixtures::basic,
    },
    Entry {
        name: "holes",
        about: "fixture holes: punched blocks, a partial punch, the last block punched, a hole \
                written, holes inside large sparse regions",
        guid_seed: 0x601d_0003,
        props: lz4,
        build: fixtures::holes,
    },
    Entry {
        name: "truncate",
        about: "fixture truncate: shrink to a partial block, to zero, inside one block, \
                shrink then extend, and a control object",
        guid_seed: 0x601d_0004,
        props: lz4,
        build: fixtures::truncate,
    },
    Entry {
        name: "freeobjects",
        about: "fixture freeobjects: 64 objects; every third, objects 21-37 and the last 3 \
                freed; 2 new objects (66, 67)",
        guid_seed: 0x601d_0005,
        props: lz4,
        build: fixtures::freeobjects,
    },
    Entry {
        name: "realloc",
        about: "same object numbers reused: freed and reclaimed with a new type, block size \
                and bonus, reclaimed in place, and a sparse reuse",
        guid_seed: 0x601d_0006,
        props: DatasetProps::default,
        build: shapes::realloc,
    },
    Entry {
        name: "large",
        about: "multi-level indirect trees: 128 KiB blocks past 1 GiB, 512 B blocks with 4 KiB \
                indirects 5 levels deep; @after writes into and punches inside them",
        guid_seed: 0x601d_0007,
        props: DatasetProps::default,
        build: shapes::large,
    },
    Entry {
        name: "empty",
        about: "a dataset without objects, snapshotted twice with nothing in between",
        guid_seed: 0x601d_0008,
        props: DatasetProps::default,
        build: shapes::empty,
    },
    Entry {
        name: "chain",
        about: "three snapshots @a @b @c (@before = @a, @after = @c): writes, a new object, \
                a freed object and a truncation, one step at a time",
        guid_seed: 0x601d_0009,
        props: lz4,
        build: shapes::chain,
    },
    Entry {
        name: "many-objects",
        about: "200 objects over 7 dnode blocks; @after frees a whole dnode block, scattered \
                objects and the last ones, and claims objects in new dnode blocks",
        guid_seed: 0x601d_000a,
        props: DatasetProps::default,
        build: shapes::many_objects,
    },
    Entry {
        name: "bug-hole-birth-reuse",
        about: "spec §6 #1: a file deleted and its object number reused by a sparse file of \
                the same shape; the birth-0 holes must clear the old data",
        guid_seed: 0x601d_0101,
        props: DatasetProps::default,
        build: bugs::hole_birth_reuse,
    },
    Entry {
        name: "bug-hole-birth-indirect",
        about: "spec §6 #2: whole indirect spans punched, then one block written inside each \
                (same txg and a later txg); the re-created L0 holes must be sent",
        guid_seed: 0x601d_0102,
        props: DatasetProps::default,
        build: bugs::hole_birth_indirect,
    },
    Entry {
        name: "bug-hole-birth-truncate-extend",
        about: "spec §6 #3: truncate then write past the old end in the same txg",
        guid_seed: 0x601d_0103,
        props: DatasetProps::default,
        build: bugs::hole_birth_truncate_extend,
    },
    Entry {
        name: "bug-freeobjects-double-advance",
        about: "spec §6 #4: f1 f2 f3 consecutive; rm f2; @before; rm f3; @after: f3 must be gone",
        guid_seed: 0x601d_0104,
        props: DatasetProps::default,
        build: bugs::freeobjects_double_advance,
    },
    Entry {
        name: "zil-replay",
        about: "intent log: after @before, fsynced changes (small copied writes, 128 KiB \
                blocks written in place, a truncate, a bonus, a new object) and a change never \
                fsynced; the host crashes and import replays the log; @after holds exactly the \
                fsynced changes",
        guid_seed: 0x601d_0201,
        props: DatasetProps::default,
        build: zil::replay,
    },
    Entry {
        name: "recv",
        about: "send and receive on the crashing pool: @before received in full as pool/copy, \
                then changes, @after, and the incremental received into pool/copy",
        guid_seed: 0x601d_0301,
        props: lz4,
        build: shapes::recv,
    },
    Entry {
        name: "bug-embedded-padding",
        about: "spec §6 #16: lz4 dataset with tiny compressible blocks (embedded block \
                pointers, psize not a multiple of 8); WRITE_EMBEDDED padding must be zero",
        guid_seed: 0x601d_0105,
        props: lz4,
        build: bugs::embedded_padding,
    },
];

/// Every scenario name, in catalog order.
#[must_use]
pub fn names() -> &'static [&'static str] {
    const N: usize = CATALOG.len();
    const NAMES: [&str; N] = {
        let mut out = [""; N];
        let mut i = 0;
        while i < N {
            out[i] = CATALOG[i].name;
            i += 1;
        }
        out
    };
    &NAMES
}

/// One-line description of scenario `name` (for `zsim gen --list`).
#[must_use]
pub fn about(name: &str) -> Option<&'static str> {
    CATALOG.iter().find(|e| e.name == name).map(|e| e.about)
}

pub(crate) fn build(name: &str) -> Result<Scenario, GoldenError> {
    let dev = Box::new(MemoryDevice::new(POOL_DEVICE_BYTES));
    build_on(name, dev, None)
}

/// What a builder calls after each step: the pool, the model of the pool after the same
/// step, and the step's name (`crate::build_on`).
pub(crate) type StepHook<'h> = &'h mut dyn FnMut(&mut Spa, &Model, &str);

/// Build scenario `name` on `dev`, calling `hook` after every step (see `crate::build_on`).
pub(crate) fn build_on(
    name: &str,
    dev: Box<dyn BlockDevice>,
    hook: Option<StepHook<'_>>,
) -> Result<Scenario, GoldenError> {
    let entry = CATALOG
        .iter()
        .find(|e| e.name == name)
        .ok_or_else(|| GoldenError::UnknownScenario(name.to_owned()))?;
    let mut b = Builder::new(entry.guid_seed, (entry.props)(), dev, hook)?;
    (entry.build)(&mut b)?;
    assert!(b.snapshots.len() >= 2, "{name}: a scenario takes at least two snapshots");
    b.spa.txg_sync()?;
    b.step("final sync");
    let Builder { spa, fs, snapshots, model, .. } = b;
    Ok(Scenario { name: entry.name, spa, model, fs, snapshots })
}

/// A scenario under construction: thin, `?`-friendly wrappers over `Spa` on `pool/fs`,
/// each applying the same operation to the reference model (`oracle::Model`) after the
/// engine did: the model must accept what the engine accepted, else the build fails with
/// `GoldenError::Model` naming the step. Every wrapper ends with `step`, which hands the
/// pool and the model to the caller's hook (if any).
pub(crate) struct Builder<'h> {
    pub spa: Spa,
    pub fs: String,
    pub snapshots: Vec<String>,
    /// The model, changed by every step as the engine is.
    model: Model,
    /// The model as of the newest step that committed a txg or was an fsync: what a crash
    /// keeps (`crash_and_import`).
    durable: Model,
    /// The engine's last synced txg after the previous step (`None` before the first).
    synced_txg: Option<u64>,
    /// Steps taken so far: the index of the next step, as a hook counts them.
    steps: usize,
    clock_secs: u64,
    hook: Option<StepHook<'h>>,
}

impl<'h> Builder<'h> {
    fn new(
        guid_seed: u64,
        props: DatasetProps,
        dev: Box<dyn BlockDevice>,
        hook: Option<StepHook<'h>>,
    ) -> Result<Self, GoldenError> {
        let cfg = SpaConfig { guid_seed, now_secs: SCENARIO_EPOCH_SECS, ..SpaConfig::default() };
        let spa = Spa::create(dev, POOL_NAME, cfg)?;
        let model = Model::new(POOL_NAME);
        let mut b = Self {
            spa,
            fs: FS_NAME.to_owned(),
            snapshots: Vec::new(),
            durable: model.clone(),
            model,
            synced_txg: None,
            steps: 0,
            clock_secs: SCENARIO_EPOCH_SECS,
            hook,
        };
        b.step("create");
        b.spa.dataset_create(FS_NAME, props)?;
        b.model_op("dataset_create", |m| m.dataset_create(FS_NAME))?;
        let lz4 = props.compress == Compress::Lz4;
        b.model_op("dataset_create", |m| m.set_compress(FS_NAME, lz4))?;
        b.step("dataset_create");
        Ok(b)
    }

    /// One step done: note what a crash now keeps, and let the hook look at the pool and
    /// the model (e.g. to notice a committed txg).
    fn step(&mut self, what: &str) {
        let synced = self.spa.last_synced_txg();
        if self.synced_txg != Some(synced) || what == "fsync" {
            // Explore's rule (`step_plan`): a crash keeps the newest commit, and an fsync
            // keeps every change made before it.
            self.durable = self.model.clone();
            self.synced_txg = Some(synced);
        }
        self.steps += 1;
        if let Some(hook) = self.hook.as_mut() {
            hook(&mut self.spa, &self.model, what);
        }
    }

    /// Apply the change of the step named `what` (the engine already made it) to the
    /// model; a refusal is a build error naming the step.
    fn model_op<E: std::fmt::Debug>(
        &mut self,
        what: &str,
        op: impl FnOnce(&mut Model) -> Result<(), E>,
    ) -> Result<(), GoldenError> {
        op(&mut self.model).map_err(|e| GoldenError::Model {
            step: self.steps,
            name: what.to_owned(),
            reason: format!("{e:?}"),
        })
    }

    /// Take snapshot `@short` of everything written so far; the clock then moves on.
    pub fn snapshot(&mut self, short: &str) -> Result<(), GoldenError> {
        let name = format!("{}@{short}", self.fs);
        self.spa.snapshot(&name)?;
        self.model_op("snapshot", |m| m.snapshot(&name))?;
        self.snapshots.push(name);
        self.clock_secs += SNAPSHOT_INTERVAL_SECS;
        self.spa.set_time(self.clock_secs);
        self.step("snapshot");
        Ok(())
    }

    /// `fsync` object `obj`: its (and every earlier) change is now in the intent log.
    pub fn fsync(&mut self, obj: u64) -> Result<(), GoldenError> {
        self.spa.fsync(&self.fs, obj)?;
        let fs = self.fs.clone();
        self.model_op("fsync", |m| m.fsync(&fs, obj))?;
        // An fsync logs one filesystem; `step` keeps the whole model as of it, which is
        // right because only `pool/fs` changes between commits (a receive commits itself).
        for other in self.model.datasets().iter().filter(|&d| *d != fs) {
            debug_assert!(self.model.head(other) == self.durable.head(other), "{other} changed");
        }
        self.step("fsync");
        Ok(())
    }

    /// The host dies (the device keeps everything written, caches included) and the pool
    /// is imported again: only committed txgs and the intent log's fsynced changes remain,
    /// so the model goes back to the newest step that committed a txg or was an fsync.
    pub fn crash_and_import(&mut self) -> Result<(), GoldenError> {
        let placeholder = Spa::create(
            Box::new(MemoryDevice::new(engine::limits::SPA_MINDEVSIZE)),
            "crashed",
            SpaConfig::default(),
        )?;
        let dev = std::mem::replace(&mut self.spa, placeholder).into_device();
        let cfg = SpaConfig {
            guid_seed: self.clock_secs,
            now_secs: self.clock_secs,
            ..SpaConfig::default()
        };
        self.spa = Spa::import(dev, cfg, None)?;
        self.model = self.durable.clone();
        // An import may rewrite every head's intent log (as `Op::ExportImport` does).
        self.model.touch_all();
        self.step("import");
        Ok(())
    }

    /// Send snapshot `@short` of the scenario's filesystem (incrementally from `@from`) and
    /// receive it into filesystem `target` of the same pool: the receive's writes, txg
    /// syncs and flushes land on the scenario's device like any other step's.
    pub fn send_receive(
        &mut self,
        short: &str,
        from: Option<&str>,
        target: &str,
    ) -> Result<(), GoldenError> {
        let to = format!("{}@{short}", self.fs);
        let from = from.map(|f| format!("{}@{f}", self.fs));
        let mut stream = Vec::new();
        let opts = engine::dmu::send::SendOptions::default();
        self.spa.send(&to, from.as_deref(), &opts, &mut stream)?;
        let target = format!("{POOL_NAME}/{target}");
        let recv_opts = engine::dmu::recv::RecvOptions::default();
        // Everything before the receive is committed first (its own step), so the receive
        // commits exactly the txg of its end (explore fingerprints each committed txg).
        self.sync()?;
        let received = self.spa.recv(&target, &mut stream.as_slice(), &recv_opts)?.snapshot;
        let lz4 = opts.embed || opts.compressed;
        self.model_recv(&to, from.as_deref(), &target, &received, lz4)?;
        self.step("recv");
        Ok(())
    }

    /// The model's side of a receive the engine made as `received` (as `oracle::replica`
    /// does): the model's source snapshot as a stream carries it. The engine's maxblkid of
    /// each received object is read only to choose inside the range the model allows
    /// (`RecvMaxblkids::observed`); the engine accepted, so its head was not modified.
    fn model_recv(
        &mut self,
        to: &str,
        from: Option<&str>,
        target: &str,
        received: &str,
        lz4: bool,
    ) -> Result<(), GoldenError> {
        let (fs, short) = to.split_once('@').expect("invariant: a snapshot name");
        let m = &self.model;
        let no_snap = |s: &str| GoldenError::Model {
            step: self.steps,
            name: "recv".to_owned(),
            reason: format!("the model has no snapshot {s}"),
        };
        let source = m.objset(to).map_err(|_| no_snap(to))?;
        let objset = as_received(source, m.compresses(fs));
        let observed = objset
            .keys()
            .filter_map(|&o| self.spa.object_info(received, o).ok().map(|info| (o, info.maxblkid)));
        let maxblkids = RecvMaxblkids {
            source: source.iter().map(|(&o, ob)| (o, ob.maxblkid)).collect(),
            observed: observed.collect(),
        };
        let serial = m.snapshot_serial(to).ok_or_else(|| no_snap(to))?;
        let from_serial = match from {
            Some(f) => Some(m.snapshot_serial(f).ok_or_else(|| no_snap(f))?),
            None => None,
        };
        self.model_op("recv", |m| {
            m.recv(target, short, objset, serial, from_serial, false, false, lz4, &maxblkids)
        })
    }

    /// Sync the open txg (so later changes land in a later txg).
    pub fn sync(&mut self) -> Result<(), GoldenError> {
        self.spa.txg_sync()?;
        self.step("sync");
        Ok(())
    }

    /// Claim object number `obj` with `spec` and set its bonus (if `spec` has one).
    pub fn claim(&mut self, obj: u64, spec: &ObjectSpec, bonus: &[u8]) -> Result<(), GoldenError> {
        assert_eq!(spec.bonuslen, bonus.len(), "object {obj}: bonus length");
        self.spa.object_claim(&self.fs, obj, spec)?;
        let fs = self.fs.clone();
        self.model_op("object_claim", |m| m.object_claim(&fs, obj, spec))?;
        self.step("object_claim");
        if !bonus.is_empty() {
            self.bonus(obj, spec.bonustype, bonus)?;
        }
        Ok(())
    }

    /// Re-create existing object `obj` with `spec` (contents discarded) and set its bonus.
    pub fn reclaim(
        &mut self,
        obj: u64,
        spec: &ObjectSpec,
        bonus: &[u8],
    ) -> Result<(), GoldenError> {
        assert_eq!(spec.bonuslen, bonus.len(), "object {obj}: bonus length");
        self.spa.object_reclaim(&self.fs, obj, spec)?;
        let fs = self.fs.clone();
        self.model_op("object_reclaim", |m| m.object_reclaim(&fs, obj, spec))?;
        self.step("object_reclaim");
        if !bonus.is_empty() {
            self.bonus(obj, spec.bonustype, bonus)?;
        }
        Ok(())
    }

    /// Free object `obj`.
    pub fn free_object(&mut self, obj: u64) -> Result<(), GoldenError> {
        self.spa.object_free(&self.fs, obj)?;
        let fs = self.fs.clone();
        self.model_op("object_free", |m| m.object_free(&fs, obj))?;
        self.step("object_free");
        Ok(())
    }

    /// Write `data` at `offset` of `obj`.
    pub fn write(&mut self, obj: u64, offset: u64, data: &[u8]) -> Result<(), GoldenError> {
        self.spa.write(&self.fs, obj, offset, data)?;
        let fs = self.fs.clone();
        self.model_op("write", |m| m.write(&fs, obj, offset, data))?;
        self.step("write");
        Ok(())
    }

    /// Free `len` bytes at `offset` of `obj` (`u64::MAX`: truncate at `offset`).
    pub fn free(&mut self, obj: u64, offset: u64, len: u64) -> Result<(), GoldenError> {
        self.spa.free_range(&self.fs, obj, offset, len)?;
        let fs = self.fs.clone();
        self.model_op("free_range", |m| m.free_range(&fs, obj, offset, len))?;
        self.step("free_range");
        Ok(())
    }

    /// Write `len` bytes of fixture-style data (`content::fixture_data`) at `offset`.
    pub fn fill(&mut self, obj: u64, offset: u64, len: u64, seed: u64) -> Result<(), GoldenError> {
        let len = usize::try_from(len).expect("scenario writes fit in memory");
        self.write(obj, offset, &content::fixture_data(obj, seed, offset, len))
    }

    /// Write blocks `[first, first + count)` of `obj` (block size `bs`) with fixture data of
    /// the first generation (seed 1).
    pub fn blocks(&mut self, obj: u64, bs: u32, first: u64, count: u64) -> Result<(), GoldenError> {
        let bs = u64::from(bs);
        self.fill(obj, first * bs, count * bs, 1)
    }

    /// Replace the bonus of `obj`.
    pub fn bonus(&mut self, obj: u64, bonustype: u8, bonus: &[u8]) -> Result<(), GoldenError> {
        self.spa.set_bonus(&self.fs, obj, bonustype, bonus)?;
        let fs = self.fs.clone();
        self.model_op("set_bonus", |m| m.set_bonus(&fs, obj, bonustype, bonus))?;
        self.step("set_bonus");
        Ok(())
    }
}
