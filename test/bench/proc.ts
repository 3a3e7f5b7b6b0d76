/**
 * Reads one process's CPU time and peak memory from Linux /proc, so the benchmark measures the
 * gateway child alone (not the load generator, sink and DNS server sharing the bench process).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { processTree, statFields } from '../harness/processes.ts';

/** Clock ticks per second, the unit of utime/stime in /proc/<pid>/stat (proc(5)); 100 on Linux. */
export function clockTicksPerSecond(): number {
  try {
    const ticks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    return Number.isInteger(ticks) && ticks > 0 ? ticks : 100;
  } catch {
    return 100;
  }
}

/**
 * User + system CPU seconds used so far by the process and its live descendants, plus what
 * its exited and reaped children used (cutime, cstime): a worker replaced during a point
 * still counts.
 */
export function cpuSeconds(pid: number, ticksPerSecond: number): number {
  let ticks = 0;
  for (const p of processTree(pid)) {
    const fields = statFields(p);
    if (!fields) continue;
    // utime (14), stime (15), and for the root also cutime (16), cstime (17)
    const used = [11, 12, ...(p === pid ? [13, 14] : [])].map((i) => Number(fields[i]));
    if (used.some((n) => !Number.isFinite(n))) throw new Error(`unreadable /proc/${p}/stat`);
    ticks += used.reduce((a, b) => a + b, 0);
  }
  return ticks / ticksPerSecond;
}

/** A "kB" field of /proc/<pid>/status in bytes, summed over the process and its descendants. */
function treeStatusBytes(pid: number, field: 'VmHWM' | 'VmRSS'): number {
  let total = 0;
  for (const p of processTree(pid)) {
    let status: string;
    try {
      status = fs.readFileSync(`/proc/${p}/status`, 'utf8');
    } catch {
      continue; // exited meanwhile
    }
    const match = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(status);
    if (!match?.[1]) throw new Error(`no ${field} in /proc/${p}/status`);
    total += Number(match[1]) * 1024;
  }
  return total;
}

/**
 * Peak resident set size (VmHWM) in bytes, summed over the process and its descendants: an
 * upper bound of the peak of the whole (each process's peak may come at a different moment).
 */
export function peakRssBytes(pid: number): number {
  return treeStatusBytes(pid, 'VmHWM');
}

/** Resident set size now (VmRSS) in bytes, summed over the process and its descendants. */
export function rssBytes(pid: number): number {
  return treeStatusBytes(pid, 'VmRSS');
}

/**
 * Resets VmHWM to the current RSS, so the next reading is the peak of one benchmark point
 * (proc(5): writing 5 to /proc/<pid>/clear_refs, Linux 4.0+). False where not permitted:
 * the peak then covers the process's whole life so far.
 */
export function resetPeakRss(pid: number): boolean {
  try {
    for (const p of processTree(pid)) fs.writeFileSync(`/proc/${p}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}
