//! Tokio at the edge: the driver task that owns the engine, one task per connection, and
//! the listener. These carry bytes and events; every decision is the engine's.

mod budget;
pub mod conn;
pub mod crypt;
mod dial;
pub mod driver;
pub mod half_open;
pub mod limit;
pub mod reader;
