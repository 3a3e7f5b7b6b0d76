/**
 * The field name as mailauth reads it (tools.js parseHeaders): everything before the first
 * colon, folds removed, WSP trimmed, lower-cased. A fold between the name and the colon still
 * names the field, so "DKIM-Signature\r\n :" is a DKIM-Signature here as it is there.
 */
export function fieldKey(lines: readonly Buffer[]): string {
  let name = '';
  for (const line of lines) {
    const colon = line.indexOf(0x3a);
    name += line.subarray(0, colon < 0 ? line.length : colon).toString('latin1');
    if (colon >= 0) break;
  }
  return name.replace(/\r?\n/g, '').replace(/^[ \t]+|[ \t]+$/g, '').toLowerCase();
}
