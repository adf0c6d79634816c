//! State fingerprints for crash-state exploration: every dataset of a pool, its snapshot
//! list and the v1 manifest (header line stripped) of every snapshot and head, manifests
//! interned by `ManifestStore` and compared by id. `fingerprint` reads an engine pool (a
//! crash state: what is judged); `model_fingerprint` takes names and manifests from
//! `oracle::Model` (the reference of a recorded step). Used by `explore` and `record`.
//! Invariants: a manifest id names one text; the root cache maps an objset root only to
//! the text the engine read for that root, never to a model manifest.

use std::collections::BTreeMap;

use engine::zio::blkptr::{BlkPtr, BP_BYTES};
use engine::Spa;
use oracle::model::ModelObject;
use oracle::Model;

/// The committed state of one dataset: its snapshots and manifests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatasetPrint {
    /// Full name.
    pub name: String,
    /// Properties, as `Debug` prints them.
    pub props: String,
    /// Snapshots, oldest first.
    pub snapshots: Vec<SnapPrint>,
    /// Manifest id (see `ManifestStore`) of the head.
    pub head: usize,
}

/// One snapshot of a fingerprint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapPrint {
    /// Full name `pool/fs@snap`.
    pub name: String,
    /// Guid.
    pub guid: u64,
    /// Creation txg.
    pub creation_txg: u64,
    /// Creation time, seconds.
    pub creation_time: u64,
    /// Manifest id of its contents.
    pub manifest: usize,
}

/// The pool's state fingerprint: every dataset, its snapshot list and the v1 manifest
/// (without its header line) of every snapshot and head, by interned manifest id.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Fingerprint {
    /// Datasets in name order.
    pub datasets: Vec<DatasetPrint>,
}

/// Interned manifest bodies, and (with the cache on) objset root pointer -> manifest id.
#[derive(Clone, Debug, Default)]
pub struct ManifestStore {
    texts: Vec<String>,
    by_text: BTreeMap<String, usize>,
    by_root: BTreeMap<[u8; BP_BYTES], usize>,
    /// Manifests computed by reading the pool (cache misses).
    pub computed: u64,
}

impl ManifestStore {
    /// The manifest body of id `id`.
    #[must_use]
    pub fn text(&self, id: usize) -> &str {
        &self.texts[id]
    }

    /// The id of the manifest of `name`, whose objset root is `root`.
    fn id(
        &mut self,
        spa: &mut Spa,
        name: &str,
        root: &BlkPtr,
        cache: bool,
    ) -> Result<usize, String> {
        let mut key = [0u8; BP_BYTES];
        root.encode(&mut key);
        if cache {
            if let Some(&id) = self.by_root.get(&key) {
                return Ok(id);
            }
        }
        let text = oracle::manifest::manifest(spa, name)
            .map_err(|e| format!("manifest of {name} unreadable: {e}"))?;
        self.computed += 1;
        let id = self.intern(&text);
        if cache {
            self.by_root.insert(key, id);
        }
        Ok(id)
    }

    /// The id of manifest `text` (its `# manifest v1` header line is dropped), by text
    /// alone: a manifest not read from the engine (the model's) never enters the root
    /// cache, so a crash state's root can only hit a manifest the engine read for it.
    fn intern(&mut self, text: &str) -> usize {
        let body = text.split_once('\n').map_or("", |(header, body)| {
            assert!(header.starts_with("# manifest v1"), "{header}");
            body
        });
        self.intern_body(body.to_owned())
    }

    /// `intern` of a manifest without its header line.
    fn intern_body(&mut self, body: String) -> usize {
        assert!(body.is_empty() || body.ends_with('\n'), "a manifest body ends its lines");
        let next = self.texts.len();
        let id = *self.by_text.entry(body.clone()).or_insert(next);
        if id == next {
            self.texts.push(body);
        }
        assert!(id < self.texts.len());
        id
    }
}

/// Manifest lines of the model's objects already hashed, by object number, each with the
/// object it was computed from: a line is reused for an equal object (a line is a function
/// of the object alone), so a large object is hashed once per distinct contents.
#[derive(Clone, Debug, Default)]
pub struct ModelManifests {
    lines: BTreeMap<u64, Vec<(ModelObject, String)>>,
    /// Object lines computed from the model (cache misses).
    pub computed: u64,
}

