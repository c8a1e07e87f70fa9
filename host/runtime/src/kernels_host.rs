//! The `kernels` interface: validates every handle and shape, then calls the scalar/SIMD
//! kernels in `edgenlu-kernels`. Output tensors are written in place; an output may not alias
//! an input (the guest allocates one more tensor instead of the host copying on every call).

use crate::bindings::edgenlu::nlu::kernels::{Hit, Host, HostKvCache, RopeLayout};
use crate::error::HostError;
use crate::resources::{KvCacheHandle, Tensor};
use crate::state::{guard, Budget, ComponentState};
use edgenlu_kernels::ops::KvCache;
use edgenlu_kernels::{matmul, ops, WeightView};
use std::ops::Range;
use std::time::Instant;
use wasmtime::component::Resource;

type T = Resource<Tensor>;

impl ComponentState {
    /// Runs `f` with the output tensor's buffer moved out of the table, so inputs can be
    /// borrowed from the same table meanwhile; the buffer always goes back, even on error.
    fn with_output<R>(
        &mut self,
        out: &T,
        inputs: &[&T],
        f: impl FnOnce(&mut [f32], &[usize], &ComponentState) -> Result<R, HostError>,
    ) -> Result<R, HostError> {
        self.budget.check_deadline()?;
        if inputs.iter().any(|i| i.rep() == out.rep()) {
            return Err(HostError::invalid(
                "the output tensor must not also be an input",
            ));
        }
        let shape = self.tensor(out)?.shape().to_vec();
        let mut buf = self.table.get_mut(out)?.take_f32()?;
        let start = Instant::now();
        let result = guard(|| f(&mut buf, &shape, self));
        self.budget.kernel_time += start.elapsed();
        self.table.get_mut(out)?.put_f32(buf);
        result
    }

    /// Runs an in-place kernel on an f32 tensor the guest owns.
    fn in_place(
        &mut self,
        x: &T,
        f: impl FnOnce(&mut [f32], &[usize]) -> Result<(), HostError>,
    ) -> Result<(), HostError> {
        self.with_output(x, &[], |buf, shape, _| f(buf, shape))
    }
}

/// Weight bytes one tile of a kernel reads between deadline checks: small enough that a
/// deadline is noticed within about a millisecond, large enough that checking costs nothing.
const TILE_BYTES: usize = 4 << 20;

/// Row ranges of `w`, each reading about [`TILE_BYTES`].
fn row_tiles(w: &WeightView) -> impl Iterator<Item = Range<usize>> {
    let row_bytes = (w.bytes().len() / w.rows().max(1)).max(1);
    let per_tile = (TILE_BYTES / row_bytes).max(1);
    let rows = w.rows();
    (0..rows)
        .step_by(per_tile)
        .map(move |r| r..(r + per_tile).min(rows))
}

/// Rows `range` of `w` as a view of their own.
fn sub_view<'a>(w: &WeightView<'a>, range: &Range<usize>) -> Result<WeightView<'a>, HostError> {
    let row_bytes = w.bytes().len() / w.rows().max(1);
    let bytes = &w.bytes()[range.start * row_bytes..range.end * row_bytes];
    Ok(WeightView::new(w.dtype(), range.len(), w.cols(), bytes)?)
}

/// Multiply-adds one kernel call does between deadline checks: tens of milliseconds on the
/// scalar variant at worst, a few with SIMD. An encoder's matmuls fit in one call.
const WORK_PER_CALL: usize = 1 << 27;

