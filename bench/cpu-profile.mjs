// CPU profile of one worker under wrangler dev, through its DevTools inspector: start, then stop
// and summarise self time per function (wasm functions by name when the build keeps the name
// section: build with `worker-build --release` without scripts/build.sh's strip step).

import WebSocket from 'ws';

export async function startProfile(inspectorPort, workerName) {
  const targets = await (await fetch(`http://127.0.0.1:${inspectorPort}/json`)).json();
  const target = targets.find((t) => `${t.title} ${t.url} ${t.id}`.includes(workerName)) ?? targets[0];
  if (!target) throw new Error(`no inspector target: ${JSON.stringify(targets)}`);
  const ws = new WebSocket(target.webSocketDebuggerUrl);
  await new Promise((ok, fail) => {
    ws.once('open', ok);
    ws.once('error', fail);
  });
  let id = 0;
  const pending = new Map();
  ws.on('message', (m) => {
    const msg = JSON.parse(m);
    if (msg.id && pending.has(msg.id)) {
      pending.get(msg.id)(msg);
      pending.delete(msg.id);
    }
  });
  const call = (method, params = {}) => new Promise((ok) => {
    id++;
    pending.set(id, ok);
    ws.send(JSON.stringify({ id, method, params }));
  });
  await call('Profiler.enable');
  await call('Profiler.setSamplingInterval', { interval: 200 });
  await call('Profiler.start');
  return async function stop(top = 25) {
    const { result } = await call('Profiler.stop');
    ws.close();
    if (process.env.PROFILE_OUT) (await import('node:fs')).writeFileSync(process.env.PROFILE_OUT, JSON.stringify(result.profile));
    const { nodes, samples, timeDeltas } = result.profile;
    const byId = new Map(nodes.map((n) => [n.id, n]));
    const self = new Map();
    samples.forEach((s, i) => {
      const f = byId.get(s).callFrame;
      const name = `${f.functionName || '(anonymous)'} ${f.url.split('/').pop()}`;
      self.set(name, (self.get(name) ?? 0) + (timeDeltas[i] ?? 0));
    });
    const total = [...self.values()].reduce((a, b) => a + b, 0);
    return {
      target: target.title,
      totalMs: total / 1000,
      top: [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, top)
        .map(([name, us]) => ({ name, ms: us / 1000, share: us / total })),
    };
  };
}
