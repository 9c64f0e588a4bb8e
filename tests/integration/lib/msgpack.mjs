// msgpack.mjs: a small msgpack decoder (and encoder) for what Presence puts on
// its wires: the event arrays published by the Lua store scripts (cmsgpack)
// and the fanout -> receive batches (proto/README.md). It covers every type
// those can contain (and a few more, so that a wrong type is reported by name
// rather than as garbage): nil, bool, ints of every width, floats, str, bin,
// arrays and maps. Truncated or unknown input throws.

export class MsgpackError extends Error {}

/** Decodes one msgpack value from buf (Buffer/Uint8Array). Throws on trailing bytes unless opts.allowTrailing. */
export function decode(buf, opts = {}) {
  const b = Buffer.isBuffer(buf) ? buf : Buffer.from(buf);
  const st = { b, off: 0 };
  const v = read(st);
  if (st.off !== b.length && !opts.allowTrailing) {
    throw new MsgpackError(`msgpack: ${b.length - st.off} trailing bytes after the value`);
  }
  return v;
}

function need(st, n) {
  if (st.off + n > st.b.length) {
    throw new MsgpackError(`msgpack: truncated at byte ${st.off} (need ${n}, have ${st.b.length - st.off})`);
  }
}

function u64(st) {
  need(st, 8);
  const v = st.b.readBigUInt64BE(st.off);
  st.off += 8;
  return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

function i64(st) {
  need(st, 8);
  const v = st.b.readBigInt64BE(st.off);
  st.off += 8;
  return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : v;
}

function uint(st, n) {
  need(st, n);
  const v = n === 1 ? st.b.readUInt8(st.off) : n === 2 ? st.b.readUInt16BE(st.off) : st.b.readUInt32BE(st.off);
  st.off += n;
  return v;
}

function int(st, n) {
  need(st, n);
  const v = n === 1 ? st.b.readInt8(st.off) : n === 2 ? st.b.readInt16BE(st.off) : st.b.readInt32BE(st.off);
  st.off += n;
  return v;
}

function str(st, n) {
  need(st, n);
  const s = st.b.toString('utf8', st.off, st.off + n);
  st.off += n;
  return s;
}

function bin(st, n) {
  need(st, n);
  const s = Buffer.from(st.b.subarray(st.off, st.off + n));
  st.off += n;
  return s;
}

function arr(st, n) {
  const a = new Array(n);
  for (let i = 0; i < n; i++) a[i] = read(st);
  return a;
}

function map(st, n) {
  const m = {};
  for (let i = 0; i < n; i++) {
    const k = read(st);
    m[String(k)] = read(st);
  }
  return m;
}

function read(st) {
  need(st, 1);
  const t = st.b[st.off++];
  if (t <= 0x7f) return t; // positive fixint
  if (t >= 0xe0) return t - 0x100; // negative fixint
  if ((t & 0xf0) === 0x80) return map(st, t & 0x0f); // fixmap
  if ((t & 0xf0) === 0x90) return arr(st, t & 0x0f); // fixarray
  if ((t & 0xe0) === 0xa0) return str(st, t & 0x1f); // fixstr
  switch (t) {
    case 0xc0: return null;
    case 0xc2: return false;
    case 0xc3: return true;
    case 0xc4: return bin(st, uint(st, 1));
    case 0xc5: return bin(st, uint(st, 2));
    case 0xc6: return bin(st, uint(st, 4));
    case 0xca: { need(st, 4); const v = st.b.readFloatBE(st.off); st.off += 4; return v; }
    case 0xcb: { need(st, 8); const v = st.b.readDoubleBE(st.off); st.off += 8; return v; }
    case 0xcc: return uint(st, 1);
    case 0xcd: return uint(st, 2);
    case 0xce: return uint(st, 4);
    case 0xcf: return u64(st);
    case 0xd0: return int(st, 1);
    case 0xd1: return int(st, 2);
    case 0xd2: return int(st, 4);
    case 0xd3: return i64(st);
    case 0xd9: return str(st, uint(st, 1));
    case 0xda: return str(st, uint(st, 2));
    case 0xdb: return str(st, uint(st, 4));
    case 0xdc: return arr(st, uint(st, 2));
    case 0xdd: return arr(st, uint(st, 4));
    case 0xde: return map(st, uint(st, 2));
    case 0xdf: return map(st, uint(st, 4));
    default:
      throw new MsgpackError(`msgpack: unsupported type byte 0x${t.toString(16)} at ${st.off - 1}`);
  }
}

/** Encodes null, booleans, integers (Number or BigInt), floats, strings, Buffers, arrays and plain objects. */
export function encode(v) {
  const parts = [];
  write(parts, v);
  return Buffer.concat(parts);
}

function hdr(byte, n, size) {
  const b = Buffer.alloc(1 + size);
  b[0] = byte;
  if (size === 1) b.writeUInt8(n, 1);
  else if (size === 2) b.writeUInt16BE(n, 1);
  else if (size === 4) b.writeUInt32BE(n, 1);
  return b;
}

function write(parts, v) {
  if (v === null || v === undefined) return parts.push(Buffer.from([0xc0]));
  if (v === true) return parts.push(Buffer.from([0xc3]));
  if (v === false) return parts.push(Buffer.from([0xc2]));
  if (typeof v === 'bigint' || (typeof v === 'number' && Number.isInteger(v))) {
    const n = BigInt(v);
    if (n >= 0n) {
      if (n <= 0x7fn) return parts.push(Buffer.from([Number(n)]));
      if (n <= 0xffn) return parts.push(hdr(0xcc, Number(n), 1));
      if (n <= 0xffffn) return parts.push(hdr(0xcd, Number(n), 2));
      if (n <= 0xffffffffn) return parts.push(hdr(0xce, Number(n), 4));
      const b = Buffer.alloc(9); b[0] = 0xcf; b.writeBigUInt64BE(n, 1); return parts.push(b);
    }
    if (n >= -32n) return parts.push(Buffer.from([Number(n) & 0xff]));
    if (n >= -0x80n) { const b = Buffer.alloc(2); b[0] = 0xd0; b.writeInt8(Number(n), 1); return parts.push(b); }
    if (n >= -0x8000n) { const b = Buffer.alloc(3); b[0] = 0xd1; b.writeInt16BE(Number(n), 1); return parts.push(b); }
    if (n >= -0x80000000n) { const b = Buffer.alloc(5); b[0] = 0xd2; b.writeInt32BE(Number(n), 1); return parts.push(b); }
    const b = Buffer.alloc(9); b[0] = 0xd3; b.writeBigInt64BE(n, 1); return parts.push(b);
  }
  if (typeof v === 'number') { const b = Buffer.alloc(9); b[0] = 0xcb; b.writeDoubleBE(v, 1); return parts.push(b); }
  if (typeof v === 'string') {
    const s = Buffer.from(v, 'utf8');
    const n = s.length;
    parts.push(n < 32 ? Buffer.from([0xa0 | n]) : n <= 0xff ? hdr(0xd9, n, 1) : n <= 0xffff ? hdr(0xda, n, 2) : hdr(0xdb, n, 4));
    return parts.push(s);
  }
  if (Buffer.isBuffer(v) || v instanceof Uint8Array) {
    const n = v.length;
    parts.push(n <= 0xff ? hdr(0xc4, n, 1) : n <= 0xffff ? hdr(0xc5, n, 2) : hdr(0xc6, n, 4));
    return parts.push(Buffer.from(v));
  }
  if (Array.isArray(v)) {
    const n = v.length;
    parts.push(n < 16 ? Buffer.from([0x90 | n]) : n <= 0xffff ? hdr(0xdc, n, 2) : hdr(0xdd, n, 4));
    for (const x of v) write(parts, x);
    return;
  }
  if (typeof v === 'object') {
    const ks = Object.keys(v);
    const n = ks.length;
    parts.push(n < 16 ? Buffer.from([0x80 | n]) : n <= 0xffff ? hdr(0xde, n, 2) : hdr(0xdf, n, 4));
    for (const k of ks) { write(parts, k); write(parts, v[k]); }
    return;
  }
  throw new MsgpackError(`msgpack: cannot encode ${typeof v}`);
}

export const EVENT_TRANSITION = 1;
export const EVENT_HEARTBEAT = 2;

/**
 * Decodes an event published on ev:{pN} (proto/README.md):
 * [1, kind, user, status, last_seen, version, ts_ms, to] ->
 * {format, kind, user, status, last_seen, version, ts_ms, to}.
 * last_seen stays a number (0 = none); `to` is always an array (an empty map,
 * which Lua's cmsgpack emits for an empty table, becomes []). Extra trailing
 * elements are ignored, as the proto allows; anything else malformed throws.
 */
export function decodeEvent(buf) {
  const a = decode(buf);
  if (!Array.isArray(a) || a.length < 8) throw new MsgpackError(`event: expected an array of >= 8 elements, got ${JSON.stringify(a)}`);
  const [format, kind, user, status, lastSeen, version, tsMs, to] = a;
  if (format !== 1) throw new MsgpackError(`event: unknown format ${format}`);
  const toList = Array.isArray(to) ? to : to && typeof to === 'object' && Object.keys(to).length === 0 ? [] : null;
  if (toList === null) throw new MsgpackError(`event: 'to' is neither an array nor an empty map: ${JSON.stringify(to)}`);
  for (const [name, v] of [['kind', kind], ['last_seen', lastSeen], ['version', version], ['ts_ms', tsMs]]) {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new MsgpackError(`event: ${name} is not a uint: ${v}`);
  }
  if (typeof user !== 'string' || typeof status !== 'string') throw new MsgpackError('event: user/status are not strings');
  return { format, kind, user, status, last_seen: lastSeen, version, ts_ms: tsMs, to: toList.map(String) };
}
