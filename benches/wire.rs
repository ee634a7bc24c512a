//! Wire codec throughput: decoding and encoding a stream of 16 KiB Piece messages, the
//! hot path of a download, plus small Request messages. Criterion reports time per
//! message (throughput in elements).

use bytes::{Bytes, BytesMut};
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use swarm::types::{BlockRef, BLOCK_SIZE};
use swarm::wire::{encode, piece_header, Decoder, Message};

const PIECES: u32 = 10_000;
const MSGS: usize = 256; // 4 MiB of blocks per iteration

fn pieces() -> Vec<Message> {
    let data = Bytes::from(vec![0x5a; BLOCK_SIZE as usize]);
    (0..MSGS)
        .map(|i| Message::Piece {
            piece: i as u32 % PIECES,
            offset: 0,
            data: data.clone(),
        })
        .collect()
}

fn requests() -> Vec<Message> {
    (0..MSGS)
        .map(|i| {
            Message::Request(BlockRef {
                piece: i as u32 % PIECES,
                offset: (i as u32 % 16) * BLOCK_SIZE,
                len: BLOCK_SIZE,
            })
        })
        .collect()
}

fn encoded(msgs: &[Message]) -> BytesMut {
    let mut out = BytesMut::new();
    for m in msgs {
        encode(m, &mut out);
    }
    out
}

fn decode_all(wire: &mut BytesMut) -> usize {
    let mut dec = Decoder::new(PIECES);
    let mut n = 0;
    while let Some(m) = dec.decode(wire).expect("valid stream") {
        black_box(&m);
        n += 1;
    }
    n
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("wire");
    g.throughput(Throughput::Elements(MSGS as u64));

    let piece_wire = encoded(&pieces());
    g.bench_function("decode_piece_16k", |b| {
        // The clone (a 4 MiB copy) is setup, not measured.
        b.iter_batched(
            || piece_wire.clone(),
            |mut wire| decode_all(&mut wire),
            BatchSize::LargeInput,
        )
    });

    let request_wire = encoded(&requests());
    g.bench_function("decode_request", |b| {
        b.iter_batched(
            || request_wire.clone(),
            |mut wire| decode_all(&mut wire),
            BatchSize::SmallInput,
        )
    });

    let msgs = pieces();
    let mut out = BytesMut::with_capacity(piece_wire.len());
    g.bench_function("encode_piece_16k", |b| {
        b.iter(|| {
            out.clear();
            for m in &msgs {
                encode(black_box(m), &mut out);
            }
            black_box(out.len())
        })
    });

    g.bench_function("piece_header_only", |b| {
        b.iter(|| {
            let mut acc = 0u8;
            for i in 0..MSGS as u32 {
                acc ^= piece_header(black_box(i), 0, BLOCK_SIZE)[12];
            }
            acc
        })
    });

    let reqs = requests();
    let mut out = BytesMut::with_capacity(request_wire.len());
    g.bench_function("encode_request", |b| {
        b.iter(|| {
            out.clear();
            for m in &reqs {
                encode(black_box(m), &mut out);
            }
            black_box(out.len())
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