/// out[n, rows] = x · wᵀ + bias. Its cost is the product of its inputs, so a large one is cut
/// into calls over tiles of w's rows and chunks of x's rows, each within [`TILE_BYTES`] and
/// [`WORK_PER_CALL`], with a deadline check between them; each call's scratch is charged first.
fn tiled_matmul(
    budget: &Budget,
    out: &mut [f32],
    x: &[f32],
    n: usize,
    w: &WeightView,
    bias: Option<&[f32]>,
) -> Result<(), HostError> {
    let (rows, k) = (w.rows(), w.cols());
    if w.bytes().len() <= TILE_BYTES && n.saturating_mul(rows * k) <= WORK_PER_CALL {
        let _scratch = budget.charge_scratch(matmul::scratch_bytes(n, k, rows))?;
        return Ok(ops::matmul(out, x, n, w, bias)?);
    }
    if bias.is_some_and(|b| b.len() != rows) {
        return Err(HostError::shape(format!("bias must have {rows} elements")));
    }
    if x.len() != n * k || out.len() != n * rows {
        return Err(HostError::shape(format!(
            "matmul of {n} rows of {k} by {rows} rows: x has {}, out {} elements",
            x.len(),
            out.len()
        )));
    }
    for range in row_tiles(w) {
        let tile = sub_view(w, &range)?;
        let tile_bias = bias.map(|b| &b[range.clone()]);
        let chunk = (WORK_PER_CALL / (range.len() * k).max(1)).clamp(1, n.max(1));
        for first in (0..n).step_by(chunk) {
            budget.check_deadline()?;
            let m = chunk.min(n - first);
            let _scratch = budget.charge_scratch(
                matmul::scratch_bytes(m, k, range.len()) + m * range.len() * size_of::<f32>(),
            )?;
            let mut tile_out = vec![0.0; m * range.len()];
            ops::matmul(
                &mut tile_out,
                &x[first * k..(first + m) * k],
                m,
                &tile,
                tile_bias,
            )?;
            for (i, row) in tile_out.chunks_exact(range.len()).enumerate() {
                let o = (first + i) * rows;
                out[o + range.start..o + range.end].copy_from_slice(row);
            }
        }
    }
    Ok(())
}

/// Top-k rows of `index` by cosine with `query`, searched tile by tile (deadline checks
/// between tiles) and merged in the kernel's order: score descending, NaN last, then row.
fn tiled_nn_search(
    budget: &Budget,
    index: &WeightView,
    query: &[f32],
    k: usize,
) -> Result<Vec<ops::Hit>, HostError> {
    let _scratch =
        budget.charge_scratch(ops::nn_search_scratch_bytes(index.rows(), index.cols()))?;
    if index.bytes().len() <= TILE_BYTES {
        return Ok(ops::nn_search(index, query, k)?);
    }
    let mut hits = Vec::new();
    for range in row_tiles(index) {
        budget.check_deadline()?;
        for mut hit in ops::nn_search(&sub_view(index, &range)?, query, k)? {
            hit.row += range.start as u32;
            hits.push(hit);
        }
    }
    hits.sort_by(|a, b| {
        b.score
            .partial_cmp(&a.score)
            .unwrap_or_else(|| a.score.is_nan().cmp(&b.score.is_nan()))
            .then(a.row.cmp(&b.row))
    });
    hits.truncate(k);
    Ok(hits)
}

fn last_dim(shape: &[usize]) -> usize {
    *shape.last().expect("tensor shapes are never empty")
}

fn expect_elems(what: &str, t: &Tensor, want: usize) -> Result<(), HostError> {
    if t.elems() != want {
        return Err(HostError::shape(format!(
            "{what}: expected {want} elements, got shape {:?}",
            t.shape()
        )));
    }
    Ok(())
}

/// `b` repeats over `a` (the broadcast of `add` and `mul`), checked before either is read.
fn expect_divides(op: &str, b: &Tensor, a: &Tensor) -> Result<(), HostError> {
    if !a.elems().is_multiple_of(b.elems()) {
        return Err(HostError::shape(format!(
            "{op}: b of shape {:?} does not repeat over a of shape {:?}",
            b.shape(),
            a.shape()
        )));
    }
    Ok(())
}

fn expect_shape(what: &str, got: &[usize], want: &[usize]) -> Result<(), HostError> {
    if got != want {
        return Err(HostError::shape(format!(
            "{what}: expected shape {want:?}, got {got:?}"
        )));
    }
    Ok(())
}

impl Host for ComponentState {
    fn matmul(&mut self, out: T, x: T, w: T, bias: Option<T>) -> Result<(), HostError> {
        let mut inputs = vec![&x, &w];
        inputs.extend(bias.as_ref());
        let bytes = self.with_output(&out, &inputs, |buf, out_shape, s| {
            let wm = s.tensor(&w)?.matrix()?;
            let xt = s.tensor(&x)?;
            let k = last_dim(xt.shape());
            if k != wm.cols() {
                return Err(HostError::shape(format!(
                    "x has {k} columns, w has {}",
                    wm.cols()
                )));
            }
            let n = xt.elems() / k;
            expect_shape("matmul output", out_shape, &[n, wm.rows()])?;
            let b = match &bias {
                Some(b) => {
                    let bt = s.tensor(b)?;
                    expect_elems("matmul bias", bt, wm.rows())?;
                    Some(bt.f32_values(&s.budget)?)
                }
                None => None,
            };
            let xs = xt.f32_values(&s.budget)?;
            tiled_matmul(&s.budget, buf, &xs, n, &wm, b.as_deref())?;
            Ok(wm.bytes().len() as u64)
        })?;
        self.budget.weight_bytes_read += bytes;
        Ok(())
    }

