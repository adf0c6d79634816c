//! The model's receive: which receives ZFS refuses before applying a record (and why), what
//! a received snapshot holds (`as_received`), and the maxblkid an incremental leaves each
//! object it keeps. OpenZFS: dmu_recv.c (dmu_recv_begin_check,
//! recv_begin_check_existing_impl, receive_object, receive_free). Part of `model`.

use super::*;

/// What fixes the maxblkid of the objects an incremental receive keeps: the sender's
/// (`source`), and the receiver's after the receive (`observed`, read from the engine, used
/// only to choose inside the range the model allows; see `incremental_maxblkids`).
#[derive(Clone, Debug, Default)]
pub struct RecvMaxblkids {
    /// Each object's maxblkid in the sent snapshot.
    pub source: BTreeMap<u64, u64>,
    /// Each object's maxblkid in the received snapshot, as the engine has it.
    pub observed: BTreeMap<u64, u64>,
}

/// An incremental receive's objects: the stream's contents (`as_received`), with the
/// maxblkid each object of the target keeps. A receive raises maxblkid with its WRITEs and
/// lowers it with every FREE that reaches past it (dnode_sync_free_range: to the block
/// before the freed range). The FREE to the end that follows each sent object starts past
/// the sender's maxblkid, so the bound is `m`: what the target had, raised by the writes,
/// at most the sender's maxblkid. When the sender's blocks just below `m` are holes, the
/// FREE records of those holes (sent only for holes born after the source snapshot, which
/// the model does not track) may lower it further, down to the last block holding data,
/// `k`: the value the engine reports is followed when it lies in `k..=m` (any other value
/// is reported as `m`, a divergence). An object the target held with another block size is
/// freed and allocated anew, as in a full receive (`receive_object`); otherwise its
/// contents stay, also when the new bonus leaves room for fewer block pointers than the
/// target's copy has (OpenZFS frees the object then and loses the blocks the stream does
/// not carry; the engine keeps them: `incremental_receive_keeps_data_when_the_bonus_grows_back`).
fn incremental_maxblkids(
    before: &ModelObjset,
    mut objset: ModelObjset,
    maxblkids: &RecvMaxblkids,
) -> ModelObjset {
    for (obj, ob) in &mut objset {
        let Some(old) = before.get(obj) else { continue };
        if old.blksz != ob.blksz {
            continue;
        }
        let source = maxblkids.source.get(obj).copied().unwrap_or(ob.maxblkid);
        let bound = ob.maxblkid.max(old.maxblkid).min(source.max(ob.maxblkid));
        let last_data = ob.blocks.range(..=bound).next_back().map_or(0, |(&b, _)| b);
        ob.maxblkid = match maxblkids.observed.get(obj) {
            Some(&seen) if (last_data..=bound).contains(&seen) => seen,
            _ => bound,
        };
    }
    objset
}

/// Why a receive is refused before any record is applied (`Model::recv`), as ZFS says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecvRefusal {
    /// Incremental into a filesystem that does not exist, or a full stream whose parent
    /// does not exist (ENOENT).
    NoTarget,
    /// Full stream into an existing filesystem, or the snapshot exists (EEXIST).
    Exists,
    /// The target holds no snapshot with the stream's source identity (ENODEV).
    NoSuchFromSnap,
    /// The source is not the target's newest snapshot, or the head changed since (ETXTBSY),
    /// without `force`.
    TargetModified,
    /// A malformed target name.
    InvalidName,
    /// A named count limit.
    Limit,
}

/// What a receive of a (non-raw) stream of `os` holds: its written blocks (without blocks
/// of zeros if the sender compresses: ZFS stores those as holes, and holes are not sent),
/// each object's maxblkid lowered to its last such block (the stream carries none), and
/// the receiver's default indirect block size (the stream's is used by raw receives only,
/// as `receive_object` does), and as many block pointers as the record's bonus length
/// leaves room for (`dnode_allocate`).
#[must_use]
pub fn as_received(os: &ModelObjset, sender_compresses: bool) -> ModelObjset {
    os.iter()
        .map(|(&obj, ob)| {
            let mut ob = ob.clone();
            if sender_compresses {
                ob.blocks.retain(|_, b| b.iter().any(|&x| x != 0));
            }
            ob.maxblkid = ob.blocks.keys().next_back().copied().unwrap_or(0);
            ob.indblkshift = INDBLKSHIFT_DEFAULT;
            ob.nblkptr = nblkptr_for(ob.bonus.len());
            (obj, ob)
        })
        .collect()
}

