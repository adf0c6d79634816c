//! The DMU: object sets, objects and their contents, traversal, send and receive.
//! OpenZFS: dmu.c, dmu_objset.c, dmu_object.c, dmu_traverse.c, dmu_send.c, dmu_recv.c.

pub mod object;
pub mod objset;
pub mod ot;
pub mod recv;
pub mod send;
pub mod traverse;

pub use objset::{ObjectInfo, Objset};
