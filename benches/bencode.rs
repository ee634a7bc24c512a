//! Parsing what peers and trackers send and what users open: a whole `.torrent` (both
//! passes of `Metainfo::from_bytes`), the zero-copy decoder on its own, and a tracker
//! reply with a dictionary peer list. Criterion reports time per parse.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use swarm::bencode::{self, Value};
use swarm::metainfo::Metainfo;

/// A single-file torrent of `pieces` pieces of 256 KiB, with a tracker list.
fn torrent(pieces: usize) -> Vec<u8> {
    let hashes: Vec<u8> = (0..pieces * 20).map(|i| (i * 31 % 251) as u8).collect();
    let info = Value::Dict(vec![
        (&b"length"[..], Value::Int(pieces as i64 * 262_144)),
        (&b"name"[..], Value::Bytes(b"big.bin")),
        (&b"piece length"[..], Value::Int(262_144)),
        (&b"pieces"[..], Value::Bytes(&hashes)),
    ]);
    let tiers = Value::List(vec![
        Value::List(vec![Value::Bytes(b"http://127.0.0.1:6969/announce")]),
        Value::List(vec![Value::Bytes(b"udp://127.0.0.1:6969")]),
    ]);
    bencode::to_vec(&Value::Dict(vec![
        (
            &b"announce"[..],
            Value::Bytes(b"http://127.0.0.1:6969/announce"),
        ),
        (&b"announce-list"[..], tiers),
        (&b"info"[..], info),
    ]))
}

/// A tracker reply listing `n` peers as dictionaries (BEP 3, non-compact).
fn tracker_reply(n: usize) -> Vec<u8> {
    let ids: Vec<[u8; 20]> = (0..n).map(|i| [i as u8; 20]).collect();
    let peers = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            Value::Dict(vec![
                (&b"ip"[..], Value::Bytes(b"127.0.0.1")),
                (&b"peer id"[..], Value::Bytes(id)),
                (&b"port"[..], Value::Int(6881 + i as i64)),
            ])
        })
        .collect();
    bencode::to_vec(&Value::Dict(vec![
        (&b"interval"[..], Value::Int(1800)),
        (&b"peers"[..], Value::List(peers)),
    ]))
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("bencode");
    g.throughput(Throughput::Elements(1));
    for pieces in [4096, 32_768] {
        let t = torrent(pieces);
        g.bench_function(format!("metainfo_{pieces}_pieces"), |b| {
            b.iter(|| Metainfo::from_bytes(black_box(&t)).unwrap())
        });
        g.bench_function(format!("decode_torrent_{pieces}_pieces"), |b| {
            b.iter(|| {
                bencode::decode(black_box(&t))
                    .unwrap()
                    .as_dict()
                    .map(<[_]>::len)
            })
        });
    }
    let reply = tracker_reply(200);
    g.bench_function("decode_tracker_reply_200_peers", |b| {
        b.iter(|| {
            bencode::decode(black_box(&reply))
                .unwrap()
                .as_dict()
                .map(<[_]>::len)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