impl Model {
    /// Receive a stream of snapshot contents `objset` (as `as_received` gives it) with identity
    /// `serial` as `fs@snap`: full (`from` = None) into a new filesystem, or incremental
    /// from the snapshot with identity `from` of `fs`, as `dmu_recv_begin_check` and
    /// `recv_begin_check_existing_impl` decide. `force` (`-F`) first rolls the target back
    /// to that snapshot, destroying later ones. `modified`: the answer to "was the head
    /// modified" when `head_state` is `Unknown` (ignored otherwise). `compress`: a new
    /// filesystem compresses its blocks (the engine does when the stream has embedded or
    /// compressed records).
    ///
    /// # Errors
    /// The refusal; nothing changes then.
    #[allow(clippy::too_many_arguments)]
    pub fn recv(
        &mut self,
        fs: &str,
        snap: &str,
        objset: ModelObjset,
        serial: u64,
        from: Option<u64>,
        force: bool,
        modified: bool,
        compress: bool,
        maxblkids: &RecvMaxblkids,
    ) -> Result<(), RecvRefusal> {
        self.check_fs(fs).map_err(|_| RecvRefusal::InvalidName)?;
        self.split_snapshot(&format!("{fs}@{snap}")).map_err(|_| RecvRefusal::InvalidName)?;
        let state = self.head_state(fs);
        // A receive rewrites the head: against an older snapshot it counts as modified.
        let snap_new = ModelSnap {
            name: snap.to_owned(),
            objset: objset.clone(),
            serial,
            head_touched_before: true,
        };
        let Some(ds) = self.datasets.get_mut(fs) else {
            if from.is_some() {
                return Err(RecvRefusal::NoTarget);
            }
            if let Some((parent, _)) = fs.rsplit_once('/') {
                if !self.datasets.contains_key(parent) {
                    return Err(RecvRefusal::NoTarget);
                }
            }
            if self.datasets.len() >= MODEL_DATASETS_MAX {
                return Err(RecvRefusal::Limit);
            }
            let ds = ModelDataset {
                head: objset,
                snapshots: vec![snap_new],
                received: true,
                compress,
                touched: false,
            };
            self.datasets.insert(fs.to_owned(), ds);
            let need = self.space.recv_need(&self.datasets[fs].head);
            self.space.charge(need.dirty, 0);
            self.observe_space();
            return Ok(());
        };
        let from = from.ok_or(RecvRefusal::Exists)?;
        let at = ds.snapshots.iter().position(|s| s.serial == from);
        let at = at.ok_or(RecvRefusal::NoSuchFromSnap)?;
        let newest = at + 1 == ds.snapshots.len();
        let head_modified = match state {
            HeadState::Clean => false,
            HeadState::Modified => true,
            HeadState::Unknown => modified,
        };
        if (!newest || head_modified) && !force {
            return Err(RecvRefusal::TargetModified);
        }
        if ds.snapshots[..=at].iter().any(|s| s.name == snap)
            || (newest && ds.snapshots.iter().any(|s| s.name == snap))
        {
            return Err(RecvRefusal::Exists);
        }
        if at + 1 >= MODEL_SNAPSHOTS_MAX {
            return Err(RecvRefusal::Limit);
        }
        let objset = incremental_maxblkids(&ds.snapshots[at].objset, objset, maxblkids);
        let snap_new = ModelSnap { objset: objset.clone(), ..snap_new };
        ds.snapshots.truncate(at + 1);
        ds.snapshots.push(snap_new);
        ds.head = objset;
        ds.received = true;
        ds.touched = false;
        let need = self.space.recv_need(&self.datasets[fs].head);
        self.space.charge(need.dirty, 0);
        self.observe_space();
        Ok(())
    }
}
