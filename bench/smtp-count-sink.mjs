// An SMTP sink that only counts: it speaks enough SMTP for any client (EHLO, MAIL, RCPT, DATA,
// RSET, NOOP, QUIT; PIPELINING-safe because it answers line by line), stores nothing but the
// acceptance time of each message and a few samples, and tracks connections. Fast enough that it
// is never the limit of what it measures (maildev is).

import { createServer } from 'node:net';

export async function startCountingSink({ keepSamples = 20 } = {}) {
  const accepted = []; // acceptance times (ms since epoch)
  const samples = [];
  let connections = 0;
  let open = 0;
  let maxOpen = 0;
  const server = createServer((socket) => {
    connections++;
    open++;
    maxOpen = Math.max(maxOpen, open);
    socket.setNoDelay(true);
    let buf = '';
    let inData = false;
    let data = [];
    socket.on('close', () => {
      open--;
    });
    socket.on('error', () => {});
    socket.write('220 count-sink ready\r\n');
    socket.on('data', (chunk) => {
      buf += chunk.toString('latin1');
      let out = '';
      for (;;) {
        const nl = buf.indexOf('\r\n');
        if (nl < 0) break;
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 2);
        if (inData) {
          if (line === '.') {
            inData = false;
            accepted.push(Date.now());
            if (samples.length < keepSamples) samples.push(data.join('\r\n') + '\r\n');
            data = [];
            out += '250 2.0.0 accepted\r\n';
          } else if (samples.length < keepSamples) {
            data.push(line.startsWith('..') ? line.slice(1) : line);
          }
          continue;
        }
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === 'EHLO') out += '250-count-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 52428800\r\n';
        else if (verb === 'HELO') out += '250 count-sink\r\n';
        else if (verb === 'MAIL' || verb === 'RCPT' || verb === 'RSET' || verb === 'NOOP') out += '250 2.0.0 ok\r\n';
        else if (verb === 'DATA') {
          inData = true;
          out += '354 go ahead\r\n';
        } else if (verb === 'QUIT') {
          socket.end('221 2.0.0 bye\r\n');
          return;
        } else out += '502 5.5.2 not implemented\r\n';
      }
      if (out) socket.write(out);
    });
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  return {
    port: server.address().port,
    accepted,
    samples,
    stats: () => ({ connections, maxOpen }),
    reset() {
      accepted.length = 0;
      connections = 0;
      maxOpen = 0;
    },
    stop: () => new Promise((ok) => server.close(() => ok())),
  };
}
