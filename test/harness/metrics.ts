/** Reading /metrics in tests: series as written ("name{a="b"}") → value, and the change between two reads. */
export type Series = ReadonlyMap<string, number>;

export async function scrape(port: number | null): Promise<Series> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const cut = line.lastIndexOf(' ');
    out.set(line.slice(0, cut), Number(line.slice(cut + 1)));
  }
  return out;
}

/** Series of the given metric names whose value changed, with the change; zero changes left out. */
export function changes(before: Series, after: Series, names: readonly string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [series, value] of after) {
    const name = series.split('{')[0]!;
    if (!names.includes(name)) continue;
    const d = value - (before.get(series) ?? 0);
    if (d !== 0) out[series] = d;
  }
  return out;
}
