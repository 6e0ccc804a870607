/**
 * The server's URLs, built from the base URL the app passes (`https://push.example.com`,
 * or with a path prefix behind a proxy: `https://example.com/pushlog`).
 */

/** Parses the `url` option; relative URLs resolve against the page. */
export function parseBaseUrl(url: string | URL): URL {
  const page = (globalThis as { location?: { href?: string } }).location?.href;
  const base = new URL(url, page);
  // Accept ws(s):// too; the HTTP endpoints need the http(s) form.
  if (base.protocol === 'ws:') base.protocol = 'http:';
  if (base.protocol === 'wss:') base.protocol = 'https:';
  if (base.protocol !== 'http:' && base.protocol !== 'https:') {
    throw new TypeError(`pushlog: url must be http(s) or ws(s), not ${base.protocol}`);
  }
  base.search = '';
  base.hash = '';
  return base;
}

export function endpoint(
  base: URL,
  path: '/ws' | '/events/stream' | '/events/missed' | '/events/changes',
  query: Record<string, string | number | undefined>,
): string {
  const url = new URL(base.href);
  url.pathname = url.pathname.replace(/\/+$/, '') + path;
  if (path === '/ws') url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined) url.searchParams.set(key, String(value));
  }
  return url.href;
}