    fn embed(&mut self, out: T, table: T, ids: T) -> Result<(), HostError> {
        let bytes = self.with_output(&out, &[&table, &ids], |buf, out_shape, s| {
            let tm = s.tensor(&table)?.matrix()?;
            let ids = s.tensor(&ids)?.i32s()?;
            expect_shape("embed output", out_shape, &[ids.len(), tm.cols()])?;
            ops::embed(buf, &tm, ids)?;
            Ok((ids.len() * tm.bytes().len() / tm.rows()) as u64)
        })?;
        self.budget.weight_bytes_read += bytes;
        Ok(())
    }

    fn add(&mut self, out: T, a: T, b: T) -> Result<(), HostError> {
        self.with_output(&out, &[&a, &b], |buf, out_shape, s| {
            let at = s.tensor(&a)?;
            expect_shape("add output", out_shape, at.shape())?;
            let bt = s.tensor(&b)?;
            expect_divides("add", bt, at)?;
            let bv = bt.f32_values(&s.budget)?;
            Ok(ops::add(buf, &at.f32_values(&s.budget)?, &bv)?)
        })
    }

    fn layer_norm(&mut self, out: T, x: T, gamma: T, beta: T, eps: f32) -> Result<(), HostError> {
        self.with_output(&out, &[&x, &gamma, &beta], |buf, out_shape, s| {
            let xt = s.tensor(&x)?;
            expect_shape("layer-norm output", out_shape, xt.shape())?;
            let (gt, bt) = (s.tensor(&gamma)?, s.tensor(&beta)?);
            expect_elems("layer-norm gamma", gt, last_dim(xt.shape()))?;
            expect_elems("layer-norm beta", bt, last_dim(xt.shape()))?;
            let (g, b) = (gt.f32_values(&s.budget)?, bt.f32_values(&s.budget)?);
            Ok(ops::layer_norm(
                buf,
                &xt.f32_values(&s.budget)?,
                last_dim(xt.shape()),
                &g,
                &b,
                eps,
            )?)
        })
    }

    fn gelu(&mut self, x: T) -> Result<(), HostError> {
        self.in_place(&x, |buf, _| Ok(ops::gelu(buf)?))
    }

    fn softmax(&mut self, x: T) -> Result<(), HostError> {
        self.in_place(&x, |buf, shape| Ok(ops::softmax(buf, last_dim(shape))?))
    }

    fn attention(
        &mut self,
        out: T,
        q: T,
        k: T,
        v: T,
        heads: u32,
        kv_heads: u32,
        causal: bool,
    ) -> Result<(), HostError> {
        self.with_output(&out, &[&q, &k, &v], |buf, out_shape, s| {
            let (qt, kt, vt) = (s.tensor(&q)?, s.tensor(&k)?, s.tensor(&v)?);
            let (heads, kv_heads) = (heads as usize, kv_heads as usize);
            if qt.shape().len() != 2 || kt.shape().len() != 2 {
                return Err(HostError::shape(
                    "attention takes q [n, heads·d] and k, v [m, kv-heads·d]",
                ));
            }
            if heads == 0 || kv_heads == 0 || qt.shape()[1] % heads != 0 {
                return Err(HostError::invalid(format!(
                    "{heads} heads do not divide q's {} columns",
                    qt.shape()[1]
                )));
            }
            let head_dim = qt.shape()[1] / heads;
            let kv_width = kv_heads
                .checked_mul(head_dim)
                .ok_or_else(|| HostError::invalid("kv-heads too large"))?;
            let m = kt.shape()[0];
            expect_shape("attention k", kt.shape(), &[m, kv_width])?;
            expect_shape("attention v", vt.shape(), &[m, kv_width])?;
            expect_shape("attention output", out_shape, qt.shape())?;
            let n = qt.shape()[0];
            let _scratch = s
                .budget
                .charge_scratch(ops::attention_scratch_bytes(m, head_dim))?;
            Ok(ops::attention_until(
                buf,
                &qt.f32_values(&s.budget)?,
                &kt.f32_values(&s.budget)?,
                &vt.f32_values(&s.budget)?,
                n,
                m,
                heads,
                kv_heads,
                head_dim,
                causal,
                &|| s.budget.deadline_passed(),
            )?)
        })
    }

