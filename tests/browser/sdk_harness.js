// Loaded into a blank page of the server's origin by test_js_sdk.py: one ParleyClient whose
// every event is logged for the test to read. Tokens come from the test (window.freshToken).
import { ParleyClient } from "/parley.js";

const log = { messages: [], unread: [], typing: [], status: [], presence: [], tokens: 0 };

window.harness = {
  log,
  client: null,
  /** @param {string} url */
  async start(url) {
    const client = new ParleyClient({
      url,
      token: async () => {
        log.tokens += 1;
        return await window.freshToken();
      },
      reconnectDelayMs: 50,
    });
    client.on("message", (message) => log.messages.push(message));
    client.on("unread", (badge) => log.unread.push(badge));
    client.on("typing", (typing) => log.typing.push(typing));
    client.on("status", (status) => log.status.push(status.state));
    client.on("presence", (presence) => log.presence.push(presence));
    window.harness.client = client;
    await client.connect();
    return client.user.id;
  },
  seqs(conversationId) {
    return log.messages.filter((m) => m.conversation_id === conversationId).map((m) => m.seq);
  },
};
window.dispatchEvent(new Event("harness-ready"));