impl ModelManifests {
    /// The id of the model's manifest of `name` (a head or a snapshot): its object lines,
    /// as `oracle::manifest::manifest_of_model` writes them after its header.
    fn id(
        &mut self,
        model: &Model,
        name: &str,
        store: &mut ManifestStore,
    ) -> Result<usize, String> {
        let objset = model.objset(name).map_err(|e| format!("model: no {name} ({e:?})"))?;
        let mut body = String::new();
        for (&obj, ob) in objset {
            let seen = self.lines.entry(obj).or_default();
            let line = match seen.iter().find(|(o, _)| o == ob) {
                Some((_, line)) => line.clone(),
                None => {
                    let line = oracle::manifest::manifest_line_of_model(obj, ob)
                        .map_err(|e| format!("model manifest of {name}, object {obj}: {e:?}"))?
                        .format();
                    self.computed += 1;
                    seen.push((ob.clone(), line.clone()));
                    line
                }
            };
            body.push_str(&line);
            body.push('\n');
        }
        Ok(store.intern_body(body))
    }
}

/// The reference fingerprint of a step: dataset names, snapshot names and every manifest
/// from `model` (`oracle::manifest::manifest_of_model`, the same v1 format `fingerprint`
/// reads from an engine). The model has no identities, so each snapshot's guid, creation
/// txg and time and each dataset's props come from `spa` (looked up by the model's names;
/// a snapshot the engine lacks is an error).
///
/// # Errors
/// A name the engine does not know, or a model manifest that cannot be made, described.
pub fn model_fingerprint(
    spa: &mut Spa,
    model: &Model,
    store: &mut ManifestStore,
    manifests: &mut ModelManifests,
) -> Result<Fingerprint, String> {
    let mut datasets = Vec::new();
    for fs in model.datasets() {
        let infos = spa.snapshots(&fs).map_err(|e| format!("engine: snapshots of {fs}: {e}"))?;
        let names = model.snapshots(&fs).map_err(|e| format!("model: snapshots of {fs}: {e:?}"))?;
        let mut snapshots = Vec::with_capacity(names.len());
        for name in names {
            let info = infos.iter().find(|i| i.name == name);
            let info = info.ok_or(format!("{name}: the model has it, the engine does not"))?;
            snapshots.push(SnapPrint {
                guid: info.guid,
                creation_txg: info.creation_txg,
                creation_time: info.creation_time,
                manifest: manifests.id(model, &name, store)?,
                name,
            });
        }
        let props = spa.dataset_props(&fs).map_err(|e| format!("engine: props of {fs}: {e}"))?;
        let head = manifests.id(model, &fs, store)?;
        datasets.push(DatasetPrint { name: fs, props: format!("{props:?}"), snapshots, head });
    }
    Ok(Fingerprint { datasets })
}

/// The fingerprint of `spa` as it is now, pending changes included: a head with unsynced
/// changes differs from its synced root, so while the pool is dirty heads are read in full
/// (snapshots are synced and immutable, so their roots stay valid cache keys).
///
/// # Errors
/// A read error or an inconsistency between the pool's listings, described.
pub fn fingerprint(
    spa: &mut Spa,
    store: &mut ManifestStore,
    cache: bool,
) -> Result<Fingerprint, String> {
    let head_cache = cache && !spa.is_dirty() && spa.syncing_txg().is_none();
    let (trees, _) = spa.pool_trees();
    let mut datasets = Vec::new();
    for fs in spa.datasets() {
        let tree = trees.iter().find(|t| t.name == fs).ok_or(format!("{fs}: no synced tree"))?;
        let infos = spa.snapshots(&fs).map_err(|e| format!("snapshots of {fs}: {e}"))?;
        if infos.len() != tree.snapshots.len() {
            return Err(format!("{fs}: snapshot list and trees disagree"));
        }
        let mut snapshots = Vec::with_capacity(infos.len());
        for (info, (_, txg, root)) in infos.into_iter().zip(&tree.snapshots) {
            if info.creation_txg != *txg {
                return Err(format!(
                    "{}: listed txg {} vs tree txg {txg}",
                    info.name, info.creation_txg
                ));
            }
            let manifest = store.id(spa, &info.name, root, cache)?;
            snapshots.push(SnapPrint {
                name: info.name,
                guid: info.guid,
                creation_txg: info.creation_txg,
                creation_time: info.creation_time,
                manifest,
            });
        }
        let props = spa.dataset_props(&fs).map_err(|e| format!("props of {fs}: {e}"))?;
        let head = store.id(spa, &fs, &tree.head, head_cache)?;
        datasets.push(DatasetPrint { name: fs, props: format!("{props:?}"), snapshots, head });
    }
    Ok(Fingerprint { datasets })
}

