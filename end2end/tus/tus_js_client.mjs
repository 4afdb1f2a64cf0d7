// Drives Depot's resumable uploads with tus-js-client (npm), the tus
// project's JavaScript client, unchanged, as a Node script would use it.
//
// Run by server/tests/api/uploads.rs: DEPOT_URL and DEPOT_OTHER_URL are two
// servers of one deployment (or one server and itself restarted), DEPOT_USER
// and DEPOT_PASSWORD who uploads. The upload begins on the first and its
// connection is cut in the middle of a chunk; a new client resumes it through
// the second, a dropped request on the way is retried, and the image's
// SHA-256 must be the file's. Exits non-zero, with the reason, on the first
// thing that is wrong.

import { createHash, randomBytes } from 'node:crypto';
import * as tus from 'tus-js-client';

const URL = process.env.DEPOT_URL;
const OTHER_URL = process.env.DEPOT_OTHER_URL;
const auth = 'Basic ' + Buffer.from(`${process.env.DEPOT_USER}:${process.env.DEPOT_PASSWORD}`).toString('base64');
const CHUNK = 1 << 20;

function check(condition, message) {
  if (!condition) {
    console.error(`FAILED: ${message}`);
    process.exit(1);
  }
}

const media = randomBytes(6 * CHUNK + 4321);
media.write('CD001', 0x8001, 'latin1');
const sha256 = createHash('sha256').update(media).digest('hex');

// First client: two chunks and a half, then the connection is cut.
const path = await new Promise((resolve, reject) => {
  let cut = false;
  const upload = new tus.Upload(media, {
    endpoint: `${URL}/api/uploads`,
    headers: { Authorization: auth },
    chunkSize: CHUNK,
    metadata: { filename: 'tus-js-client.iso', label: 'from tus-js-client' },
    onProgress(sent) {
      if (sent >= 2.5 * CHUNK && !cut) {
        cut = true;
        upload.abort().then(() => resolve(new globalThis.URL(upload.url).pathname), reject);
      }
    },
    onSuccess: () => reject(new Error('the upload finished before it was cut')),
    onError: reject,
  });
  upload.start();
});

const head = await fetch(`${OTHER_URL}${path}`, {
  method: 'HEAD',
  headers: { Authorization: auth, 'Tus-Resumable': '1.0.0' },
});
check(head.status === 200, `HEAD on the other server: ${head.status}`);
const kept = Number(head.headers.get('upload-offset'));
check(kept >= 2 * CHUNK && kept < media.length, `offset after the cut: ${kept}`);

// Second client, through the other server: its first PATCH is dropped
// before it reaches the server, and retried.
const offsets = [];
let dropped = false;
await new Promise((resolve, reject) => {
  const upload = new tus.Upload(media, {
    uploadUrl: `${OTHER_URL}${path}`,
    headers: { Authorization: auth },
    chunkSize: CHUNK,
    retryDelays: [0, 100, 500],
    onBeforeRequest(request) {
      if (request.getMethod() !== 'PATCH') return;
      if (!dropped) {
        dropped = true;
        throw new Error('the network dropped this request');
      }
      offsets.push(Number(request.getHeader('Upload-Offset')));
    },
    onSuccess: resolve,
    onError: reject,
  });
  upload.start();
});
check(dropped, 'no request was dropped');
check(offsets[0] === kept, `resumed at ${offsets[0]}, not at the server's ${kept}`);

const answer = await fetch(`${OTHER_URL}${path}`, { headers: { Authorization: auth } });
check(answer.status === 200, `GET the upload: ${answer.status}`);
const { image } = await answer.json();
check(image.sha256 === sha256, `image ${JSON.stringify(image)}`);
check(image.name === 'tus-js-client.iso' && image.label === 'from tus-js-client', `image ${JSON.stringify(image)}`);
console.log('tus-js-client: cut, resumed elsewhere after a dropped request, and the image is the file');
