//! criterion benches of `ops::matmul` (the active variant; force one with `EDGENLU_KERNELS`)
//! over the shapes in `edgenlu_kernels::bench::SHAPES`, n = 1 and 16, 1 and 2 threads, with
//! weight-byte throughput; plus the STREAM-style read of a 256 MiB buffer that is the
//! roofline. Kept short (about a minute): `cargo bench -p edgenlu-kernels --bench matmul`.
//! `edgenlu bench kernels` prints the same cases as a table with % of roofline.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use edgenlu_kernels::bench::{pseudo_random, weights, SHAPES};
use edgenlu_kernels::dispatch::set_max_threads;
use edgenlu_kernels::{active_variant, ops, WeightView};
use std::hint::black_box;
use std::time::Duration;

fn matmul(c: &mut Criterion) {
    eprintln!("kernel variant: {}", active_variant().describe());
    let mut g = c.benchmark_group("matmul");
    g.warm_up_time(Duration::from_millis(150))
        .measurement_time(Duration::from_millis(500))
        .sample_size(10);
    for shape in SHAPES {
        let bytes = weights(shape);
        let w = WeightView::new(shape.dtype, shape.rows, shape.cols, &bytes).unwrap();
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        for n in [1, 16] {
            let x = pseudo_random(n * shape.cols, 7);
            let mut out = vec![0f32; n * shape.rows];
            for threads in [1, 2] {
                set_max_threads(threads);
                let id = format!(
                    "{:?} {}x{} n={n} t={threads}",
                    shape.dtype, shape.rows, shape.cols
                );
                g.bench_function(BenchmarkId::from_parameter(id), |b| {
                    b.iter(|| ops::matmul(&mut out, black_box(&x), n, &w, None).unwrap())
                });
            }
        }
    }
    set_max_threads(0);
    g.finish();
}

fn roofline(c: &mut Criterion) {
    const BYTES: usize = 256 << 20;
    let mut g = c.benchmark_group("read_bandwidth");
    g.warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_secs(2))
        .sample_size(10)
        .throughput(Throughput::Bytes(BYTES as u64));
    let buf: Vec<u64> = (0..(BYTES / 8) as u64).collect();
    for threads in [1usize, 2] {
        g.bench_function(
            BenchmarkId::from_parameter(format!("256MiB t={threads}")),
            |b| {
                b.iter(|| {
                    std::thread::scope(|s| {
                        let hs: Vec<_> = buf
                            .chunks(buf.len() / threads)
                            .map(|part| {
                                s.spawn(move || part.iter().fold(0u64, |a, v| a.wrapping_add(*v)))
                            })
                            .collect();
                        hs.into_iter()
                            .map(|h| h.join().unwrap())
                            .fold(0, u64::wrapping_add)
                    })
                })
            },
        );
    }
    g.finish();
}

criterion_group!(benches, roofline, matmul);
criterion_main!(benches);
