/** Reading and writing a nested key ("backend.port" as ['backend', 'port']) in plain config data. */

export function getIn(obj: unknown, keyPath: readonly string[]): unknown {
  return keyPath.reduce<unknown>((node, k) => (node && typeof node === 'object' ? (node as Record<string, unknown>)[k] : undefined), obj);
}

/** Sets the value, creating (or replacing non-object) parents on the way. */
export function setIn(target: Record<string, unknown>, keyPath: readonly string[], value: unknown): void {
  let node = target;
  for (const k of keyPath.slice(0, -1)) {
    const next = node[k];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) node[k] = {};
    node = node[k] as Record<string, unknown>;
  }
  node[keyPath[keyPath.length - 1]!] = value;
}
