//! Fuzz harnesses: one function per cargo-fuzz target, shared with the stable replay test.
//! (In progress: issue 5.)
