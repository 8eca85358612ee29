// Plain-JavaScript float64 reference ops for model tests: independent of libtorch, written for
// clarity on tiny inputs (flat row-major arrays with explicit shapes).

/** A flat row-major array with its shape. */
export interface Arr {
  data: Float64Array;
  shape: number[];
}

export const arr = (data: ArrayLike<number>, shape: readonly number[]): Arr => ({ data: Float64Array.from(data), shape: [...shape] });

/** x [N, C, H, W] * w [O, C, k, k] + b, stride 1, zero padding p. */
export function conv2d(x: Arr, w: Arr, b: Arr | null, p: number): Arr {
  const [n, c, h, wd] = x.shape as [number, number, number, number];
  const [o, , k] = w.shape as [number, number, number, number];
  const oh = h + 2 * p - k + 1;
  const ow = wd + 2 * p - k + 1;
  const out = new Float64Array(n * o * oh * ow);
  for (let ni = 0; ni < n; ni++)
    for (let oi = 0; oi < o; oi++)
      for (let y = 0; y < oh; y++)
        for (let xx = 0; xx < ow; xx++) {
          let s = b ? b.data[oi]! : 0;
          for (let ci = 0; ci < c; ci++)
            for (let ky = 0; ky < k; ky++)
              for (let kx = 0; kx < k; kx++) {
                const iy = y + ky - p;
                const ix = xx + kx - p;
                if (iy < 0 || iy >= h || ix < 0 || ix >= wd) continue;
                s += x.data[((ni * c + ci) * h + iy) * wd + ix]! * w.data[((oi * c + ci) * k + ky) * k + kx]!;
              }
          out[((ni * o + oi) * oh + y) * ow + xx] = s;
        }
  return { data: out, shape: [n, o, oh, ow] };
}

/** GroupNorm over [N, C, ...] with per-channel affine weight and bias (biased variance). */
export function groupNorm(x: Arr, groups: number, w: Arr, b: Arr, eps: number): Arr {
  const [n, c] = x.shape as [number, number];
  const spatial = x.data.length / (n * c);
  const per = (c / groups) * spatial;
  const out = new Float64Array(x.data.length);
  for (let ni = 0; ni < n; ni++)
    for (let g = 0; g < groups; g++) {
      const start = (ni * c + (g * c) / groups) * spatial;
      let mean = 0;
      for (let i = 0; i < per; i++) mean += x.data[start + i]!;
      mean /= per;
      let v = 0;
      for (let i = 0; i < per; i++) v += (x.data[start + i]! - mean) ** 2;
      v /= per;
      for (let i = 0; i < per; i++) {
        const ch = (g * c) / groups + Math.floor(i / spatial);
        out[start + i] = ((x.data[start + i]! - mean) / Math.sqrt(v + eps)) * w.data[ch]! + b.data[ch]!;
      }
    }
  return { data: out, shape: [...x.shape] };
}

export const silu = (x: Arr): Arr => ({ data: x.data.map((v) => v / (1 + Math.exp(-v))), shape: [...x.shape] });

/** x [..., in] · wᵀ [out, in] + b. */
export function linear(x: Arr, w: Arr, b: Arr | null): Arr {
  const [o, i] = w.shape as [number, number];
  const rows = x.data.length / i;
  const out = new Float64Array(rows * o);
  for (let r = 0; r < rows; r++)
    for (let oi = 0; oi < o; oi++) {
      let s = b ? b.data[oi]! : 0;
      for (let k = 0; k < i; k++) s += x.data[r * i + k]! * w.data[oi * i + k]!;
      out[r * o + oi] = s;
    }
  return { data: out, shape: [...x.shape.slice(0, -1), o] };
}

/** Element-wise a + b (same shapes). */
export function add(a: Arr, b: Arr): Arr {
  return { data: a.data.map((v, i) => v + b.data[i]!), shape: [...a.shape] };
}

/**
 * Multi-head attention without projections: q [B, Lq, H·d], k, v [B, Lk, H·d] →
 * [B, Lq, H·d], softmax(q kᵀ/sqrt(d)) v per head.
 */
export function attention(q: Arr, k: Arr, v: Arr, heads: number): Arr {
  const [b, lq, inner] = q.shape as [number, number, number];
  const lk = k.shape[1]!;
  const d = inner / heads;
  const out = new Float64Array(b * lq * inner);
  for (let bi = 0; bi < b; bi++)
    for (let h = 0; h < heads; h++)
      for (let i = 0; i < lq; i++) {
        const scores = new Float64Array(lk);
        for (let j = 0; j < lk; j++) {
          let s = 0;
          for (let e = 0; e < d; e++) s += q.data[(bi * lq + i) * inner + h * d + e]! * k.data[(bi * lk + j) * inner + h * d + e]!;
          scores[j] = s / Math.sqrt(d);
        }
        const max = Math.max(...scores);
        const ex = scores.map((s) => Math.exp(s - max));
        const sum = ex.reduce((a, c) => a + c, 0);
        for (let e = 0; e < d; e++) {
          let s = 0;
          for (let j = 0; j < lk; j++) s += (ex[j]! / sum) * v.data[(bi * lk + j) * inner + h * d + e]!;
          out[(bi * lq + i) * inner + h * d + e] = s;
        }
      }
  return { data: out, shape: [b, lq, inner] };
}

/** h [N, C, H, W] + t [N, C] broadcast over the positions. */
export function addPerChannel(h: Arr, t: Arr): Arr {
  const [n, c] = h.shape as [number, number];
  const spatial = h.data.length / (n * c);
  return { data: h.data.map((v, i) => v + t.data[Math.floor(i / spatial)]!), shape: [...h.shape] };
}
