// A scripted SMTP server for fault injection: plain SMTP on loopback that answers per recipient
// (`temp…@` gets 451 a set number of times, `bounce…@` gets 550 5.1.1) and can answer every command
// slowly. `setMode` makes the whole server misbehave as a broken relay or account would:
// `greeting` (554 on connect), `auth` (535 to AUTH), `quota` (452 to MAIL FROM), `mailfrom`
// (550 5.7.1 to MAIL FROM); `ok` again fixes it. Records each accepted message (envelope recipient
// and raw data) and every connection and refusal.

import { createServer } from 'node:net';

export function startSmtpFaultSink({ tempFailures = 2, delayMs = 0 } = {}) {
  const accepted = [];
  const refused = [];
  const tempLeft = new Map();
  let slow = delayMs;
  let mode = 'ok';
  let connections = 0;
  const server = createServer((socket) => {
    socket.setEncoding('utf8');
    let buffer = '';
    let data = null;
    let rcpt = [];
    const reply = (line) => setTimeout(() => socket.write(`${line}\r\n`), slow);
    connections++;
    if (mode === 'greeting') {
      refused.push({ stage: 'greeting', code: 554 });
      reply('554 5.3.2 fault-sink is not accepting mail');
      setTimeout(() => socket.end(), slow + 50);
      return;
    }
    reply('220 fault-sink ESMTP');
    socket.on('data', (chunk) => {
      buffer += chunk;
      for (;;) {
        if (data !== null) {
          const end = buffer.indexOf('\r\n.\r\n');
          if (end < 0) return;
          data += buffer.slice(0, end);
          buffer = buffer.slice(end + 5);
          for (const to of rcpt) accepted.push({ to, data });
          data = null;
          rcpt = [];
          reply('250 2.0.0 queued');
          continue;
        }
        const nl = buffer.indexOf('\r\n');
        if (nl < 0) return;
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 2);
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === 'EHLO' || verb === 'HELO') reply('250-fault-sink\r\n250-AUTH PLAIN\r\n250 8BITMIME');
        else if (verb === 'AUTH') {
          if (mode === 'auth') {
            refused.push({ stage: 'auth', code: 535 });
            reply('535 5.7.8 authentication credentials invalid');
          } else reply('235 2.7.0 authenticated');
        } else if (verb === 'MAIL' && mode === 'quota') {
          refused.push({ stage: 'mail', code: 452 });
          reply('452 4.3.1 sending quota exceeded');
        } else if (verb === 'MAIL' && mode === 'mailfrom') {
          refused.push({ stage: 'mail', code: 550 });
          reply('550 5.7.1 sender address rejected');
        } else if (verb === 'MAIL') reply('250 2.1.0 ok');
        else if (verb === 'RCPT') {
          const to = (/<([^>]*)>/.exec(line) ?? [])[1] ?? '';
          if (to.startsWith('bounce')) {
            refused.push({ to, code: 550 });
            reply('550 5.1.1 no such user');
          } else if (to.startsWith('temp') && (tempLeft.get(to) ?? tempFailures) > 0) {
            tempLeft.set(to, (tempLeft.get(to) ?? tempFailures) - 1);
            refused.push({ to, code: 451 });
            reply('451 4.7.1 try again later');
          } else {
            rcpt.push(to);
            reply('250 2.1.5 ok');
          }
        } else if (verb === 'DATA') {
          if (!rcpt.length) reply('554 5.5.1 no valid recipients');
          else {
            data = '';
            reply('354 go ahead');
          }
        } else if (verb === 'RSET') {
          rcpt = [];
          reply('250 2.0.0 reset');
        } else if (verb === 'QUIT') {
          reply('221 2.0.0 bye');
          setTimeout(() => socket.end(), slow + 10);
        } else reply('502 5.5.2 not implemented');
      }
    });
    socket.on('error', () => {});
  });
  return new Promise((ok) => server.listen(0, '127.0.0.1', () => ok({
    port: server.address().port,
    accepted: () => accepted.slice(),
    refused: () => refused.slice(),
    setDelay: (ms) => { slow = ms; },
    setMode: (m) => { mode = m; },
    connections: () => connections,
    stop: () => new Promise((done) => server.close(done)),
  })));
}
