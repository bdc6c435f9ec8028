// Names warmpool derives (no schema library: the long-running process imports this, not config.ts).

/** The host name as a replica name: lower case, dashes for anything else, at most 40 characters. */
export function replicaFromHost(name: string): string {
  const r = name
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+/, '')
    .slice(0, 40)
    .replace(/-+$/, '');
  return r || 'warmpool';
}