/// What the first difference between two fingerprints is, if any.
#[must_use]
pub fn first_difference(
    store: &ManifestStore,
    got: &Fingerprint,
    want: &Fingerprint,
) -> Option<String> {
    let names = |f: &Fingerprint| f.datasets.iter().map(|d| d.name.clone()).collect::<Vec<_>>();
    if names(got) != names(want) {
        return Some(format!("datasets {:?}, want {:?}", names(got), names(want)));
    }
    for (g, w) in got.datasets.iter().zip(&want.datasets) {
        if g.props != w.props {
            return Some(format!("{}: props {}, want {}", g.name, g.props, w.props));
        }
        let snaps = |d: &DatasetPrint| {
            d.snapshots.iter().map(|s| (s.name.clone(), s.guid, s.creation_txg)).collect::<Vec<_>>()
        };
        if snaps(g) != snaps(w) {
            return Some(format!("{}: snapshots {:?}, want {:?}", g.name, snaps(g), snaps(w)));
        }
        let pairs = g.snapshots.iter().map(|s| (&s.name, s.manifest));
        let wants = w.snapshots.iter().map(|s| s.manifest);
        let heads = std::iter::once((&g.name, g.head)).zip(std::iter::once(w.head));
        for ((name, gid), wid) in pairs.zip(wants).chain(heads) {
            if gid != wid {
                return Some(format!(
                    "{name}: {}",
                    manifest_diff(store.text(gid), store.text(wid))
                ));
            }
        }
    }
    None
}

/// The first differing manifest line.
fn manifest_diff(got: &str, want: &str) -> String {
    let (mut g, mut w) = (got.lines(), want.lines());
    loop {
        match (g.next(), w.next()) {
            (Some(a), Some(b)) if a == b => continue,
            (a, b) => {
                let show = |l: Option<&str>| l.map_or("(end)".to_owned(), str::to_owned);
                return format!("manifest line {:?}, want {:?}", show(a), show(b));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The model's manifests are `manifest_of_model`'s, header line stripped, and equal the
    /// engine's of a built scenario; only the engine's readings enter the root cache.
    #[test]
    fn model_fingerprint_matches_the_engine_and_stays_out_of_the_root_cache() {
        let mut sc = golden::build("chain").expect("builds");
        let (mut store, mut lines) = (ManifestStore::default(), ModelManifests::default());
        let reference = model_fingerprint(&mut sc.spa, &sc.model, &mut store, &mut lines)
            .expect("model fingerprint");
        assert!(store.by_root.is_empty(), "a model manifest entered the root cache");
        assert_eq!(store.computed, 0, "nothing read from the engine");
        for d in &reference.datasets {
            let names = d.snapshots.iter().map(|s| (&s.name, s.manifest));
            for (name, id) in names.chain(std::iter::once((&d.name, d.head))) {
                let text = oracle::manifest::manifest_of_model(&sc.model, name).expect("listed");
                assert_eq!(text.split_once('\n').expect("header").1, store.text(id), "{name}");
            }
        }
        let engine = fingerprint(&mut sc.spa, &mut store, true).expect("engine fingerprint");
        assert!(!store.by_root.is_empty());
        assert_eq!(first_difference(&store, &engine, &reference), None);
        assert_eq!(engine, reference);
    }
}
