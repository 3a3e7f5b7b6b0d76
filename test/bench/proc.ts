/**
 * Reads one process's CPU time and peak memory from Linux /proc, so the benchmark measures the
 * gateway child alone (not the load generator, sink and DNS server sharing the bench process).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';

/** Clock ticks per second, the unit of utime/stime in /proc/<pid>/stat (proc(5)); 100 on Linux. */
export function clockTicksPerSecond(): number {
  try {
    const ticks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    return Number.isInteger(ticks) && ticks > 0 ? ticks : 100;
  } catch {
    return 100;
  }
}

/** User + system CPU seconds the process has used so far. */
export function cpuSeconds(pid: number, ticksPerSecond: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  // proc(5): field 2 (comm) is in parentheses and may hold spaces; count fields after the last ')'.
  // After it come field 3 (state) onwards, so utime (14) and stime (15) are at offsets 11 and 12.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) throw new Error(`unreadable /proc/${pid}/stat`);
  return (utime + stime) / ticksPerSecond;
}

/** A "kB" field of /proc/<pid>/status, in bytes. */
function statusBytes(pid: number, field: 'VmHWM' | 'VmRSS'): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(status);
  if (!match?.[1]) throw new Error(`no ${field} in /proc/${pid}/status`);
  return Number(match[1]) * 1024;
}

/** Peak resident set size (VmHWM) in bytes. */
export function peakRssBytes(pid: number): number {
  return statusBytes(pid, 'VmHWM');
}

/** Resident set size now (VmRSS) in bytes. */
export function rssBytes(pid: number): number {
  return statusBytes(pid, 'VmRSS');
}

/**
 * Resets VmHWM to the current RSS, so the next reading is the peak of one benchmark point
 * (proc(5): writing 5 to /proc/<pid>/clear_refs, Linux 4.0+). False where not permitted:
 * the peak then covers the process's whole life so far.
 */
export function resetPeakRss(pid: number): boolean {
  try {
    fs.writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}
