//! Cost of one pick on a large torrent: 100,000 pieces of 256 KiB (16 blocks), 200 peers with
//! random half-full bitfields, rarest-first mode (a few pieces already verified).

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use swarm::engine::picker::Picker;
use swarm::layout::Layout;
use swarm::types::{Bitfield, BlockRef, BLOCK_SIZE};

const PIECES: u32 = 100_000;
const PEERS: usize = 200;
const PIECE_LEN: u32 = 16 * BLOCK_SIZE;

fn setup(max_partials: usize) -> (Picker, Vec<Bitfield>, StdRng) {
    let layout = Layout::new(PIECE_LEN, &[PIECES as u64 * PIECE_LEN as u64]).unwrap();
    let mut rng = StdRng::seed_from_u64(42);
    let mut have = Bitfield::new(PIECES);
    for p in 0..8 {
        have.set(p * 1000);
    }
    let mut picker = Picker::new(&layout, &have, max_partials);
    let peers: Vec<Bitfield> = (0..PEERS)
        .map(|_| {
            let mut b = Bitfield::new(PIECES);
            for p in 0..PIECES {
                if rng.gen_bool(0.5) {
                    b.set(p);
                }
            }
            b
        })
        .collect();
    for b in &peers {
        picker.add_bitfield(b);
    }
    (picker, peers, rng)
}

fn never(_: &BlockRef) -> bool {
    false
}

/// One pick of up to `n` blocks for a peer, then every request dropped again, so the
/// picker is back where it was for the next iteration.
fn pick_and_drop(
    picker: &mut Picker,
    peer: &Bitfield,
    n: usize,
    rng: &mut StdRng,
    out: &mut Vec<BlockRef>,
) -> usize {
    out.clear();
    picker.pick(peer, n, rng, &never, out);
    for b in out.iter() {
        picker.on_request_dropped(b);
    }
    out.len()
}

fn bench(c: &mut Criterion) {
    let (mut picker, peers, mut rng) = setup(64);
    let mut out = Vec::with_capacity(64);
    let mut i = 0;
    c.bench_function("pick 1 + drop (100k pieces, 200 peers)", |bch| {
        bch.iter(|| {
            i = (i + 1) % PEERS;
            black_box(pick_and_drop(&mut picker, &peers[i], 1, &mut rng, &mut out))
        })
    });

    let (mut picker, peers, mut rng) = setup(64);
    c.bench_function("pick queue of 64 + drop (100k pieces, 200 peers)", |bch| {
        bch.iter(|| {
            i = (i + 1) % PEERS;
            black_box(pick_and_drop(
                &mut picker,
                &peers[i],
                64,
                &mut rng,
                &mut out,
            ))
        })
    });

    // Steady state: 63 partials with every block requested stay in the way; each pick
    // scans them and then starts the 64th piece.
    let (mut picker, peers, mut rng) = setup(64);
    let mut held = Vec::new();
    for k in 0..63 {
        picker.pick(&peers[k % PEERS], 16, &mut rng, &never, &mut held);
    }
    c.bench_function("pick 1 + drop past 63 busy partials", |bch| {
        bch.iter(|| {
            i = (i + 1) % PEERS;
            black_box(pick_and_drop(&mut picker, &peers[i], 1, &mut rng, &mut out))
        })
    });

    let (mut picker, _, _) = setup(64);
    let mut p = 0u32;
    c.bench_function("add_have + remove_have", |bch| {
        bch.iter(|| {
            p = (p + 7919) % PIECES;
            picker.add_have(p);
            picker.remove_have(p);
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
