/**
 * Waiting on a state the test cannot get an event for (a gauge, a count kept by the gateway):
 * checks on every turn of the event loop until it holds, with a deadline generous enough for
 * a busy machine. The deadline is a failure, never a pass.
 */
export async function eventually(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
