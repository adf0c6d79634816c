//! Concurrent simulation under madsim: client tasks and the txg sync task in virtual time.
//! (In progress: issue 4.)
