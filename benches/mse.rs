//! What MSE/PE costs: RC4 throughput over 16 KiB blocks (the payload stream of an encrypted
//! connection, one direction), one Diffie-Hellman exchange (both sides' key generation and
//! shared secret: the CPU price of every encrypted connection), and the whole handshake of
//! both state machines in memory.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use rand::rngs::StdRng;
use rand::SeedableRng;
use swarm::types::InfoHash;
use swarm::wire::dh::KeyPair;
use swarm::wire::mse::{req2_hash, CryptoMethods, Initiator, Responder};
use swarm::wire::rc4::Rc4;

const BLOCK: usize = 16 * 1024;

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("mse");

    g.throughput(Throughput::Bytes(BLOCK as u64));
    let mut rc4 = Rc4::new_drop1024(b"0123456789abcdefghij");
    let mut block = vec![0x5au8; BLOCK];
    g.bench_function("rc4_16k", |b| {
        b.iter(|| {
            rc4.apply(&mut block);
            black_box(&block);
        })
    });

    g.throughput(Throughput::Elements(1));
    let mut rng = StdRng::seed_from_u64(1);
    g.bench_function("dh_exchange", |b| {
        b.iter(|| {
            let a = KeyPair::generate(&mut rng);
            let bb = KeyPair::generate(&mut rng);
            let s1 = a.shared_secret(bb.public());
            let s2 = bb.shared_secret(a.public());
            assert_eq!(s1, s2);
            black_box(s1)
        })
    });

    let ih = InfoHash([7; 20]);
    g.bench_function("handshake_both_sides", |b| {
        b.iter(|| {
            let mut a = Initiator::new(ih, CryptoMethods::BOTH, vec![0; 68], &mut rng).unwrap();
            let mut r = Responder::new(CryptoMethods::BOTH, &mut rng);
            let lookup = |h: &[u8; 20]| (*h == req2_hash(&ih)).then_some(ih);
            // Ya+PadA, Yb+PadB, step 3, step 4: four flights.
            r.receive_with(&a.take_output(), lookup).unwrap();
            a.receive(&r.take_output()).unwrap();
            r.receive_with(&a.take_output(), lookup).unwrap();
            a.receive(&r.take_output()).unwrap();
            assert!(a.is_done() && r.is_done());
            black_box(a.finish())
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
