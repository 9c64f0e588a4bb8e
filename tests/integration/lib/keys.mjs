// keys.mjs: the partition function and the Redis key names of
// docs/data-model.md, as the services compute them (common/partition.h), so
// that tests can look at and subscribe to exactly what the services use.

/** CRC16/XMODEM (poly 0x1021, init 0, no reflection): Redis Cluster's slot checksum. */
export function crc16(data) {
  const b = Buffer.isBuffer(data) ? data : Buffer.from(String(data), 'utf8');
  let crc = 0;
  for (const byte of b) {
    crc ^= byte << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}

export const DEFAULT_PARTITIONS = 1024;

/** crc16(user) mod P. */
export function partitionOf(user, partitions = DEFAULT_PARTITIONS) {
  if (!(partitions >= 1)) throw new Error(`partitions must be >= 1, got ${partitions}`);
  return crc16(user) % partitions;
}

const tag = (p) => `{p${p}}`;

/** Key builders. Functions taking `user` compute the partition with P (default 1024). */
export const keys = {
  tag,
  presence: (user, P = DEFAULT_PARTITIONS) => `pr:${tag(partitionOf(user, P))}:${user}`,
  deadlines: (p) => `dl:${tag(p)}`,
  deadlinesOf: (user, P = DEFAULT_PARTITIONS) => `dl:${tag(partitionOf(user, P))}`,
  events: (p) => `ev:${tag(p)}`,
  eventsOf: (user, P = DEFAULT_PARTITIONS) => `ev:${tag(partitionOf(user, P))}`,
  owner: (p) => `own:${tag(p)}`,
  ownerOf: (user, P = DEFAULT_PARTITIONS) => `own:${tag(partitionOf(user, P))}`,
  route: (user, P = DEFAULT_PARTITIONS) => `rt:${tag(partitionOf(user, P))}:${user}`,
  // partition.h: "hb:{pN}:<user>/<device>" (ids never contain '/').
  hb: (user, device, P = DEFAULT_PARTITIONS) => `hb:${tag(partitionOf(user, P))}:${user}/${device}`,
  contacts: (user) => `ct:${user}`, // ct:alice ∋ bob: bob may watch alice
  watches: (user) => `cw:${user}`, // cw:bob ∋ alice: reverse of ct:
  userGroups: (user) => `ug:${user}`,
  groupMembers: (group) => `gm:${group}`,
  groupInstances: (group) => `gi:${group}`,
  instance: (id) => `inst:${id}`,
  instances: () => 'insts',
  instanceConns: (id) => `ic:${id}`,
  cleanupLock: (id) => `cl:${id}`,
  workers: () => 'wk',
};

/** The fields of pr:{pN}:<user> (docs/data-model.md). */
export const fields = {
  device: (device) => `d:${device}`,
  pref: 'pref',
  realStatus: 'rs',
  status: 'st',
  version: 'ver',
  lastSeen: 'ls',
};

/** Parses a device field value: "h|<activity>|<deadline_ms>|<seen_ms>" or "c|<activity>|<instance>". */
export function parseDevice(value) {
  if (value == null) return null;
  const p = String(value).split('|');
  if (p[0] === 'h') return { kind: 'http', activity: p[1], deadline: Number(p[2]), seen: Number(p[3]) };
  if (p[0] === 'c') return { kind: 'conn', activity: p[1], instance: p[2] };
  return { kind: 'unknown', raw: String(value) };
}
