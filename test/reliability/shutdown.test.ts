/**
 * Graceful shutdown at scale, through the real CLI (app/bin.js): SIGTERM while 100 streams are in
 * flight against a Codex upstream that streams slowly, and while that account's token refresh is
 * still running. test/core/cli.test.ts covers one stream that finishes and one that is cut; this
 * covers both kinds at once, the refused connections, and the credential write-back at exit.
 */
import assert from 'node:assert/strict';
import { countRecords } from '../helpers/usage.js';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import YAML from 'yaml';
import { killStrayClis, runCli, type Cli } from '../helpers/cli.js';
import { startCodexBackend, type CodexBackend } from '../helpers/codex-backend.js';
import { accessToken, idToken, writeAuthFile, type CodexLogin } from '../helpers/codex-jwt.js';
import { startTokenServer, type TokenServer } from '../helpers/codex-token-server.js';
import { CLIENT_KEY } from '../helpers/gateway.js';
import { deadline, parseSse } from '../helpers/raw.js';
import {
  frame,
  happyStream,
  MESSAGE_ITEM,
  responseObject,
  USAGE,
  writeSseHead,
} from '../helpers/upstream.js';

const STREAMS = 100;
const DRAIN_MS = 1500;
/** How often the upstream sends each open stream another delta. */
const TICK_MS = 100;
const ACCOUNT = 'acct-shutdown';

/** One stream as the Codex backend writes it: the frames so far, and whether it may finish. */
interface UpstreamStream {
  res: http.ServerResponse;
  sent: string[];
  seq: number;
  fast: boolean;
}

const part = { item_id: 'msg_1', output_index: 0, content_index: 0 };

/** The opening of a stream: two pre-output events, then the item, its part and a first delta. */
function opening(id: string): string[] {
  return [...happyStream(id).slice(0, 4), frame('response.output_text.delta', 4, { ...part, delta: 'tok ' })];
}

/** The end of a stream whose deltas came up to sequence `seq - 1`. */
function closing(id: string, seq: number): string[] {
  return [
    frame('response.output_item.done', seq, { output_index: 0, item: MESSAGE_ITEM }),
    frame('response.completed', seq + 1, {
      response: responseObject(id, 'completed', { output: [MESSAGE_ITEM], usage: USAGE }),
    }),
  ];
}

interface Ended {
  status: number;
  body: string;
  complete: boolean;
  /** performance.now() when the response closed. */
  at: number;
}

interface ClientStream {
  fast: boolean;
  /** Resolves once the first delta has arrived. */
  started: Promise<void>;
  /** Resolves when the response has ended (cleanly or not). */
  ended: Promise<Ended>;
}

function openStream(port: number, name: string, fast: boolean): ClientStream {
  let onStart!: () => void;
  const started = new Promise<void>((r) => (onStart = r));
  const ended = new Promise<Ended>((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: '/v1/responses',
        agent: false,
        headers: { authorization: `Bearer ${CLIENT_KEY}`, 'content-type': 'application/json' },
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          body += c;
          if (body.includes('response.output_text.delta')) onStart();
        });
        res.on('close', () =>
          resolve({ status: res.statusCode ?? 0, body, complete: res.complete, at: performance.now() }),
        );
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify({ model: 'gpt-5', input: name, stream: true }));
  });
  return { fast, started, ended };
}

/** A connection attempt with one request: `served <status>` if answered, else the error's code. */
function tryRequest(port: number): Promise<string> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/v1/models', agent: false }, (res) => {
      res.resume();
      resolve(`served ${String(res.statusCode)}`);
    });
    req.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? String(err)));
  });
}

