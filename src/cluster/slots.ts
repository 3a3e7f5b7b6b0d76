/**
 * Connection slots per node: `limits.maxConnections` and `limits.maxConnectionsPerIp` count
 * the connections of all workers together, as they do in one process. Each worker still
 * counts its own (its listener), and before it greets a client it asks the primary for a
 * node-wide slot; the slot goes back when the connection ends, and all of a worker's slots go
 * back when the worker exits (so a crash leaks nothing).
 */
import type { IpcChannel } from './ipc.ts';

export const SLOT_REQUEST = 'slot';
export const SLOT_RELEASE = 'slot-release';

export interface NodeSlot {
  readonly ok: boolean;
  release(): void;
}

/** The primary's book of slots. `owner` is the worker's slot number in the supervisor. */
export function createSlotBook(limits: () => { maxConnections: number; maxConnectionsPerIp: number }) {
  let nextId = 1;
  let total = 0;
  const perIp = new Map<string, number>();
  const held = new Map<number, { owner: number; ip: string }>();

  const free = (id: number): void => {
    const slot = held.get(id);
    if (!slot) return;
    held.delete(id);
    total--;
    const n = (perIp.get(slot.ip) ?? 1) - 1;
    if (n <= 0) perIp.delete(slot.ip);
    else perIp.set(slot.ip, n);
  };

  return {
    /** A slot for `ip`, or null when the node is at one of its limits. */
    acquire(owner: number, ip: string): number | null {
      const { maxConnections, maxConnectionsPerIp } = limits();
      if (total >= maxConnections || (perIp.get(ip) ?? 0) >= maxConnectionsPerIp) return null;
      const id = nextId++;
      held.set(id, { owner, ip });
      total++;
      perIp.set(ip, (perIp.get(ip) ?? 0) + 1);
      return id;
    },
    release: free,
    /** Every slot of a worker that exited. */
    releaseOwner(owner: number): void {
      for (const [id, slot] of held) if (slot.owner === owner) free(id);
    },
    get total(): number {
      return total;
    },
  };
}

export type SlotBook = ReturnType<typeof createSlotBook>;

/** The worker's side: the listener's `admit` hook. If the primary cannot answer, the worker's own limits apply alone. */
export function slotClient(channel: IpcChannel, timeoutMs: number): (ip: string) => Promise<NodeSlot> {
  return async (ip) => {
    let id: number | null;
    try {
      id = await channel.request<number | null>(SLOT_REQUEST, { ip }, timeoutMs);
    } catch {
      return { ok: true, release: () => undefined };
    }
    if (id === null) return { ok: false, release: () => undefined };
    let released = false;
    return {
      ok: true,
      release: () => {
        if (released) return;
        released = true;
        channel.notify(SLOT_RELEASE, { id });
      },
    };
  };
}
