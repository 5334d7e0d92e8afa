// The runtime's floor: a JS worker that only returns the 43-byte GIF with the same headers as
// Epistola's pixel. Epistola's pixel is measured against this in the same run.
const GIF = Uint8Array.from(atob('R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAICRAEAOw=='), (c) => c.charCodeAt(0));
export default {
  fetch() {
    return new Response(GIF, {
      headers: {
        'content-type': 'image/gif',
        'cache-control': 'no-store, no-cache, must-revalidate, max-age=0',
        pragma: 'no-cache',
        expires: '0',
        'referrer-policy': 'no-referrer',
      },
    });
  },
};
