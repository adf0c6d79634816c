//! Send and receive as an operation (`Op::SendRecv`): a snapshot is sent (full, incremental
//! from an older snapshot as `zfs send -i`, or a chain of incrementals as `zfs send -I`) and
//! received into a filesystem of the same pool or of a second pool, and every outcome is
//! held to the model: which receives ZFS refuses and why (`Model::recv`), that a received
//! snapshot holds exactly what the model's source snapshot holds (its manifest, computed by
//! the model, never read back from the sender), that sending it again from the target gives
//! the same records (`resend::same_records`), and that a damaged stream (cut, or a flipped
//! byte) is refused and changes nothing. OpenZFS counterparts: `zfs send`/`zfs receive`,
//! dmu_send.c, dmu_recv.c. Used by `op.rs` (same pool), sim's run loop (a backup pool on its
//! own simulated disk) and the fuzz harnesses.

use std::collections::BTreeMap;

use engine::dmu::recv::RecvOptions;
use engine::dmu::send::{SendError, SendOptions};
use engine::stream::ByteOrder;
use engine::{RecvError, Spa};

use crate::conformance::check_objset;
use crate::model::{as_received, Model, RecvMaxblkids, RecvRefusal};
use crate::op::{resolve, Divergence, Target};
use crate::resend::same_records;
use crate::space::SpaceNeed;

/// `-e`: embedded blocks as WRITE_EMBEDDED.
pub const SEND_FLAG_EMBED: u8 = 1;
/// `-c`: compressed blocks as stored.
pub const SEND_FLAG_COMPRESSED: u8 = 2;
/// The stream in big-endian order (a sender of the other byte order).
pub const SEND_FLAG_BIG_ENDIAN: u8 = 4;
/// `zfs receive -F`: roll the target back to the stream's source first.
pub const SEND_FLAG_FORCE: u8 = 8;
/// `zfs send -I`: every intermediate snapshot, one incremental each.
pub const SEND_FLAG_CHAIN: u8 = 16;
/// Destroy the target filesystem before a full receive (a fresh backup).
pub const SEND_FLAG_REPLACE: u8 = 32;
/// Receive into the second pool when the runner has one (else the same pool).
pub const SEND_FLAG_REMOTE: u8 = 64;
/// `from` value: incremental from the target's newest snapshot (the usual backup step).
pub const SEND_FROM_TARGET_NEWEST: u8 = u8::MAX;
/// Prefix of the filesystems that receives create in the sending pool.
pub const RECV_SAME_POOL_PREFIX: &str = "r-";

/// `flags` without the combinations of a known, filed engine bug: big-endian streams with
/// embedded or compressed payloads (oracle/tests/engine_bugs.rs,
/// `big_endian_embedded_payloads`). Every generator of `Op::SendRecv` applies it, so the
/// exception lives in one place; remove it with the fix.
#[must_use]
pub fn without_known_bugs(flags: u8) -> u8 {
    if flags & SEND_FLAG_BIG_ENDIAN != 0 {
        flags & !(SEND_FLAG_EMBED | SEND_FLAG_COMPRESSED)
    } else {
        flags
    }
}

/// What one `Op::SendRecv` did.
#[derive(Clone, Debug, Default)]
pub struct SendRecvReport {
    /// Streams sent.
    pub sent: u64,
    /// Streams received (each checked against the model and re-sent).
    pub received: u64,
    /// Streams refused as the model said they must be (a refused receive changes nothing).
    pub refused: u64,
    /// Damaged streams (cut, or a flipped byte) refused.
    pub damaged_refused: u64,
    /// Errors the engine returned because of disk damage (lenient runners only).
    pub detections: u64,
    /// Receives refused for space, as the target model's space bound allows.
    pub space_refused: u64,
    /// Into another pool: its model after each receive, in order (a chain receives several
    /// streams, and a crash between two of them finds the state after the first).
    pub states: Vec<Model>,
}

/// The receiving side: the sending pool itself, or another pool with its own model.
pub enum Dest<'a> {
    /// Receive into `pool/r-<flattened source name>` of the sending pool.
    Same,
    /// Receive into `<pool>/<flattened source name>` of another pool.
    Other(&'a mut Spa, &'a mut Model),
}

