// An example tapgate plugin in plain JavaScript: copy it, rename it, make it yours.
//
// It does two things:
//   1. stamps every response with `x-tapgate-audit: <name>`, so a client can tell which gateway
//      (and which audit trail) answered it;
//   2. appends one JSON line per finished request to a file: request id, client key name (never
//      the key), route, status, outcome and upstream.
//
// Enable it in config.yaml (the path is relative to the config file):
//
//   plugins:
//     - name: ./examples/audit-plugin.js
//       options:
//         file: ./audit.log     # required; relative to the directory tapgate runs in
//         name: gateway-eu-1    # optional; the header's value (default: tapgate)
//
// It imports zod, which resolves inside the tapgate checkout. Copied to a folder of its own, either
// install zod there (npm install zod) or replace `options` by any object with a `safeParse(value)`
// method (the README's plugin guide shows one): tapgate's own dependencies do not resolve from there.
import { openSync, createWriteStream } from 'node:fs';
import { z } from 'zod';

// The options schema: tapgate validates `options:` against it at boot, and a bad value stops the
// gateway with the key's path and line. Strict, so a typo (`fiel:`) is an error too.
const options = z.strictObject({
  file: z.string().min(1),
  name: z
    .string()
    .regex(/^[\x21-\x7e]+$/, 'use printable ASCII without spaces')
    .default('tapgate'),
});

export default class AuditPlugin {
  // `name` must be unique among enabled plugins; `dependsOn` would name plugins to apply first.
  // `apiVersion`: the plugin API it is written for; a tapgate that provides an older one refuses it at boot.
  static meta = { name: 'audit', options, apiVersion: 1 };

  // A plain JS plugin receives its validated options (defaults filled in) as its argument.
  constructor({ file, name }) {
    this.file = file;
    this.name = name;
    this.out = undefined;
  }

  // Runs once at boot. Tap hooks here; after boot they are sealed.
  apply(gateway) {
    // Opening now means a bad path (missing directory, no permission) fails the boot, not a request.
    this.out = createWriteStream('', { fd: openSync(this.file, 'a') });
    this.out.on('error', (err) => gateway.logger.error({ err, file: this.file }, 'audit: cannot write'));

    // `start` runs first for every request, so even a 401 or 404 carries the header.
    gateway.hooks.start.tap('audit', (ctx) => {
      ctx.res.setHeader('x-tapgate-audit', this.name);
    });

    // `finish` runs exactly once per request, whatever happened to it.
    gateway.hooks.finish.tap('audit', (ctx, outcome) => {
      const line = {
        time: new Date(ctx.receivedAt).toISOString(),
        id: ctx.id,
        client: ctx.clientName ?? null, // the key's name from auth.keys, or null
        route: ctx.route?.kind ?? null,
        status: outcome.status,
        outcome: outcome.kind, // ok, error or client_abort
        upstream: ctx.upstream?.name ?? null,
        ms: Math.round(outcome.durationMs),
      };
      this.out.write(JSON.stringify(line) + '\n');
    });
  }

  // Runs on shutdown, after in-flight requests have finished: flush and close the file.
  close() {
    const out = this.out;
    if (out === undefined) return undefined;
    return new Promise((resolve) => out.end(resolve));
  }
}
