//! `edgenlu bench kernels [--json]`: times the native matmul kernels on the shapes that
//! matter (SmolLM2, MiniLM, one 7B-class matrix; n = 1 and 16; 1 and 2 threads) with the
//! variant this machine runs, and sets each against a read-bandwidth roofline measured in the
//! same run (STREAM-style sum of a 256 MiB buffer). Weights are pseudo-random, quantized with
//! the same quantizers as `models import`. Gw/s counts weights (matrix elements) read per
//! second, GMAC/s multiply-adds (n per weight), both from the median time ("best µs" is the
//! fastest batch, the least disturbed figure on a shared machine); % of roofline is weight bytes per second over
//! the measured read bandwidth at the same thread count (above 100 % when the matrix stays in
//! cache between calls). Numbers, never assertions: see docs/BENCHMARKS.md.

use anyhow::{anyhow, Result};
use clap::Subcommand;
use edgenlu_kernels::active_variant;
use edgenlu_kernels::bench::{read_bandwidth, time_matmul, weights, MatmulResult, SHAPES};
use edgenlu_kernels::dispatch::{default_threads, variant_from_env};
use std::time::Duration;

/// What `edgenlu bench` measures.
#[derive(Subcommand)]
pub enum BenchCommand {
    /// Matmul per shape, n and threads: µs, G weights/s, GB/s and % of the measured memory
    /// read bandwidth (force a variant with EDGENLU_KERNELS=scalar|avx2|avx512|neon).
    Kernels {
        /// One JSON document on stdout instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a bench command.
pub fn run(cmd: BenchCommand) -> Result<()> {
    match cmd {
        BenchCommand::Kernels { json } => kernels(json),
    }
}

const ROOFLINE_BYTES: usize = 256 << 20;
const BUDGET: Duration = Duration::from_millis(150);

fn kernels(json: bool) -> Result<()> {
    // Strict here: a benchmark of a variant other than the one asked for would mislead.
    variant_from_env().map_err(|e| anyhow!(e))?;
    let variant = active_variant();
    let bw = [
        read_bandwidth(ROOFLINE_BYTES, 1, 5),
        read_bandwidth(ROOFLINE_BYTES, 2, 5),
    ];
    if !json {
        println!(
            "variant {} ({}), {} threads available",
            variant,
            variant.describe(),
            default_threads()
        );
        println!(
            "roofline: read {:.1} GB/s on 1 thread, {:.1} GB/s on 2 (256 MiB, best of 5)",
            bw[0] / 1e9,
            bw[1] / 1e9
        );
        println!(
            "{:<22} {:>5} {:>11} {:>3} {:>2} {:>10} {:>10} {:>8} {:>8} {:>7} {:>6}",
            "matrix",
            "type",
            "rows x cols",
            "n",
            "t",
            "µs",
            "best µs",
            "Gw/s",
            "GMAC/s",
            "GB/s",
            "%roof"
        );
    }
    let mut rows = Vec::new();
    for shape in SHAPES {
        let bytes = weights(shape);
        for n in [1, 16] {
            for threads in [1, 2] {
                let r = time_matmul(shape, &bytes, n, threads, BUDGET)?;
                let roof = 100.0 * r.gbytes_per_s() * 1e9 / bw[threads - 1];
                if !json {
                    println!(
                        "{:<22} {:>5} {:>11} {:>3} {:>2} {:>10.1} {:>10.1} {:>8.2} {:>8.1} {:>7.2} {:>5.0}%",
                        shape.name,
                        dtype_name(&r),
                        format!("{}x{}", shape.rows, shape.cols),
                        n,
                        threads,
                        r.micros(),
                        r.best.as_secs_f64() * 1e6,
                        r.gweights_per_s(),
                        r.gweights_per_s() * n as f64,
                        r.gbytes_per_s(),
                        roof
                    );
                }
                rows.push(serde_json::json!({
                    "op": "matmul",
                    "matrix": shape.name,
                    "dtype": dtype_name(&r),
                    "rows": shape.rows,
                    "cols": shape.cols,
                    "n": n,
                    "threads": threads,
                    "us": r.micros(),
                    "best_us": r.best.as_secs_f64() * 1e6,
                    "gweights_per_s": r.gweights_per_s(),
                    "gmacs_per_s": r.gweights_per_s() * n as f64,
                    "gbytes_per_s": r.gbytes_per_s(),
                    "roofline_pct": roof,
                }));
            }
        }
    }
    if json {
        let doc = serde_json::json!({
            "variant": variant.name(),
            "variant_features": variant.describe(),
            "threads_available": default_threads(),
            "roofline": {
                "buffer_bytes": ROOFLINE_BYTES,
                "read_gbytes_per_s_1_thread": bw[0] / 1e9,
                "read_gbytes_per_s_2_threads": bw[1] / 1e9,
            },
            "results": rows,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    }
    Ok(())
}

fn dtype_name(r: &MatmulResult) -> String {
    format!("{:?}", r.shape.dtype).to_lowercase()
}
