//! Tests of the tracker client: fixtures and properties of the pure formats, and loopback
//! tests of the clients and the announcer against tiny fake trackers.

mod announcer;
mod client;
mod fake;
mod formats;
