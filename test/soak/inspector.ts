/**
 * A full garbage collection in the gateway child, through the V8 inspector it was started with
 * (`--inspect=127.0.0.1:PORT`): an idle Node process does not collect, so its RSS after a load
 * says when V8 last ran rather than what is still alive. The soak reads RSS after a forced
 * collection both at the baseline and at the end, so the two compare live memory.
 */
interface Target {
  readonly webSocketDebuggerUrl: string;
}

export async function collectGarbage(inspectPort: number): Promise<void> {
  const targets = await (await fetch(`http://127.0.0.1:${inspectPort}/json/list`)).json() as Target[];
  const url = targets[0]?.webSocketDebuggerUrl;
  if (!url) throw new Error(`no inspector target on 127.0.0.1:${inspectPort}`);
  const ws = new WebSocket(url);
  try {
    await new Promise<void>((resolve, reject) => {
      ws.addEventListener('open', () => resolve(), { once: true });
      ws.addEventListener('error', () => reject(new Error(`inspector ${url}: connection failed`)), { once: true });
    });
    await new Promise<void>((resolve, reject) => {
      ws.addEventListener('message', (event) => {
        const reply = JSON.parse(String(event.data)) as { id?: number; error?: { message: string } };
        if (reply.id !== 1) return;
        if (reply.error) reject(new Error(`HeapProfiler.collectGarbage: ${reply.error.message}`));
        else resolve();
      });
      ws.addEventListener('close', () => reject(new Error('inspector closed before answering')), { once: true });
      ws.send(JSON.stringify({ id: 1, method: 'HeapProfiler.collectGarbage' }));
    });
  } finally {
    ws.close();
  }
}
