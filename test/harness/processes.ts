/**
 * A process and its descendants from Linux /proc (proc(5)): a cluster primary and its workers,
 * for tests that kill a worker and for the benchmark's CPU and memory readings.
 */
import fs from 'node:fs';

/**
 * /proc/<pid>/stat fields from field 3 (state) on: field 2 (comm) is in parentheses and may
 * hold spaces, so count after the last ')'. Field N is at offset N - 3. Null when the process
 * is gone.
 */
export function statFields(pid: number): string[] | null {
  let stat: string;
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** The process and its descendants, found through ppid (field 4); the process first. */
export function processTree(pid: number): number[] {
  const parents = new Map<number, number>();
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const fields = statFields(Number(entry));
    if (fields) parents.set(Number(entry), Number(fields[1]));
  }
  const tree = [pid];
  for (let i = 0; i < tree.length; i++) {
    for (const [child, parent] of parents) if (parent === tree[i]) tree.push(child);
  }
  return tree;
}