/// The fields of `Op::SendRecv`.
#[derive(Clone, Copy, Debug)]
pub struct SendRecvArgs<'a> {
    /// The snapshot to send.
    pub snap: &'a Target,
    /// 0: full; `SEND_FROM_TARGET_NEWEST`; else the k-th older snapshot of its filesystem.
    pub from: u8,
    /// `SEND_FLAG_*`.
    pub flags: u8,
    /// 0: intact; else the first stream is damaged at `damage % len` (cut there if the top
    /// bit is set, else one byte flipped there).
    pub damage: u16,
    /// Disk damage is possible: read and write errors are detections, not violations.
    pub lenient: bool,
}

/// The target filesystem for source filesystem `fs`.
#[must_use]
pub fn target_fs(fs: &str, dest_pool: &str, same: bool) -> String {
    let flat = fs.replace('/', ".");
    if same {
        format!("{dest_pool}/{RECV_SAME_POOL_PREFIX}{flat}")
    } else {
        format!("{dest_pool}/{flat}")
    }
}

fn send_options(flags: u8) -> SendOptions {
    SendOptions {
        embed: flags & SEND_FLAG_EMBED != 0,
        compressed: flags & SEND_FLAG_COMPRESSED != 0,
        byte_order: if flags & SEND_FLAG_BIG_ENDIAN != 0 {
            ByteOrder::Big
        } else {
            ByteOrder::Little
        },
    }
}

/// The refusal a receive error means, if it is one `Model::recv` predicts.
fn refusal_of(e: &RecvError) -> Option<RecvRefusal> {
    Some(match e {
        RecvError::NoTarget(_) => RecvRefusal::NoTarget,
        RecvError::Exists(_) => RecvRefusal::Exists,
        RecvError::NoSuchFromSnap(_) => RecvRefusal::NoSuchFromSnap,
        RecvError::TargetModified(_) => RecvRefusal::TargetModified,
        RecvError::Invalid { record: 0, drr_type: "BEGIN", .. } => RecvRefusal::InvalidName,
        _ => return None,
    })
}

/// A receive error disk damage explains (lenient runners): the receive failed and the
/// target must be unchanged. (A refusal for space is judged by the space bound instead.)
fn damage_error(e: &RecvError) -> bool {
    matches!(e, RecvError::Pool(_))
}

/// The source snapshot pairs to send: `(from, to)` full names, oldest first.
fn plan(model: &Model, dest: &Model, to: &str, a: &SendRecvArgs<'_>, tfs: &str) -> Vec<Pairs> {
    let (fs, _) = to.split_once('@').expect("resolved snapshot names hold '@'");
    let snaps = model.snapshots(fs).expect("a listed snapshot's filesystem exists");
    let at = snaps.iter().position(|s| s == to).expect("listed");
    let from = match a.from {
        0 => None,
        SEND_FROM_TARGET_NEWEST => {
            // The source snapshot whose identity the target's newest snapshot has.
            let newest = dest.snapshots(tfs).ok().and_then(|v| v.last().cloned());
            let serial = newest.and_then(|n| dest.snapshot_serial(&n));
            snaps[..at].iter().position(|s| model.snapshot_serial(s) == serial && serial.is_some())
        }
        k if at > 0 => Some(at - 1 - (usize::from(k) - 1) % at),
        _ => None,
    };
    match from {
        None => vec![(None, at)],
        Some(f) if a.flags & SEND_FLAG_CHAIN != 0 => (f..at).map(|i| (Some(i), i + 1)).collect(),
        Some(f) => vec![(Some(f), at)],
    }
    .into_iter()
    .map(|(f, t)| (f.map(|i| snaps[i].clone()), snaps[t].clone()))
    .collect()
}

type Pairs = (Option<String>, String);

fn damaged(stream: &[u8], damage: u16) -> Vec<u8> {
    assert!(!stream.is_empty(), "a sent stream holds at least BEGIN and END");
    let at = usize::from(damage & 0x7fff) * 997 % stream.len();
    let mut out = stream.to_vec();
    if damage & 0x8000 != 0 {
        out.truncate(at);
    } else {
        out[at] ^= 1 << (damage % 8);
    }
    out
}

