/**
 * How the browser tests start Chromium: Debian's headless build (or
 * CHROMIUM_PATH), with its own network features (QUIC, component updates,
 * sync…) switched off, since this sandbox refuses them, so that only the
 * page under test talks.
 */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
