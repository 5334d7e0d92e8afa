// Stands in for the queue broker under bare workerd: reads every send, counts its messages and drops them, so
// the pixel benchmark measures the worker's own cost (verify + classify + enqueue), not a broker's.
// The queue binding needs the broker's answer shape (as miniflare's broker sends it).
let received = 0; // events
let sends = 0; // requests to the broker: send or sendBatch
const answer = () =>
  Response.json({ metadata: { metrics: { backlogCount: 0, backlogBytes: 0, oldestMessageTimestamp: 0 } } });
export default {
  async fetch(request) {
    const url = new URL(request.url);
    if (url.pathname === '/count') return Response.json({ received, sends });
    sends++;
    // `sendBatch` posts `/batch` with `{messages: [...]}`; `send` posts one message.
    if (url.pathname.endsWith('/batch')) received += (await request.json()).messages.length;
    else {
      await request.arrayBuffer();
      received++;
    }
    return answer();
  },
};
