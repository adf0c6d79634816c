//! The test oracle: a reference model of the pool and the checkers that hold the engine to
//! it. OpenZFS counterparts: ztest (random operations checked as they run) and zdb (pool
//! consistency). See docs/design.md, "Properties the oracle checks".
//!
//! - `model`: the pool as BTreeMaps, same API shape as `engine::Spa`; error kinds.
//! - `op`: the single `Op` vocabulary, applied to engine and model side by side; a seeded
//!   generator of op lists.
//! - `conformance`: property 1, engine (head and every snapshot) equals model; `run_checked`.
//! - `integrity`: property 5, zdb-like block walk, space and birth-txg checks (the walk,
//!   from raw device bytes with the oracle's own decoders, is `zdb`).
//! - `space`: the model's space bound, which makes an unwarranted ENOSPC a violation.
//! - `manifest`: the v1 manifest of `golden/fixtures/openzfs/README.md`, engine and model.
//!
//! The oracle uses only the engine's public API and never changes a pool except through it.
//!
//! ```
//! use engine::{MemoryDevice, Spa, SpaConfig};
//! use oracle::{random_ops, run_checked, GenConfig, Model};
//!
//! let dev = Box::new(MemoryDevice::new(64 << 20));
//! let mut spa = Spa::create(dev, "tank", SpaConfig::default()).expect("create");
//! let mut model = Model::new("tank");
//! let cfg = GenConfig { write_len_max: 4096, sparse: false, ..GenConfig::default() };
//! let ops = random_ops(7, 10, &cfg);
//! run_checked(&mut spa, &mut model, &ops).expect("engine conforms");
//! ```

pub mod conformance;
pub mod integrity;
pub mod manifest;
pub mod model;
pub mod op;
pub mod replica;
pub mod resend;
pub mod space;
pub mod zdb;

pub use conformance::{run_checked, RunFailure};
pub use integrity::{IntegrityError, IntegrityReport, Problem};
pub use manifest::{
    manifest, manifest_of_model, manifest_of_model_trimmed, manifest_trimmed, parse_manifest,
    ManifestLine,
};
pub use model::{kind_of_dmu, kind_of_dsl, ErrKind, Model, ModelError, ModelInfo, RecvMaxblkids};
pub use op::{random_ops, Divergence, GenConfig, ObjRef, Op, Outcome, Pos, Target};
