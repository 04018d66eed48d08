import type http from 'node:http';

export const HEAP_START: string;
export const HEAP_STOP: string;

export interface HeapSample {
  /** V8's estimate of every byte allocated while sampling (each node's selfSize is already scaled). */
  bytes: number;
  samples: number;
  interval: number;
}

export function startHeapSampling(samplingInterval: number): Promise<void>;
export function stopHeapSampling(): Promise<HeapSample>;
export function intervalFrom(url: string | undefined): number;
export function heapRoute(req: http.IncomingMessage, res: http.ServerResponse): boolean;
