/**
 * fast-send.ts's WebSocket header against ws's own for the same frame, at every length
 * encoding. The frames it writes on a live connection are checked in connect.spec.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as ws from 'ws';
import { frameHeader } from './fast-send.js';

describe('frameHeader', () => {
  it('is the header ws writes for an unmasked, final binary frame, at 7-, 16- and 64-bit lengths', () => {
    const opts = { fin: true, opcode: 2, mask: false, readOnly: false, rsv1: false, maskBuffer: undefined, generateMask: undefined };
    for (const n of [0, 1, 125, 126, 65_535, 65_536, 16 * 1024 * 1024 + 40, 2 ** 32 + 7]) {
      // ws frames only the length of what it is given: a stand-in of that length.
      const data = { length: n, byteLength: n } as unknown as Buffer;
      // ws exports its Sender; its types do not declare it.
      const { Sender } = ws as unknown as { Sender: { frame(d: Buffer, o: object): Buffer[] } };
      const [header] = Sender.frame(data, opts);
      assert.deepEqual([...frameHeader(n)], [...header!], `length ${n}`);
    }
  });
});
