#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| swarm::fuzz_targets::tracker_udp(data));
