// Queue sends of concurrent requests in one isolate, coalesced into one sendBatch: a send per
// request was the pixel's main cost. The first event of a batch opens it and sets a timer; the
// batch goes when the timer fires (MAX_DELAY_MS) or at once when it holds MAX_BATCH events.
//
// Whoever sends a batch waits for it: the request that opened it (its timer), or the one that
// filled it. Their waitUntil covers the send of every event in the batch; the other requests only
// add their event to it and wait for nothing. No promise is ever resolved in another request than
// the one that made it (workerd cancels such continuations once that request is done, and a
// request that waits on another's send is exactly that), and all I/O of a send happens in the
// request that waits for it. A batch the queue refuses is sent again one event at a time, so an
// event is lost only where a single send would have lost it too.

const MAX_BATCH = 100; // the platform's sendBatch limit
const MAX_DELAY_MS = 2;

let open = null;

/**
 * Adds `body` to the isolate's open batch for `queue`. Returns a promise for the request to
 * waitUntil if this request sends the batch (it settles to null, or to what went wrong), else null.
 */
export function coalescedSend(queue, body) {
  let batch = open;
  let timer = null;
  if (batch === null || batch.queue !== queue) {
    batch = { queue, messages: [], sent: false };
    open = batch;
    timer = new Promise((resolve) => setTimeout(() => resolve(flush(batch)), MAX_DELAY_MS));
  }
  batch.messages.push({ body, contentType: 'text' });
  if (batch.messages.length >= MAX_BATCH) return flush(batch);
  return timer;
}

async function flush(batch) {
  if (batch.sent) return null; // filled and sent by another request
  batch.sent = true;
  if (open === batch) open = null;
  try {
    await batch.queue.sendBatch(batch.messages);
    return null;
  } catch (batchError) {
    const one = batch.messages.map((m) => batch.queue.send(m.body, { contentType: 'text' }));
    const failed = (await Promise.allSettled(one)).filter((r) => r.status === 'rejected');
    return failed.length === 0
      ? null
      : `${failed.length} of ${batch.messages.length} events (${failed[0].reason}; the batch: ${batchError})`;
  }
}