describe('graceful shutdown: SIGTERM with 100 streams in flight and a token refresh running', function () {
  this.timeout(20_000);
  let dir: string;
  let tokens: TokenServer;
  let backend: CodexBackend;
  let ticker: NodeJS.Timeout | undefined;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tapgate-shutdown-'));
    tokens = await startTokenServer();
    backend = await startCodexBackend(tokens.accepts);
  });
  after(async () => {
    clearInterval(ticker);
    killStrayClis();
    await backend.close();
    await tokens.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses new connections, lets the streams that can finish finish, fails the rest with server_shutting_down, flushes auth.json, exits 0', async () => {
    // A token inside refreshAhead but still valid: the first request starts a refresh, which the
    // token server holds; the others go out with the current token meanwhile.
    const login: CodexLogin = {
      access_token: accessToken(ACCOUNT, 60),
      refresh_token: `rt-${ACCOUNT}-0`,
      id_token: idToken(ACCOUNT),
      account_id: ACCOUNT,
    };
    tokens.register(login, ACCOUNT);
    const authPath = writeAuthFile(dir, login, { custom_field: 'kept' });
    const originalInode = statSync(authPath).ino;
    const configPath = join(dir, 'tapgate.yaml');
    writeFileSync(
      configPath,
      YAML.stringify({
        server: { host: '127.0.0.1', port: 0, drainTimeout: `${DRAIN_MS}ms` },
        auth: { keys: [{ name: 'tester', key: '${TAPGATE_KEY}' }] },
        upstreams: [
          { name: 'cx', type: 'codex', baseUrl: backend.baseUrl, tokenUrl: tokens.url, auth: authPath },
        ],
        plugins: ['responses-routes', 'request-id', 'error-codes'],
      }),
    );

    // The backend streams slowly: a delta per stream every TICK_MS; a fast stream ends at the first
    // tick after `finishFast`, a slow one never does.
    const upstreamStreams = new Map<string, UpstreamStream>();
    let finishFast = false;
    backend.answer = (rec, res) => {
      const name = /"(fast-\d+|slow-\d+|refresh)"/.exec(rec.body.toString())?.[1] ?? 'unknown';
      writeSseHead(res);
      const sent = opening(`resp_${name}`);
      res.write(sent.join(''));
      upstreamStreams.set(name, { res, sent, seq: sent.length, fast: name.startsWith('fast-') });
    };
    ticker = setInterval(() => {
      for (const [name, s] of upstreamStreams) {
        if (s.res.destroyed || s.res.writableEnded) continue;
        if (s.fast && finishFast) {
          const end = closing(`resp_${name}`, s.seq);
          s.sent.push(...end);
          s.res.end(end.join(''));
          continue;
        }
        const delta = frame('response.output_text.delta', s.seq++, { ...part, delta: 'tok ' });
        s.sent.push(delta);
        s.res.write(delta);
      }
    }, TICK_MS);

    const cli: Cli = runCli(['--config', configPath], { env: { TAPGATE_KEY: CLIENT_KEY } });
    const port = (await cli.logLine('tapgate listening')).port as number;

    const releaseRefresh = tokens.hold();
    const refreshing = openStream(port, 'refresh', false);
    await deadline(tokens.arrived(1), 5000, 'the refresh request');
    const streams = Array.from({ length: STREAMS }, (_, i) =>
      i % 2 === 0 ? openStream(port, `fast-${i}`, true) : openStream(port, `slow-${i}`, false),
    );
    await deadline(Promise.all(streams.map((s) => s.started)), 8000, `${STREAMS} streams started`);
    assert.equal(tokens.requests.length, 1, 'one refresh, still running');

    const sigterm = performance.now();
    cli.child.kill('SIGTERM');
    const shutting = await cli.logLine('shutting down');
    assert.equal(shutting.inflight, STREAMS + 1, 'the 100 streams and the request waiting for the refresh');

    // New connections are refused at once. An attempt that raced the listener's close may be reset,
    // but none is served.
    const attempts: string[] = [];
    while (attempts.at(-1) !== 'ECONNREFUSED') {
      attempts.push(await tryRequest(port));
      assert.ok(
        performance.now() - sigterm < 1000,
        `not refused within 1 s of SIGTERM: ${attempts.join(', ')}`,
      );
    }
    assert.deepEqual(
      attempts.filter((a) => a !== 'ECONNREFUSED' && a !== 'ECONNRESET'),
      [],
      'no new request is served while draining',
    );
    assert.equal(cli.child.exitCode, null, 'still draining');

    // The fast streams can finish within the drain timeout; the slow ones cannot.
    finishFast = true;
    // The refresh answers only after the drain timeout has cut the rest: exit must wait for its write-back.
    await cli.logLine('drain timeout: ended requests still in flight');
    releaseRefresh();
    const exit = await deadline(cli.closed, 8000, 'tapgate exit');
    assert.deepEqual(exit, { code: 0, signal: null });

    const results = await Promise.all(streams.map((s) => s.ended));
    for (const [i, r] of results.entries()) {
      const name = `${streams[i]!.fast ? 'fast' : 'slow'}-${i}`;
      const sent = upstreamStreams.get(name)!.sent.join('');
      assert.equal(r.status, 200, name);
      assert.ok(r.complete, `${name}: the stream ended cleanly`);
      if (streams[i]!.fast) {
        // Untouched: exactly the upstream's bytes, ending in response.completed.
        assert.equal(r.body, sent, `${name}: the client got the upstream's stream unchanged`);
        assert.equal(parseSse(r.body).at(-1)!.event, 'response.completed');
        assert.ok(r.at - sigterm < DRAIN_MS, `${name}: finished within the drain timeout`);
        continue;
      }
      // What the upstream sent until the cut, unchanged, then exactly one response.failed.
      const events = parseSse(r.body);
      const failed = events.filter((e) => e.event === 'response.failed');
      assert.equal(failed.length, 1, `${name}: one response.failed`);
      assert.equal(events.at(-1), failed[0], `${name}: nothing after response.failed`);
      const response = failed[0]!.json.response as {
        status: string;
        error: { code: string; message: string };
      };
      assert.equal(response.status, 'failed');
      assert.equal(response.error.code, 'server_shutting_down');
      assert.equal(response.error.message, 'Gateway shut down before the response finished');
      // The default errorEvent announces it, with the same reason.
      const announced = events.at(-2)!;
      assert.equal(announced.event, 'error', `${name}: an error event just before response.failed`);
      assert.equal(announced.json.code, 'server_shutting_down');
      const forwarded = r.body.slice(0, r.body.lastIndexOf('event: error'));
      assert.ok(sent.startsWith(forwarded), `${name}: the events before it are the upstream's, unchanged`);
      assert.ok(events.length > opening('x').length + 1, `${name}: it kept streaming while draining`);
      // Cut by the gateway's drain timer, which started when the signal arrived, after `sigterm`.
      assert.ok(r.at - sigterm >= DRAIN_MS - 5, `${name}: cut only at the drain timeout`);
    }

    // The request that waited for the refresh had not started: a 503 with the same code.
    const waited = await refreshing.ended;
    assert.equal(waited.status, 503);
    assert.equal(JSON.parse(waited.body).error.code, 'server_shutting_down');
    assert.equal(backend.requests.length, STREAMS, 'nothing went upstream after its client was answered');

    const warn = await cli.logLine('drain timeout: ended requests still in flight');
    assert.equal(warn.count, STREAMS / 2 + 1);
    await cli.logLine('tapgate stopped');
    // Every request has its access line, written before exit.
    const access = cli
      .stdout()
      .split('\n')
      .filter((l) => l.includes('"path":"/v1/responses"'))
      .map((l) => JSON.parse(l) as { status: number; outcome: string });
    assert.equal(access.length, STREAMS + 1);
    assert.equal(access.filter((l) => l.outcome === 'ok').length, STREAMS / 2);
    assert.equal(access.filter((l) => l.outcome === 'error').length, STREAMS / 2 + 1);

    // Nothing lost: the refresh that finished during shutdown reached auth.json before exit.
    const doc = JSON.parse(readFileSync(authPath, 'utf8')) as {
      tokens: { access_token: string; refresh_token: string; account_id: string };
      custom_field: string;
    };
    assert.equal(doc.tokens.refresh_token, `rt-${ACCOUNT}-1`, 'the rotated refresh token is on disk');
    assert.notEqual(doc.tokens.access_token, login.access_token);
    assert.ok(tokens.accepts(doc.tokens.access_token), 'the access token on disk is the new one');
    assert.equal(doc.tokens.account_id, ACCOUNT);
    assert.equal(doc.custom_field, 'kept');
    assert.notEqual(statSync(authPath).ino, originalInode, 'replaced by the atomic write-back');
    assert.equal(statSync(authPath).mode & 0o777, 0o600);
    assert.deepEqual(
      readdirSync(dir).sort(),
      ['auth.json', 'data', 'tapgate.yaml'],
      'no temp file left behind',
    );
    // The usage records (on by default) of every stream in flight at SIGTERM were written before the exit.
    assert.ok(countRecords(join(dir, 'data', 'usage.db')) >= 100, 'the streams in flight were recorded');
  });
});