    fn mean_pool(&mut self, out: T, x: T, count: u32) -> Result<(), HostError> {
        self.with_output(&out, &[&x], |buf, out_shape, s| {
            let xt = s.tensor(&x)?;
            let cols = last_dim(xt.shape());
            let xs = xt.f32_values(&s.budget)?;
            expect_shape("mean-pool output", out_shape, &[cols])?;
            Ok(ops::mean_pool(
                buf,
                &xs,
                xs.len() / cols,
                cols,
                count as usize,
            )?)
        })
    }

    fn l2_normalize(&mut self, x: T) -> Result<(), HostError> {
        self.in_place(&x, |buf, shape| {
            Ok(ops::l2_normalize(buf, last_dim(shape))?)
        })
    }

    fn nn_search(&mut self, index: T, query: T, k: u32) -> Result<Vec<Hit>, HostError> {
        self.budget.check_deadline()?;
        self.budget.check_output_elems(k as usize)?;
        let start = Instant::now();
        let (hits, bytes) = guard(|| {
            let im = self.tensor(&index)?.matrix()?;
            let q = self.tensor(&query)?.f32_values(&self.budget)?;
            let hits = tiled_nn_search(&self.budget, &im, &q, k as usize)?;
            Ok((hits, im.bytes().len() as u64))
        })?;
        self.budget.kernel_time += start.elapsed();
        self.budget.weight_bytes_read += bytes;
        Ok(hits
            .into_iter()
            .map(|h| Hit {
                row: h.row,
                score: h.score,
            })
            .collect())
    }

    fn argmax(&mut self, x: T) -> Result<u32, HostError> {
        self.budget.check_deadline()?;
        guard(|| Ok(ops::argmax(&self.tensor(&x)?.f32_values(&self.budget)?)? as u32))
    }

    fn rms_norm(&mut self, out: T, x: T, w: T, eps: f32) -> Result<(), HostError> {
        self.with_output(&out, &[&x, &w], |buf, out_shape, s| {
            let xt = s.tensor(&x)?;
            expect_shape("rms-norm output", out_shape, xt.shape())?;
            let wt = s.tensor(&w)?;
            expect_elems("rms-norm weight", wt, last_dim(xt.shape()))?;
            let w = wt.f32_values(&s.budget)?;
            Ok(ops::rms_norm(
                buf,
                &xt.f32_values(&s.budget)?,
                last_dim(xt.shape()),
                &w,
                eps,
            )?)
        })
    }

    fn rope(
        &mut self,
        x: T,
        heads: u32,
        first_pos: u32,
        base: f32,
        layout: RopeLayout,
    ) -> Result<(), HostError> {
        let layout = match layout {
            RopeLayout::Interleaved => ops::RopeLayout::Interleaved,
            RopeLayout::Halves => ops::RopeLayout::Halves,
        };
        self.in_place(&x, |buf, shape| {
            let (heads, cols) = (heads as usize, last_dim(shape));
            if heads == 0 || cols % heads != 0 {
                return Err(HostError::invalid(format!(
                    "{heads} heads do not divide rows of {cols}"
                )));
            }
            Ok(ops::rope(
                buf,
                heads,
                cols / heads,
                first_pos as usize,
                base,
                layout,
            )?)
        })
    }

    fn silu(&mut self, x: T) -> Result<(), HostError> {
        self.in_place(&x, |buf, _| Ok(ops::silu(buf)?))
    }

    fn swiglu(&mut self, gate: T, up: T) -> Result<(), HostError> {
        self.with_output(&gate, &[&up], |buf, shape, s| {
            let ut = s.tensor(&up)?;
            expect_shape("swiglu up", ut.shape(), shape)?;
            Ok(ops::swiglu(buf, &ut.f32_values(&s.budget)?)?)
        })
    }

