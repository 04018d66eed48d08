/**
 * One upstream's keep-alive connections: an undici pool (HTTP/1.1, one request per connection at a
 * time), with the sockets it opens kept in view so that a connect nobody waits for any more can be
 * dropped, and tests and the soak can see what is open. The http-proxy-3 transport uses a keep-alive
 * agent instead, made here on its first use; its sockets are kept in view the same way.
 */
import http from 'node:http';
import https from 'node:https';
import net, { type Socket } from 'node:net';
import { buildConnector, Pool } from 'undici';

const NOBODY_WAITING = Object.assign(new Error('no request waits for this connection'), {
  code: 'TAPGATE_NOBODY_WAITING',
});

export class UpstreamConnections {
  readonly pool: Pool;
  /** Connected sockets, until they close. */
  readonly sockets = new Set<Socket>();
  /** Sockets still connecting. */
  readonly connecting = new Set<Socket>();
  /** Attempts sent and not yet on a connection: when none is left, a pending connect serves nobody. */
  waiting = 0;

  /** The keep-alive agent of the http-proxy-3 transport, made the first time that transport sends here. */
  private httpAgent: http.Agent | undefined;

  constructor(
    private readonly origin: string,
    connectTimeout: number,
  ) {
    // 0 is "no limit" for both the config and undici's connector.
    const connector = buildConnector({ timeout: connectTimeout });
    this.pool = new Pool(origin, {
      connect: (options, callback) => {
        // undici re-queues a request it was told to abort and connects again for it, only to drop
        // it: with no attempt waiting for a connection, that connect is refused instead.
        if (this.waiting === 0) {
          queueMicrotask(() => callback(NOBODY_WAITING, null));
          return;
        }
        const socket = connector(options, (err, connected) => {
          this.connecting.delete(socket as Socket);
          if (err !== null) return callback(err, null);
          this.track(connected as Socket);
          callback(null, connected);
        }) as unknown as Socket;
        this.connecting.add(socket);
        return socket;
      },
      pipelining: 1,
      // The attempt runs its own connect, first-byte and idle clocks (they pause for a slow client).
      headersTimeout: 0,
      bodyTimeout: 0,
    });
  }

  private track(socket: Socket): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
  }

  /** Like undici's: in `connecting` until connected (so a connect nobody waits for is dropped), then in `sockets`. */
  private trackAgentSocket(socket: Socket): void {
    if (!socket.connecting) return this.track(socket);
    this.connecting.add(socket);
    const forget = (): void => {
      this.connecting.delete(socket);
    };
    socket.once('close', forget);
    socket.once('connect', () => {
      socket.off('close', forget);
      forget();
      this.track(socket);
    });
  }

  /** The last attempt waiting for a connection gave up: connects in progress are for nobody now. */
  dropUnwantedConnects(): void {
    if (this.waiting > 0) return;
    for (const socket of this.connecting) socket.destroy();
    this.connecting.clear();
  }

  /** Requests on a connection now. */
  get busy(): number {
    let n = this.pool.stats.running;
    // The agent's `sockets` are the ones assigned to a request (idle ones are in `freeSockets`).
    if (this.httpAgent !== undefined)
      for (const list of Object.values(this.httpAgent.sockets)) n += list?.length ?? 0;
    return n;
  }

  /** A keep-alive agent (without one http-proxy-3 sends `connection: close`); its sockets are tracked too. */
  get agent(): http.Agent {
    if (this.httpAgent !== undefined) return this.httpAgent;
    const options = {
      keepAlive: true,
      keepAliveMsecs: 10_000,
      maxFreeSockets: 256,
      scheduling: 'lifo' as const,
    };
    const agent = this.origin.startsWith('https:') ? new https.Agent(options) : new http.Agent(options);
    const create = agent.createConnection.bind(agent);
    agent.createConnection = (options, callback) => {
      const socket = create(options, callback);
      if (socket instanceof net.Socket) this.trackAgentSocket(socket);
      return socket;
    };
    this.httpAgent = agent;
    return agent;
  }

  close(): void {
    this.pool.destroy().catch(() => {});
    this.httpAgent?.destroy();
  }
}
