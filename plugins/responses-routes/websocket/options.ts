/** The `websocket` option of responses-routes: Responses over WebSocket on the same routes. */
import { z } from 'zod';
import { duration, integer, size } from '../../../core/index.js';

export const websocketSchema = z.strictObject({
  /** Off: an upgrade on a Responses route gets 426, and clients (Codex) use HTTP at once. */
  enabled: z.boolean().default(true),
  /** A socket with no turn for this long is closed (Codex reconnects on its next turn). 0: never. */
  idleTimeout: duration().default(10 * 60_000),
  /**
   * A socket's age limit: the next turn after it gets `websocket_connection_limit_reached`, the
   * Responses API's own signal, and Codex reconnects with the full input. The API's cap is 60 minutes.
   */
  maxAge: duration()
    .pipe(z.number().min(1000))
    .default(60 * 60_000),
  /** Open sockets per client key; an upgrade over it gets 426, so the client uses HTTP instead. */
  maxSocketsPerKey: integer(1, 100_000).default(32),
  /** A ping this often; a peer that has not answered the previous one is dropped. 0: no pings. */
  pingInterval: duration().default(30_000),
  /** permessage-deflate, when the client offers it (Codex does). */
  compression: z.boolean().default(true),
  /** Output the client has not taken beyond this pauses the upstream (backpressure). */
  maxBufferedBytes: size()
    .pipe(z.number().min(1024))
    .default(1024 * 1024),
});

export type WebSocketOptions = z.output<typeof websocketSchema>;
