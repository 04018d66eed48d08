/**
 * For the reload tests: a config file on disk (a reload re-reads it), an upstream that holds its
 * streams until told, and a hundred streams through the real openai SDK.
 */
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import type http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { loadConfigFile } from '../../core/config/config.js';
import type { Gateway } from '../../core/gateway.js';
import { createGateway } from '../../app/gateway.js';
import { LogCapture } from './gateway.js';
import { gatewayConfig, type GatewayConfigOptions } from './proxy-config.js';
import { recordOutput, registerSecret } from './secret-scan.js';
import { happyStream, startUpstream, writeSseHead, type TestUpstream } from './upstream.js';

export const UPSTREAM_KEY = 'sk-upstream-secret-abcdef';
export const OLD_KEY = 'sk-client-old-0123456789';
export const NEW_KEY = 'sk-client-new-0123456789';
export const STAY_KEY = 'sk-client-stay-012345678';
registerSecret(UPSTREAM_KEY, OLD_KEY, NEW_KEY, STAY_KEY);

/** A config directory of its own; `write` replaces the file by rename, as editors and deploy tools do. */
export class ConfigDir {
  readonly dir = mkdtempSync(join(tmpdir(), 'tapgate-reload-'));
  readonly file = join(this.dir, 'config.yaml');
  private n = 0;

  write(text: string): void {
    const tmp = join(this.dir, `.config.yaml.${++this.n}`);
    writeFileSync(tmp, text);
    renameSync(tmp, this.file);
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** An openai upstream entry for `gatewayConfig`. */
export function openaiUpstream(name: string, up: TestUpstream, extra: Record<string, unknown> = {}) {
  return { name, type: 'openai', baseUrl: `${up.url}/v1`, apiKey: UPSTREAM_KEY, ...extra };
}

export function reloadConfig(
  o: Partial<GatewayConfigOptions> & Pick<GatewayConfigOptions, 'upstreams'>,
): string {
  return gatewayConfig({
    keys: [
      { name: 'old', key: OLD_KEY },
      { name: 'stay', key: STAY_KEY },
    ],
    // Off unless asked: a gateway booted from a file would bind the default 127.0.0.1:9464.
    metrics: { enabled: false },
    ...o,
  });
}

/**
 * An upstream that answers every request with a Responses stream: its opening events at once, the
 * rest when `release()` is called (at once when `holding` is off).
 */
export interface HoldingUpstream extends TestUpstream {
  holding: boolean;
  /** Streams opened and not finished yet. */
  readonly held: Set<http.ServerResponse>;
  release(): void;
  /** Connections open on it now (the gateway's agent closing them is what a drain ends with). */
  connections(): Promise<number>;
}

export async function startHoldingUpstream(): Promise<HoldingUpstream> {
  const held = new Set<http.ServerResponse>();
  const frames = happyStream();
  const finish = (res: http.ServerResponse) => {
    held.delete(res);
    for (const f of frames.slice(2)) res.write(f);
    res.end();
  };
  const up = (await startUpstream((_req, res) => {
    writeSseHead(res);
    res.write(frames[0]!);
    res.write(frames[1]!);
    if (!state.holding) return finish(res);
    held.add(res);
  })) as HoldingUpstream;
  const state = up;
  up.holding = true;
  Object.defineProperty(up, 'held', { value: held });
  up.release = () => {
    for (const res of [...held]) finish(res);
  };
  up.connections = () =>
    new Promise((resolve, reject) => up.server.getConnections((err, n) => (err ? reject(err) : resolve(n))));
  return up;
}

export interface FileGateway {
  gw: Gateway;
  url: string;
  logs(): Record<string, unknown>[];
  close(): Promise<void>;
}

/** A gateway booted from the file, as the CLI boots it (a reload reads the same file). */
export async function startFileGateway(file: string): Promise<FileGateway> {
  const capture = new LogCapture();
  recordOutput('log', () => capture.lines.join('\n'));
  const gw = await createGateway(loadConfigFile(file), { logDestination: capture });
  await gw.listen();
  return {
    gw,
    url: gw.url,
    logs: () => capture.lines.map((l) => JSON.parse(l) as Record<string, unknown>),
    close: () => gw.close(0),
  };
}

export function client(baseUrl: string, apiKey: string): OpenAI {
  return new OpenAI({ baseURL: `${baseUrl}/v1`, apiKey, maxRetries: 0 });
}

/** A stream through the SDK: resolves with its event types once it has ended (rejects on any error). */
export interface OpenStream {
  /** Resolves once the first event arrived. */
  started: Promise<void>;
  done: Promise<string[]>;
}

export function openStream(c: OpenAI, model = 'gpt-test'): OpenStream {
  let started!: () => void;
  const startedP = new Promise<void>((r) => (started = r));
  const done = (async () => {
    const types: string[] = [];
    const stream = await c.responses.create({ model, input: 'hi', stream: true });
    for await (const ev of stream) {
      types.push(ev.type);
      started();
    }
    return types;
  })();
  // A failure before the first event must not leave `started` pending forever.
  done.catch(() => started());
  return { started: startedP, done };
}

/** Every stream ended with response.completed: none failed, none was cut. */
export async function allCompleted(streams: OpenStream[]): Promise<number> {
  const results = await Promise.allSettled(streams.map((s) => s.done));
  const failed = results.filter((r) => r.status === 'rejected');
  if (failed.length > 0)
    throw new Error(
      `${failed.length} streams failed: ${String((failed[0] as PromiseRejectedResult).reason)}`,
    );
  const cut = results.filter(
    (r) => (r as PromiseFulfilledResult<string[]>).value.at(-1) !== 'response.completed',
  );
  if (cut.length > 0) throw new Error(`${cut.length} streams did not end with response.completed`);
  return results.length;
}

/** Polls the upstream until no connection is open to it (the gateway's agent for it was destroyed). */
export async function untilNoConnections(up: HoldingUpstream, ms = 5000): Promise<void> {
  const end = performance.now() + ms;
  while ((await up.connections()) > 0) {
    if (performance.now() > end) throw new Error(`connections still open to the upstream after ${ms}ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
