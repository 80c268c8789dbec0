// A graphql-ws client (the one browsers and Node apps use) following one document's progress.
// Usage: node subscribe.mjs <ws url> <api key> <document id>; prints one JSON line per event.
import { createClient } from "graphql-ws";
import WebSocket from "ws";

const [url, key, documentId] = process.argv.slice(2);
const client = createClient({
  url,
  webSocketImpl: WebSocket,
  connectionParams: { authorization: `Bearer ${key}` },
  retryAttempts: 0,
});
const query = `subscription($id: UUID!) {
  documentProgress(documentId: $id) { seq status percent }
}`;
try {
  for await (const result of client.iterate({ query, variables: { id: documentId } })) {
    console.log(JSON.stringify(result));
  }
} finally {
  await client.dispose();
}