/// Run one `Op::SendRecv`: see the module header.
///
/// # Errors
/// A `Divergence`: an outcome the model does not allow, a received snapshot that differs
/// from the model's, a re-send that says other records, or a damaged stream accepted.
pub fn send_recv(
    a: &SendRecvArgs<'_>,
    src: &mut Spa,
    model: &mut Model,
    mut dest: Dest<'_>,
) -> Result<SendRecvReport, Divergence> {
    let mut report = SendRecvReport::default();
    let to = resolve(model, a.snap);
    let opts = send_options(a.flags);
    if model.snapshot_serial(&to).is_none() {
        // Nothing to send: the engine must refuse too.
        let r = src.send(&to, None, &opts, &mut std::io::sink());
        return match r {
            Err(SendError::BadSnapshot(_)) => Ok(report),
            other => Err(Divergence::new(format!("send {to} (no such snapshot): {other:?}"))),
        };
    }
    let src_fs = to.split_once('@').expect("snapshot").0.to_owned();
    let same = matches!(dest, Dest::Same);
    let dest_pool = match &dest {
        Dest::Same => model.name().to_owned(),
        Dest::Other(_, m) => m.name().to_owned(),
    };
    let tfs = target_fs(&src_fs, &dest_pool, same);
    let force = a.flags & SEND_FLAG_FORCE != 0;
    let lz4 = a.flags & (SEND_FLAG_EMBED | SEND_FLAG_COMPRESSED) != 0;
    if a.flags & SEND_FLAG_REPLACE != 0 && a.from == 0 {
        let (spa, m) = match &mut dest {
            Dest::Same => (&mut *src, &mut *model),
            Dest::Other(s, m) => (&mut **s, &mut **m),
        };
        let fits = m.space_violation(spa.device_bytes(), SpaceNeed::default());
        let engine = spa.dataset_destroy(&tfs).map_err(|e| crate::model::kind_of_dsl(&e));
        if engine == Err(crate::model::ErrKind::NoSpace) {
            if let Some(f) = fits {
                return Err(Divergence::new(format!("destroy {tfs} before a full receive: {f}")));
            }
        }
        let damage = [crate::model::ErrKind::Io, crate::model::ErrKind::Suspended];
        if a.lenient && engine.is_err_and(|k| damage.contains(&k)) {
            report.detections += 1;
            return Ok(report);
        }
        if engine != Err(crate::model::ErrKind::NoSpace) {
            let want = m.dataset_destroy(&tfs);
            if engine != want {
                return Err(Divergence::new(format!(
                    "destroy {tfs} before a full receive: engine {engine:?}, model {want:?}"
                )));
            }
        }
    }
    let pairs = {
        let dm: &Model = match &dest {
            Dest::Same => model,
            Dest::Other(_, m) => m,
        };
        plan(model, dm, &to, a, &tfs)
    };
    for (i, (from, to)) in pairs.iter().enumerate() {
        let mut stream = Vec::new();
        match src.send(to, from.as_deref(), &opts, &mut stream) {
            Ok(_) => report.sent += 1,
            Err(SendError::Zio(_)) if a.lenient => {
                report.detections += 1;
                return Ok(report);
            }
            Err(e) => {
                return Err(Divergence::new(format!("send {to} from {from:?}: engine {e}")));
            }
        }
        let sender_compresses = model.compresses(&src_fs);
        let objset = as_received(model.objset(to).expect("listed snapshot"), sender_compresses);
        let source_maxblkids: BTreeMap<u64, u64> = model
            .objset(to)
            .expect("listed snapshot")
            .iter()
            .map(|(&o, ob)| (o, ob.maxblkid))
            .collect();
        let serial = model.snapshot_serial(to).expect("listed snapshot");
        let from_serial = from.as_deref().map(|f| model.snapshot_serial(f).expect("listed"));
        let short = to.split_once('@').expect("snapshot").1.to_owned();
        let (spa, m) = match &mut dest {
            Dest::Same => (&mut *src, &mut *model),
            Dest::Other(s, m) => (&mut **s, &mut **m),
        };
        let what = format!("receive {to} (from {from:?}) into {tfs}");
        if i == 0 && a.damage != 0 {
            let bad = damaged(&stream, a.damage);
            // What a damaged stream dirties before it is refused is not the model's to know.
            m.space_unknown_dirty();
            match spa.recv(&tfs, &mut bad.as_slice(), &RecvOptions { force }) {
                Ok(o) => {
                    return Err(Divergence::new(format!(
                        "{what}: a stream damaged ({:#x}) was accepted as {}",
                        a.damage, o.snapshot
                    )))
                }
                Err(e) if a.lenient && damage_error(&e) => report.detections += 1,
                Err(_) => report.damaged_refused += 1,
            }
            return Ok(report);
        }
        let objects: Vec<u64> = objset.keys().copied().collect();
        let need = m.recv_need(&objset);
        let fits = m.space_violation(spa.device_bytes(), need);
        // A receive dirties what it applies even when it fails later (and changes nothing).
        m.space_charge(need.dirty);
        let engine = spa.recv(&tfs, &mut stream.as_slice(), &RecvOptions { force });
        let modified = matches!(engine, Err(RecvError::TargetModified(_)));
        // The model's side of the same receive (it changes the model only if it accepts).
        let model_recv = |m: &mut Model, observed: BTreeMap<u64, u64>| {
            let maxblkids = RecvMaxblkids { source: source_maxblkids, observed };
            m.recv(&tfs, &short, objset, serial, from_serial, force, modified, lz4, &maxblkids)
        };
        match engine {
            Err(RecvError::NoSpace) => {
                return match fits {
                    Some(f) => Err(Divergence::new(format!("{what}: {f}"))),
                    None => {
                        report.space_refused += 1;
                        Ok(report)
                    }
                };
            }
            Err(e) if a.lenient && damage_error(&e) => {
                report.detections += 1;
                return Ok(report);
            }
            Err(e) => {
                let want = model_recv(m, BTreeMap::new());
                if want.is_ok() || want.err() != refusal_of(&e) {
                    return Err(Divergence::new(format!("{what}: engine {e}, model {want:?}")));
                }
                report.refused += 1;
                return Ok(report);
            }
            Ok(out) => {
                let observed = received_maxblkids(spa, &out.snapshot, &objects);
                let want = model_recv(m, observed);
                if let Err(r) = want {
                    return Err(Divergence::new(format!(
                        "{what}: engine received {}, model refuses ({r:?})",
                        out.snapshot
                    )));
                }
                report.received += 1;
                if !same {
                    report.states.push(m.clone());
                }
                let got = format!("{tfs}@{short}");
                if out.snapshot != got {
                    return Err(Divergence::new(format!("{what}: received as {}", out.snapshot)));
                }
                match check_received(spa, m, &got, &what) {
                    // A block of the received snapshot damaged on the disk: detected.
                    Err(d) if a.lenient && d.what.ends_with("(Io)") => {
                        report.detections += 1;
                        return Ok(report);
                    }
                    r => r?,
                }
                let resent_from = from
                    .as_deref()
                    .map(|f| format!("{tfs}@{}", f.split_once('@').expect("snapshot").1));
                let mut resent = Vec::new();
                match spa.send(&got, resent_from.as_deref(), &opts, &mut resent) {
                    Ok(_) => {}
                    Err(SendError::Zio(_)) if a.lenient => {
                        report.detections += 1;
                        return Ok(report);
                    }
                    Err(e) => return Err(Divergence::new(format!("{what}: re-send: {e}"))),
                }
                same_records(&stream, &resent, from.is_some())
                    .map_err(|e| Divergence::new(format!("{what}: {e}")))?;
            }
        }
    }
    Ok(report)
}

/// The received snapshot `snap` and its filesystem's head hold what the model says (every
/// object's type, block size, maxblkid, bonus and bytes: `conformance::check_objset`).
fn check_received(spa: &mut Spa, m: &Model, snap: &str, what: &str) -> Result<(), Divergence> {
    let fs = snap.split_once('@').map_or(snap, |(fs, _)| fs);
    for name in [snap, fs] {
        check_objset(spa, m, name)
            .map_err(|d| Divergence::new(format!("{what}: received {name}: {}", d.what)))?;
    }
    Ok(())
}

/// The maxblkid the engine gives each of `objects` in received snapshot `snap` (objects it
/// cannot describe are left out; the content check reports them).
fn received_maxblkids(spa: &mut Spa, snap: &str, objects: &[u64]) -> BTreeMap<u64, u64> {
    objects.iter().filter_map(|&o| spa.object_info(snap, o).ok().map(|i| (o, i.maxblkid))).collect()
}
