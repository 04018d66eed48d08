/**
 * nginx as a reverse proxy, for reference: its own config in the run's temp dir (one worker,
 * upstream keep-alive, proxy_buffering off so SSE events pass as they come, no access log).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** The nginx binary, or undefined when it is not installed. */
export function findNginx(): string | undefined {
  const onPath = spawnSync('nginx', ['-v'], { stdio: 'ignore' });
  if (onPath.error === undefined) return 'nginx';
  for (const p of ['/usr/sbin/nginx', '/usr/local/sbin/nginx', '/usr/local/nginx/sbin/nginx'])
    if (existsSync(p)) return p;
  return undefined;
}

export function nginxVersion(bin: string): string {
  const r = spawnSync(bin, ['-v'], { encoding: 'utf8' });
  return (r.stderr || r.stdout).trim().replace(/^nginx version:\s*/, '');
}

/** Writes the config; returns the arguments that start nginx in the foreground with it. */
export function nginxArgs(dir: string, port: number, upstreamPort: number): string[] {
  mkdirSync(join(dir, 'logs'), { recursive: true });
  const conf = join(dir, 'nginx.conf');
  const errorLog = join(dir, 'logs', 'error.log');
  const temp = (name: string) => `${name}_temp_path ${join(dir, name)};`;
  writeFileSync(
    conf,
    `# Written by tapgate's bench for one run.
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile 16384;
pid ${join(dir, 'nginx.pid')};
# Errors only, so a failure can be explained; there is no access log.
error_log ${errorLog} error;

events {
  worker_connections 8192;
}

http {
  access_log off;
  ${temp('client_body')}
  ${temp('proxy')}
  ${temp('fastcgi')}
  ${temp('uwsgi')}
  ${temp('scgi')}
  # As Node's servers: no cap on requests per client connection.
  keepalive_requests 100000000;
  keepalive_timeout 65s;

  upstream bench_upstream {
    server 127.0.0.1:${upstreamPort};
    keepalive 256;
    keepalive_requests 100000000;
    keepalive_timeout 60s;
  }

  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://bench_upstream;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_read_timeout 10m;
    }
  }
}
`,
  );
  return ['-p', dir, '-e', errorLog, '-c', conf];
}
