/**
 * Closing a connection whose request is still arriving (a body over the limit, say) right after the
 * answer makes the kernel send a reset, for the bytes it holds unread, and a reset can discard the
 * answer before the client reads it: the client sees a dropped connection, not the 413. Like nginx's
 * lingering close, the gateway ends its side (the client reads the answer, then end of stream) and
 * keeps reading for a short while, so the client can stop sending and close first.
 */
import type { Socket } from 'node:net';

/** How long a connection is kept reading after its answer, at most. */
export const LINGER_MS = 2000;

/** Makes the server's close after this answer a lingering one. */
export function lingerOnClose(socket: Socket, ms: number = LINGER_MS): void {
  // node:http closes a `connection: close` response's socket with destroySoon() once the answer is out.
  socket.destroySoon = function lingeringDestroySoon(this: Socket): void {
    if (this.destroyed) return;
    this.end();
    // The HTTP parser goes on reading (and dropping) the request; past the bound, it is cut.
    const timer = setTimeout(() => this.destroy(), ms);
    timer.unref();
    this.once('close', () => clearTimeout(timer));
  };
}
