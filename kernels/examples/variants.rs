//! Prints the kernel variants this CPU runs, one name a line, best last (the names
//! `EDGENLU_KERNELS` takes): `scripts/test.sh` runs the end-to-end parity tests once per line.
//!
//! `cargo run --release -p edgenlu-kernels --example variants`

use edgenlu_kernels::Variant;

fn main() {
    for v in Variant::supported() {
        println!("{}", v.name());
    }
}