    fn mul(&mut self, out: T, a: T, b: T) -> Result<(), HostError> {
        self.with_output(&out, &[&a, &b], |buf, out_shape, s| {
            let at = s.tensor(&a)?;
            expect_shape("mul output", out_shape, at.shape())?;
            let bt = s.tensor(&b)?;
            expect_divides("mul", bt, at)?;
            let bv = bt.f32_values(&s.budget)?;
            Ok(ops::mul(buf, &at.f32_values(&s.budget)?, &bv)?)
        })
    }

    fn scale(&mut self, x: T, factor: f32) -> Result<(), HostError> {
        self.in_place(&x, |buf, _| Ok(ops::scale(buf, factor)?))
    }

    #[allow(clippy::too_many_arguments)] // the WIT call's arguments
    fn attend(
        &mut self,
        cache: Resource<KvCacheHandle>,
        layer: u32,
        out: T,
        q: T,
        k: T,
        v: T,
        heads: u32,
        kv_heads: u32,
    ) -> Result<(), HostError> {
        self.budget.check_deadline()?;
        // The cache is moved out of the table for the call (like an output tensor), so the
        // input tensors can be borrowed meanwhile; it always goes back.
        let mut handle = std::mem::replace(
            self.table.get_mut(&cache)?,
            KvCacheHandle {
                cache: KvCache::new(1, 0, 1)?,
                charged: 0,
            },
        );
        let result = self.with_output(&out, &[&q, &k, &v], |buf, out_shape, s| {
            let (qt, kt, vt) = (s.tensor(&q)?, s.tensor(&k)?, s.tensor(&v)?);
            expect_shape("attend output", out_shape, qt.shape())?;
            // Keys the new positions attend over, and their width per head, at most.
            let cache = &mut handle.cache;
            let positions = cache.len().saturating_add(kt.shape()[0]);
            let head_dim = cache.kv_cols() / (kv_heads as usize).max(1);
            let _scratch = s
                .budget
                .charge_scratch(ops::attention_scratch_bytes(positions, head_dim))?;
            cache.attend_until(
                layer as usize,
                buf,
                &qt.f32_values(&s.budget)?,
                &kt.f32_values(&s.budget)?,
                &vt.f32_values(&s.budget)?,
                heads as usize,
                kv_heads as usize,
                usize::MAX,
                &|| s.budget.deadline_passed(),
            )?;
            Ok(())
        });
        *self.table.get_mut(&cache)? = handle;
        result
    }
}

impl HostKvCache for ComponentState {
    fn create(
        &mut self,
        layers: u32,
        capacity: u32,
        kv_cols: u32,
    ) -> Result<Resource<KvCacheHandle>, HostError> {
        self.budget.check_deadline()?;
        let (layers, capacity, kv_cols) = (layers as usize, capacity as usize, kv_cols as usize);
        // The positions are charged at full capacity, and so is the per-layer bookkeeping the
        // cache allocates at once (a key and a value `Vec` per layer): billions of layers of
        // no positions would otherwise be an uncharged allocation that aborts the host.
        let bytes = KvCache::bytes_for(layers, capacity, kv_cols)
            .and_then(|b| b.checked_add(layers.checked_mul(2 * size_of::<Vec<f32>>())?))
            .ok_or_else(|| HostError::invalid("kv-cache size overflows"))?;
        // Charged before the cache exists: the budget, not the allocator, says no.
        self.budget.charge_host_bytes(bytes)?;
        let cache = KvCache::new(layers, capacity, kv_cols)
            .inspect_err(|_| self.budget.release_host_bytes(bytes))?;
        self.push_handle(KvCacheHandle {
            cache,
            charged: bytes,
        })
        .inspect_err(|_| self.budget.release_host_bytes(bytes))
    }

    fn len(&mut self, cache: Resource<KvCacheHandle>) -> wasmtime::Result<u32> {
        Ok(self.table.get(&cache)?.cache.len() as u32)
    }

    fn advance(&mut self, cache: Resource<KvCacheHandle>, n: u32) -> Result<(), HostError> {
        Ok(self.table.get_mut(&cache)?.cache.advance(n as usize)?)
    }

    fn drop(&mut self, cache: Resource<KvCacheHandle>) -> wasmtime::Result<()> {
        let h = self
            .delete_handle(cache)
            .map_err(|_| wasmtime::format_err!("dropping an unknown kv-cache"))?;
        self.budget.release_host_bytes(h.charged);
        Ok(())
    }
}
