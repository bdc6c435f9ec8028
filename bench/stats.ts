// Small statistics for the benchmark: medians over rounds, percentiles, and a latency histogram that
// load-generator processes fill cheaply and the orchestrator merges.

export function median(xs: number[]): number {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
}

/** p in [0, 100], nearest-rank on a copy. */
export function percentile(xs: number[], p: number): number {
  const v = [...xs].sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const i = Math.min(v.length - 1, Math.max(0, Math.ceil((p / 100) * v.length) - 1));
  return v[i]!;
}

/** Microsecond latency histogram: 1 µs buckets to 1 ms, then 2 significant digits (about 1 % error). */
export class Histogram {
  readonly counts = new Map<number, number>();
  total = 0;

  static bucket(us: number): number {
    if (us < 1000) return Math.max(0, Math.round(us));
    const mag = 10 ** (Math.floor(Math.log10(us)) - 2);
    return Math.round(us / mag) * mag;
  }

  record(us: number): void {
    const b = Histogram.bucket(us);
    this.counts.set(b, (this.counts.get(b) ?? 0) + 1);
    this.total++;
  }

  merge(pairs: [number, number][]): void {
    for (const [b, n] of pairs) {
      this.counts.set(b, (this.counts.get(b) ?? 0) + n);
      this.total += n;
    }
  }

  toPairs(): [number, number][] {
    return [...this.counts.entries()];
  }

  /** p in [0, 100]. */
  percentile(p: number): number {
    if (this.total === 0) return NaN;
    const want = Math.max(1, Math.ceil((p / 100) * this.total));
    let seen = 0;
    for (const b of [...this.counts.keys()].sort((a, c) => a - c)) {
      seen += this.counts.get(b)!;
      if (seen >= want) return b;
    }
    return NaN;
  }
}

/** a / b rounded for tables; NaN-safe. */
export function ratio(a: number, b: number): number {
  return Number.isFinite(a) && Number.isFinite(b) && b !== 0 ? a / b : NaN;
}
