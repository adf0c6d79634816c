//! Golden snapshots: the `zstream dump -v` text of every stream of every scenario (plain
//! `zfs send` options), reviewed as code with `cargo insta review`. A change in traversal,
//! record generation or the wire format shows up here as a diff. Each dump must also be
//! free of checksum complaints (§5.3) and each stream must follow the sender rules of §3.

#[macro_use]
mod common;

use engine::dmu::send::SendOptions;
use golden::check::{decode, dump_v, freeobjects_violations, meta_maxobj, shape_violations};

fn snapshot_dumps(name: &str) {
    let mut sc = golden::build(name).expect("build");
    let streams = golden::streams(&mut sc, &SendOptions::default());
    for named in streams.named(&sc) {
        let (stem, bytes) = (named.stem.as_str(), named.bytes);
        let dump = dump_v(bytes);
        assert!(dump.complaints().is_empty(), "{name} {stem}: {:?}", dump.complaints());
        assert!(dump.stderr.is_empty(), "{name} {stem}: stderr {:?}", dump.stderr);
        assert_eq!(dump.status, 0, "{name} {stem}: dump exit status");
        let records = decode(bytes).expect("decode");
        assert_eq!(shape_violations(&records), Vec::<String>::new(), "{name} {stem}");
        let tosnap = sc.snapshots[named.to].clone();
        let maxobj = meta_maxobj(&mut sc.spa, &tosnap).expect("meta-dnode size");
        assert_eq!(freeobjects_violations(&records, maxobj), Vec::<String>::new(), "{name} {stem}");
        insta::assert_snapshot!(format!("{name}-{stem}"), dump.stdout);
    }
}

for_every_scenario!(snapshot_dumps);
