// Parley's JavaScript SDK: one ES module, no build step, no dependencies.
//
// It keeps the client-side half of Parley's guarantees (docs/protocol.md, "Keeping a
// device's view exact"), so an app never writes them itself:
// - reconnects with backoff and jitter, says hello with a fresh token, then syncs;
// - hands every message to "message" handlers exactly once, in seq order per conversation,
//   fetching any gap from the server;
// - retries a request in flight across a disconnect (a send keeps its client_msg_id, so it
//   is stored once and resolves once);
// - applies unread badges by version, never going back to an older value;
// - ends typing indicators by themselves;
// - renews the token on the same socket when the server says it is expiring;
// - hands edits and unsends, the app's own included, to "updated" handlers.

/** @typedef {import("./parley").Message} Message */
/** @typedef {import("./parley").Conversation} Conversation */
/** @typedef {import("./parley").ParleyClientOptions} ParleyClientOptions */
/** @typedef {import("./parley").ParleyEvents} ParleyEvents */
/** @typedef {import("./parley").Status} Status */
/** @typedef {import("./parley").OfferAnswer} OfferAnswer */
/** @typedef {import("./parley").SearchPage} SearchPage */

const DEFAULT_TYPING_INTERVAL_MS = 2000;
const SYNC_BATCH = 100; // conversations per sync frame, the server's bound
const GAP_WAIT_MS = 1000; // how long an out-of-order seq may wait before a sync fetches it
const RECEIPT_WAIT_MS = 500; // message.received waits this long, to cover what comes with it
const RECEIPTS_PER_FRAME = 100; // the server's bound on message.received's conversations
const PRESENCE_PER_FRAME = 100; // the server's bound on presence.subscribe's user_ids
const SEND_RETRIES = 5; // retryable refusals (rate_limited, unavailable) of one send
const DISCOVER_PAGE = 50; // inbox rows read after a reconnect for conversations new to it

/** An `error` reply, or the client closing with the request unanswered. */
export class ParleyError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   * @param {{retryable?: boolean, retryAfterMs?: number | null}} [details]
   */
  constructor(code, message, details = {}) {
    super(message);
    this.name = "ParleyError";
    this.code = code;
    this.retryable = details.retryable ?? false;
    this.retryAfterMs = details.retryAfterMs ?? null;
  }
}

/** A new client_msg_id: random, so a retry anywhere can reuse it and nothing else does. */
export function newClientMsgId() {
  const crypto = globalThis.crypto;
  if (crypto && typeof crypto.randomUUID === "function") return crypto.randomUUID();
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
}

/** @param {number} ms */
const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * One conversation's delivery state: the highest seq handed to handlers, and the messages
 * that arrived ahead of a gap.
 */
class Sequence {
  /** @param {number} delivered */
  constructor(delivered) {
    this.delivered = delivered;
    /** @type {Map<number, Message>} */
    this.ahead = new Map();
    /** @type {ReturnType<typeof setTimeout> | null} */
    this.gapTimer = null;
  }
}

/** Receipts move forward only: whether `seq` moves the one kept under `key` (then kept).
 * @param {Map<string, number>} watermarks @param {string} key @param {number} seq */
function advances(watermarks, key, seq) {
  if ((watermarks.get(key) ?? -1) >= seq) return false;
  watermarks.set(key, seq);
  return true;
}

export class ParleyClient {
  /** @param {ParleyClientOptions} options */
  constructor(options) {
    if (!options || !options.url || !options.token) {
      throw new TypeError("new ParleyClient({url, token}): both are required");
    }
    this.url = options.url;
    this._token = options.token;
    this._WebSocket = options.WebSocket ?? globalThis.WebSocket;
    this._minDelayMs = options.reconnectDelayMs ?? 500;
    this._maxDelayMs = options.maxReconnectDelayMs ?? 30000;
    this._requestTimeoutMs = options.requestTimeoutMs ?? 10000;
    this._autoReceipts = options.autoReceipts ?? true;
    /** @type {Map<number, number>} conversation -> highest seq to confirm as received */
    this._toConfirm = new Map();
    /** @type {ReturnType<typeof setTimeout> | null} */
    this._receiptTimer = null;
    /** @type {Map<string, number>} "conversation:recipient" -> highest delivered seq seen */
    this._deliveries = new Map();
    /** @type {Map<number, import("./parley").Presence>} watched user -> what was last told */
    this.presence = new Map();
    /** @type {import("./parley").UserSettings} */
    this.settings = { show_presence: true };
    /** @type {Status} */
    this.status = "closed";
    /** @type {import("./parley").User | null} */
    this.user = null;
    /** @type {Record<string, number>} */
    this.limits = {};
    /** @type {{total: number, version: number}} */
    this.unread = { total: 0, version: -1 };
    /** @type {Map<string, Set<Function>>} */
    this._handlers = new Map();
    /** @type {Map<number, Sequence>} */
    this._sequences = new Map();
    /** @type {Map<number, {count: number, version: number}>} */
    this._badges = new Map();
    /** @type {Map<string, number>} "conversation:reader" -> highest up_to_seq seen */
    this._reads = new Map();
    /** @type {Map<string, ReturnType<typeof setTimeout>>} "conversation:user" -> expiry */
    this._typing = new Map();
    /** @type {Map<number, number>} conversation -> when this client last sent a start */
    this._typingSent = new Map();
    /** @type {Map<string, {frame: object, resolve: Function, reject: Function, sentOn: WebSocket | null, timer: ReturnType<typeof setTimeout> | null}>} */
    this._pending = new Map();
    this._nextId = 1;
    /** @type {WebSocket | null} */
    this._socket = null;
    /** @type {WebSocket | null} a socket past its hello: requests may go on it */
    this._ready = null;
    this._attempt = 0;
    this._refusedOnce = false;
    this._everOpen = false;
    this._closedByUser = true;
    /** @type {ReturnType<typeof setTimeout> | null} */
    this._reconnectTimer = null;
    this._onOffline = () => this._socket && this._socket.close(4000, "offline");
    this._onOnline = () => this._socket === null && this._reconnectNow();
  }

  /**
   * Listen for "message", "updated", "read", "delivered", "typing", "unread", "conversation",
   * "presence", "settings" or "status".
   * @template {keyof ParleyEvents} K
   * @param {K} event
   * @param {(payload: ParleyEvents[K]) => void} handler
   * @returns {() => void} a function that removes the handler
   */
  on(event, handler) {
    let handlers = this._handlers.get(event);
    if (!handlers) this._handlers.set(event, (handlers = new Set()));
    handlers.add(handler);
    return () => handlers.delete(handler);
  }

  /** @param {string} event @param {unknown} payload */
  _emit(event, payload) {
    for (const handler of this._handlers.get(event) ?? []) {
      try {
        handler(payload);
      } catch (error) {
        // One app handler's bug must not stop the others, nor the client.
        setTimeout(() => {
          throw error;
        });
      }
    }
  }

  /** @param {Status} state @param {{code?: number, reason?: string, delayMs?: number}} [detail] */
  _setStatus(state, detail = {}) {
    this.status = state;
    this._emit("status", { state, ...detail });
  }

  /** Open the connection; resolves once the first hello is answered. */
  connect() {
    if (!this._closedByUser) return this._opened;
    this._closedByUser = false;
    this._opened = new Promise((resolve, reject) => {
      this._resolveOpened = resolve;
      this._rejectOpened = reject;
    });
    globalThis.addEventListener?.("offline", this._onOffline);
    globalThis.addEventListener?.("online", this._onOnline);
    this._setStatus("connecting");
    this._open();
    return this._opened;
  }

  /** Close for good: pending requests fail with `closed`, no reconnect. */
  close() {
    this._closedByUser = true;
    globalThis.removeEventListener?.("offline", this._onOffline);
    globalThis.removeEventListener?.("online", this._onOnline);
    if (this._reconnectTimer) clearTimeout(this._reconnectTimer);
    const socket = this._socket;
    this._socket = this._ready = null;
    if (socket) socket.close(1000, "client closed");
    for (const [id, request] of this._pending) {
      if (request.timer) clearTimeout(request.timer);
      request.reject(new ParleyError("closed", "the client was closed"));
      this._pending.delete(id);
    }
    this._clearTyping();
    this._rejectOpened?.(new ParleyError("closed", "the client was closed"));
    this._setStatus("closed");
  }

  async _token_() {
    return typeof this._token === "function" ? await this._token() : this._token;
  }

  _open() {
    const socket = new this._WebSocket(this.url);
    this._socket = socket;
    socket.onopen = async () => {
      try {
        const token = await this._token_();
        if (this._socket !== socket) return;
        const data = /** @type {any} */ (await this._request({ type: "hello", token }, socket));
        this._welcome(data);
        this._attempt = 0;
        this._refusedOnce = false;
        this._ready = socket;
        this._setStatus("open");
        this._resolveOpened?.();
        this._resolveOpened = this._rejectOpened = undefined;
        for (const [id, request] of this._pending) {
          if (request.sentOn !== socket) this._transmit(id, request);
        }
        const reconnected = this._everOpen;
        this._everOpen = true;
        // Presence subscriptions belong to a socket: this one takes over the watched users.
        const watching = this._watchPresence([...this.presence.keys()]);
        await this.sync();
        if (reconnected) await this._discover();
        await watching;
      } catch (error) {
        // Unauthorized: the server closes with 4401 and onclose decides. Anything else (the
        // token function failed, the socket went) is a reconnect.
        if (this._socket === socket && !(error instanceof ParleyError)) socket.close(4000);
      }
    };
    socket.onmessage = (event) => this._receive(socket, event.data);
    socket.onclose = (event) => this._closed(socket, event.code, event.reason);
  }

  /** @param {WebSocket} socket @param {number} code @param {string} reason */
  _closed(socket, code, reason) {
    if (this._socket !== socket) return;
    this._socket = this._ready = null;
    this._clearTyping();
    for (const [id, request] of this._pending) {
      // A hello belongs to its socket; every other request is sent again on the next one.
      if (request.frame.type === "hello") {
        if (request.timer) clearTimeout(request.timer);
        request.reject(new ParleyError("disconnected", "the socket closed"));
        this._pending.delete(id);
      }
    }
    if (this._closedByUser) return;
    if (code === 4401 && typeof this._token === "function" && !this._refusedOnce) {
      // A token function may have handed out a stale token: ask it once more, now.
      this._refusedOnce = true;
      this._open();
      return;
    }
    if (code === 4401) {
      // The token itself was refused: retrying it cannot help.
      const error = new ParleyError("unauthorized", reason || "token refused");
      this._rejectOpened?.(error);
      this._closedByUser = true;
      for (const [id, request] of this._pending) {
        request.reject(error);
        this._pending.delete(id);
      }
      this._setStatus("closed", { code, reason });
      return;
    }
    const base = Math.min(this._maxDelayMs, this._minDelayMs * 2 ** this._attempt);
    const wait = Math.round(base / 2 + Math.random() * (base / 2)); // jitter: spread a herd
    this._attempt += 1;
    this._setStatus("reconnecting", { code, reason, delayMs: wait });
    this._reconnectTimer = setTimeout(() => this._reconnectNow(), wait);
  }

  _reconnectNow() {
    if (this._closedByUser || this._socket) return;
    if (this._reconnectTimer) clearTimeout(this._reconnectTimer);
    this._reconnectTimer = null;
    this._open();
  }

  /** @param {any} data the hello reply */
  _welcome(data) {
    this.user = data.user;
    this.limits = data.limits ?? {};
    if (data.settings) this._applySettings(data.settings);
    this._applyTotal(data.unread_total, data.unread_version);
  }

  /**
   * Send a request and wait for its reply, across reconnects.
   * @param {Record<string, unknown>} frame
   * @param {WebSocket | null} [socket] only this socket (hello); otherwise whichever is open
   */
  _request(frame, socket = null) {
    const id = String(this._nextId++);
    return new Promise((resolve, reject) => {
      const request = { frame: { ...frame, id }, resolve, reject, sentOn: null, timer: null };
      if (socket) {
        this._pending.set(id, request);
        this._transmit(id, request, socket);
        return;
      }
      if (this._closedByUser) {
        reject(new ParleyError("closed", "connect() first, or the client was closed"));
        return;
      }
      this._pending.set(id, request);
      if (this._ready) this._transmit(id, request);
    });
  }

  /** @param {string} id @param {any} request @param {WebSocket | null} [to] */
  _transmit(id, request, to = null) {
    const socket = /** @type {WebSocket} */ (to ?? this._ready);
    request.sentOn = socket;
    socket.send(JSON.stringify(request.frame));
    if (request.timer) clearTimeout(request.timer);
    // No reply in time: the connection is not working; a new one retries the request.
    request.timer = setTimeout(() => {
      if (this._pending.has(id) && request.sentOn === socket && this._socket === socket) {
        socket.close(4000, "request timed out");
      }
    }, this._requestTimeoutMs);
  }

  /** @param {WebSocket} socket @param {unknown} raw */
  _receive(socket, raw) {
    if (this._socket !== socket || typeof raw !== "string") return;
    const frame = JSON.parse(raw);
    if (frame.type === "ok" || frame.type === "error") {
      const request = this._pending.get(String(frame.id));
      if (!request) return;
      this._pending.delete(String(frame.id));
      if (request.timer) clearTimeout(request.timer);
      if (frame.type === "ok") request.resolve(frame.data);
      else {
        request.reject(
          new ParleyError(frame.code, frame.message, {
            retryable: frame.retryable,
            retryAfterMs: frame.retry_after_ms,
          }),
        );
      }
      return;
    }
    this._event(frame);
  }

  /** @param {any} frame */
  _event(frame) {
    switch (frame.type) {
      case "message.new":
        this._stopTyping(frame.message.conversation_id, frame.message.sender_id);
        this._accept(frame.message);
        break;
      case "message.updated":
        this._emit("updated", frame.message);
        break;
      case "message.read":
        this._applyRead(frame);
        break;
      case "message.delivered":
        this._applyDelivered(frame);
        break;
      case "typing":
        this._applyTyping(frame);
        break;
      case "unread":
        this._applyTotal(frame.total, frame.version);
        this._applyCount(frame.conversation_id, frame.count, frame.version);
        break;
      case "conversation.updated":
        this._learn(frame.conversation);
        this._emit("conversation", frame.conversation);
        break;
      case "presence":
        this._applyPresence(frame);
        break;
      case "user.settings":
        this._applySettings(frame.settings);
        break;
      case "token.expiring":
        this._renewToken();
        break;
      case "resync":
        this.sync().catch(() => {});
        break;
    }
  }

  async _renewToken() {
    const socket = this._ready;
    try {
      const token = await this._token_();
      if (socket && this._ready === socket) {
        this._welcome(await this._request({ type: "hello", token }, socket));
      }
    } catch {
      // The socket keeps its old token until the server closes it with 4411; the
      // reconnect then asks the token function again.
    }
  }

  // --- messages, in seq order, once each -----------------------------------------------

  /** Start tracking a conversation from what the server says it holds now.
   * @param {Conversation} conversation */
  _learn(conversation) {
    const known = this._sequences.get(conversation.id);
    if (!known) this._sequences.set(conversation.id, new Sequence(conversation.last_seq));
    this._applyCount(conversation.id, conversation.unread_count, conversation.unread_version);
  }

  /** @param {Message} message */
  _accept(message) {
    let sequence = this._sequences.get(message.conversation_id);
    if (!sequence) {
      // A conversation this device has not seen: start from this message, and tell the
      // app what the conversation is.
      sequence = new Sequence(message.seq - 1);
      this._sequences.set(message.conversation_id, sequence);
      this.getConversation(message.conversation_id).then(
        (conversation) => this._emit("conversation", conversation),
        () => {},
      );
    }
    if (message.seq <= sequence.delivered) return; // a duplicate
    sequence.ahead.set(message.seq, message);
    let next;
    while ((next = sequence.ahead.get(sequence.delivered + 1))) {
      sequence.ahead.delete(next.seq);
      sequence.delivered = next.seq;
      this._confirmReceived(next);
      this._emit("message", next);
    }
    if (sequence.ahead.size === 0) {
      if (sequence.gapTimer) clearTimeout(sequence.gapTimer);
      sequence.gapTimer = null;
    } else if (!sequence.gapTimer) {
      sequence.gapTimer = setTimeout(() => {
        sequence.gapTimer = null;
        if (sequence.ahead.size) this._sync([message.conversation_id]).catch(() => {});
      }, GAP_WAIT_MS);
    }
  }

  /** Fetch what this device missed in every conversation it holds (also run on reconnect). */
  async sync() {
    await this._sync([...this._sequences.keys()]);
  }

  /** After a reconnect: conversations that began while this device was away. Their messages
   * so far are history (read them with history()); what comes next is delivered. */
  async _discover() {
    const data = /** @type {any} */ (
      await this._request({ type: "conversation.list", limit: DISCOVER_PAGE })
    );
    for (const conversation of data.conversations) {
      if (this._sequences.has(conversation.id)) continue;
      this._learn(conversation);
      this._emit("conversation", conversation);
    }
  }

  /** @param {number[]} ids */
  async _sync(ids) {
    let todo = ids;
    while (todo.length) {
      const batch = todo.slice(0, SYNC_BATCH);
      todo = todo.slice(SYNC_BATCH);
      /** @type {Record<string, number>} */
      const conversations = {};
      for (const id of batch) conversations[id] = this._sequences.get(id)?.delivered ?? 0;
      const data = /** @type {any} */ (await this._request({ type: "sync", conversations }));
      for (const id of data.not_found) this._sequences.delete(id);
      for (const result of data.conversations) {
        this._learn(result.conversation);
        for (const message of result.messages) this._accept(message);
        this._emit("conversation", result.conversation);
        if (result.has_more) todo.push(result.conversation.id);
      }
      this._applyTotal(data.unread_total, data.unread_version);
    }
  }

  // --- badges by version, read receipts, typing ----------------------------------------

  /** @param {number} total @param {number} version */
  _applyTotal(total, version) {
    if (typeof version !== "number" || version <= this.unread.version) return;
    this.unread = { total, version };
    this._emit("unread", { total, version, conversation_id: null, count: null });
  }

  /** @param {number} conversationId @param {number} count @param {number} version */
  _applyCount(conversationId, count, version) {
    const badge = this._badges.get(conversationId);
    if (typeof version !== "number" || (badge && version <= badge.version)) return;
    this._badges.set(conversationId, { count, version });
    this._emit("unread", {
      total: this.unread.total,
      version: this.unread.version,
      conversation_id: conversationId,
      count,
    });
  }

  /** A conversation's unread count as this client knows it. @param {number} conversationId */
  unreadCount(conversationId) {
    return this._badges.get(conversationId)?.count ?? 0;
  }

  /** @param {import("./parley").DeliveredReceipt} receipt */
  _applyDelivered(receipt) {
    const key = `${receipt.conversation_id}:${receipt.recipient_id}`;
    if (!advances(this._deliveries, key, receipt.up_to_seq)) return;
    this._emit("delivered", {
      conversation_id: receipt.conversation_id,
      recipient_id: receipt.recipient_id,
      up_to_seq: receipt.up_to_seq,
      delivered_at: receipt.delivered_at,
    });
  }

  /** A message from the other side reached this device: confirm it (and everything before
   * it in its conversation) with one message.received for all its conversations, a moment later.
   * @param {Message} message */
  _confirmReceived(message) {
    if (!this._autoReceipts || message.sender_id === null) return;
    if (this.user && message.sender_id === this.user.id) return;
    const known = this._toConfirm.get(message.conversation_id) ?? 0;
    if (message.seq > known) this._toConfirm.set(message.conversation_id, message.seq);
    if (!this._receiptTimer) {
      this._receiptTimer = setTimeout(() => this._sendReceipts(), RECEIPT_WAIT_MS);
    }
  }

  _sendReceipts() {
    this._receiptTimer = null;
    const batch = [...this._toConfirm];
    this._toConfirm.clear();
    // One frame for up to RECEIPTS_PER_FRAME conversations: the server writes each in one
    // statement.
    for (let start = 0; start < batch.length; start += RECEIPTS_PER_FRAME) {
      const conversations = Object.fromEntries(batch.slice(start, start + RECEIPTS_PER_FRAME));
      // A lost receipt is covered by the next message's, or by sync's.
      this._request({ type: "message.received", conversations }).catch(() => {});
    }
  }

  /** @param {import("./parley").ReadReceipt} receipt */
  _applyRead(receipt) {
    const key = `${receipt.conversation_id}:${receipt.reader_id}`;
    if (!advances(this._reads, key, receipt.up_to_seq)) return;
    this._emit("read", {
      conversation_id: receipt.conversation_id,
      reader_id: receipt.reader_id,
      up_to_seq: receipt.up_to_seq,
      read_at: receipt.read_at,
    });
  }

  /** @param {any} frame */
  _applyTyping(frame) {
    const key = `${frame.conversation_id}:${frame.user_id}`;
    const timer = this._typing.get(key);
    if (timer) clearTimeout(timer);
    if (frame.state !== "start") {
      this._stopTyping(frame.conversation_id, frame.user_id);
      return;
    }
    const expiresIn = frame.expires_in_ms ?? 6000;
    this._typing.set(
      key,
      setTimeout(() => this._stopTyping(frame.conversation_id, frame.user_id), expiresIn),
    );
    if (!timer) {
      this._emit("typing", {
        conversation_id: frame.conversation_id,
        user_id: frame.user_id,
        typing: true,
      });
    }
  }

  /** @param {number} conversationId @param {number} userId */
  _stopTyping(conversationId, userId) {
    const key = `${conversationId}:${userId}`;
    const timer = this._typing.get(key);
    if (!timer) return;
    clearTimeout(timer);
    this._typing.delete(key);
    this._emit("typing", { conversation_id: conversationId, user_id: userId, typing: false });
  }

  _clearTyping() {
    for (const key of [...this._typing.keys()]) {
      const [conversationId, userId] = key.split(":").map(Number);
      this._stopTyping(conversationId, userId);
    }
  }

  // --- requests -------------------------------------------------------------------------

  /** @param {number} productId @returns {Promise<Conversation>} */
  async openConversation(productId) {
    const data = /** @type {any} */ (
      await this._request({ type: "conversation.open", product_id: productId })
    );
    this._learn(data.conversation);
    return data.conversation;
  }

  /** @param {number} conversationId @returns {Promise<Conversation>} */
  async getConversation(conversationId) {
    const data = /** @type {any} */ (
      await this._request({ type: "conversation.get", conversation_id: conversationId })
    );
    this._learn(data.conversation);
    return data.conversation;
  }

  /**
   * Send a message; resolves once with the stored message. A retry (after a disconnect, or a
   * retryable refusal) reuses the same client_msg_id, so the message is stored once.
   * @param {number} conversationId
   * @param {string} content
   * @param {{type?: "text" | "image" | "offer", metadata?: Record<string, unknown>, clientMsgId?: string}} [options]
   * @returns {Promise<Message>}
   */
  async send(conversationId, content, options = {}) {
    const frame = {
      type: "message.send",
      conversation_id: conversationId,
      client_msg_id: options.clientMsgId ?? newClientMsgId(),
      message_type: options.type ?? "text",
      content,
      metadata: options.metadata ?? {},
    };
    for (let attempt = 0; ; attempt++) {
      try {
        const data = /** @type {any} */ (await this._request(frame));
        this._typingSent.delete(conversationId);
        this._accept(data.message);
        return data.message;
      } catch (error) {
        if (!(error instanceof ParleyError) || !error.retryable || attempt >= SEND_RETRIES) {
          throw error;
        }
        await delay(error.retryAfterMs ?? this._minDelayMs * 2 ** attempt);
      }
    }
  }

  /**
   * Replace the text of one's own text message (within the server's edit window).
   * @param {number} messageId @param {string} content @returns {Promise<Message>}
   */
  async edit(messageId, content) {
    const data = /** @type {any} */ (
      await this._request({ type: "message.edit", message_id: messageId, content })
    );
    this._emit("updated", data.message);
    return data.message;
  }

  /**
   * Take back one's own message: both sides see it unsent.
   * @param {number} messageId @returns {Promise<Message>}
   */
  async unsend(messageId) {
    const data = /** @type {any} */ (
      await this._request({ type: "message.unsend", message_id: messageId })
    );
    this._emit("updated", data.message);
    return data.message;
  }

  /**
   * Make an offer on the conversation's listing; the conversation's open offer, if any, is
   * superseded. Idempotent like send.
   * @param {number} conversationId @param {number} amountCents @param {string} currency
   * @param {string} [content] @returns {Promise<Message>}
   */
  offer(conversationId, amountCents, currency, content = "") {
    return this.send(conversationId, content, {
      type: "offer",
      metadata: { amount_cents: amountCents, currency },
    });
  }

  /** Accept the other side's open offer. @param {number} messageId @returns {Promise<OfferAnswer>} */
  acceptOffer(messageId) {
    return this._answerOffer({ type: "offer.accept", message_id: messageId });
  }

  /** Decline the other side's open offer. @param {number} messageId @returns {Promise<OfferAnswer>} */
  declineOffer(messageId) {
    return this._answerOffer({ type: "offer.decline", message_id: messageId });
  }

  /**
   * Counter the other side's open offer with an offer of one's own.
   * @param {number} messageId @param {number} amountCents @returns {Promise<OfferAnswer>}
   */
  counterOffer(messageId, amountCents) {
    return this._answerOffer({
      type: "offer.counter",
      message_id: messageId,
      amount_cents: amountCents,
    });
  }

  /** Withdraw one's own open offer. @param {number} messageId @returns {Promise<OfferAnswer>} */
  withdrawOffer(messageId) {
    return this._answerOffer({ type: "offer.withdraw", message_id: messageId });
  }

  /**
   * @param {Record<string, unknown>} frame
   * @returns {Promise<OfferAnswer>}
   */
  async _answerOffer(frame) {
    const data = /** @type {OfferAnswer} */ (await this._request(frame));
    this._emit("updated", data.offer);
    for (const message of data.messages) this._accept(message);
    return data;
  }

  /**
   * Block a user: no message passes between you, and your conversations with them leave
   * your inbox and total. @param {number} userId @returns {Promise<unknown>}
   */
  block(userId) {
    return this._request({ type: "user.block", user_id: userId });
  }

  /**
   * Watch whether these users are online, on this socket and every later one: each change
   * comes as a "presence" event, and `presence` holds the latest. Someone who may not be
   * seen (no shared conversation, a block, hidden) is offline with no last seen.
   * @param {number[]} userIds
   * @returns {Promise<import("./parley").Presence[]>}
   */
  async subscribePresence(userIds) {
    for (const userId of userIds) {
      if (!this.presence.has(userId)) {
        this.presence.set(userId, { user_id: userId, online: false, last_seen_at: null });
      }
    }
    return this._watchPresence(userIds);
  }

  /** Stop watching these users. @param {number[]} userIds @returns {Promise<void>} */
  async unsubscribePresence(userIds) {
    for (const userId of userIds) this.presence.delete(userId);
    for (let start = 0; start < userIds.length; start += PRESENCE_PER_FRAME) {
      const ids = userIds.slice(start, start + PRESENCE_PER_FRAME);
      await this._request({ type: "presence.unsubscribe", user_ids: ids });
    }
  }

  /** @param {number[]} userIds */
  async _watchPresence(userIds) {
    /** @type {import("./parley").Presence[]} */
    const answers = [];
    for (let start = 0; start < userIds.length; start += PRESENCE_PER_FRAME) {
      const ids = userIds.slice(start, start + PRESENCE_PER_FRAME);
      const data = /** @type {any} */ (
        await this._request({ type: "presence.subscribe", user_ids: ids })
      );
      for (const entry of data.presence) {
        this._applyPresence(entry);
        answers.push(entry);
      }
    }
    return answers;
  }

  /** @param {import("./parley").Presence} entry */
  _applyPresence(entry) {
    const known = this.presence.get(entry.user_id);
    if (!known) return; // unsubscribed meanwhile
    const next = { user_id: entry.user_id, online: entry.online, last_seen_at: entry.last_seen_at };
    this.presence.set(entry.user_id, next);
    if (known.online !== next.online || known.last_seen_at !== next.last_seen_at) {
      this._emit("presence", next);
    }
  }

  /**
   * Change this user's own settings; `show_presence: false` hides their online state and
   * last seen from everyone. @param {Partial<import("./parley").UserSettings>} changes
   * @returns {Promise<import("./parley").UserSettings>}
   */
  async updateSettings(changes) {
    const data = /** @type {any} */ (await this._request({ type: "user.settings", ...changes }));
    this._applySettings(data.settings);
    return data.settings;
  }

  /** @param {import("./parley").UserSettings} settings */
  _applySettings(settings) {
    const changed = settings.show_presence !== this.settings.show_presence;
    this.settings = { ...settings };
    if (changed) this._emit("settings", this.settings);
  }

  /** The people this user blocked, most recent first.
   * @returns {Promise<import("./parley").User[]>} */
  async blockedUsers() {
    const data = /** @type {any} */ (await this._request({ type: "user.blocks" }));
    return data.users;
  }

  /** Take a block back. @param {number} userId @returns {Promise<unknown>} */
  unblock(userId) {
    return this._request({ type: "user.unblock", user_id: userId });
  }

  /**
   * Mute a conversation (until a time, or until unmuted): its count still moves, but it
   * leaves the total. @param {number} conversationId @param {Date | string} [until]
   * @returns {Promise<Conversation>}
   */
  async mute(conversationId, until) {
    /** @type {Record<string, unknown>} */
    const frame = { type: "conversation.mute", conversation_id: conversationId };
    if (until != null) frame.until = until instanceof Date ? until.toISOString() : until;
    const data = /** @type {any} */ (await this._request(frame));
    this._emit("conversation", data.conversation);
    return data.conversation;
  }

  /** @param {number} conversationId @returns {Promise<Conversation>} */
  async unmute(conversationId) {
    const data = /** @type {any} */ (
      await this._request({ type: "conversation.unmute", conversation_id: conversationId })
    );
    this._emit("conversation", data.conversation);
    return data.conversation;
  }

  /**
   * Report the other side's message for moderation (once; again returns the first report).
   * @param {number} messageId @param {string} reason
   * @returns {Promise<{report: import("./parley").MessageReport, created: boolean}>}
   */
  report(messageId, reason) {
    return /** @type {any} */ (
      this._request({ type: "message.report", message_id: messageId, reason })
    );
  }

  /**
   * Messages before `beforeSeq` (the newest if omitted), oldest first; or, with `aroundSeq`,
   * a page with that message in it, about half the page before it (to open a search result).
   * @param {number} conversationId
   * @param {{beforeSeq?: number, aroundSeq?: number, limit?: number}} [options]
   * @returns {Promise<Message[]>}
   */
  async history(conversationId, options = {}) {
    /** @type {Record<string, unknown>} */
    const frame = { type: "message.history", conversation_id: conversationId };
    if (options.beforeSeq != null) frame.before_seq = options.beforeSeq;
    if (options.aroundSeq != null) frame.around_seq = options.aroundSeq;
    if (options.limit != null) frame.limit = options.limit;
    const data = /** @type {any} */ (await this._request(frame));
    return data.messages;
  }

  /**
   * The user's messages holding every word of `query` (the last one as a prefix; case and
   * accents aside), newest first. `highlights` are [start, end) offsets in code points (use
   * `Array.from(content)` to cut them), never markup. Pass `next` back as `before`.
   * @param {string} query
   * @param {{conversationId?: number, before?: number | null, limit?: number}} [options]
   * @returns {Promise<SearchPage>}
   */
  async search(query, options = {}) {
    /** @type {Record<string, unknown>} */
    const frame = { type: "message.search", query };
    if (options.conversationId != null) frame.conversation_id = options.conversationId;
    if (options.before != null) frame.before = options.before;
    if (options.limit != null) frame.limit = options.limit;
    return /** @type {any} */ (await this._request(frame));
  }

  /** @param {number} conversationId @param {number} upToSeq */
  async markRead(conversationId, upToSeq) {
    const receipt = /** @type {any} */ (
      await this._request({
        type: "conversation.read",
        conversation_id: conversationId,
        up_to_seq: upToSeq,
      })
    );
    this._applyCount(conversationId, receipt.unread_count, receipt.unread_version);
    if (receipt.advanced) this._applyRead(receipt);
    return receipt;
  }

  /** Say the user is typing; called on every keystroke, sent at most once per interval.
   * @param {number} conversationId */
  typing(conversationId) {
    const interval = this.limits.typing_interval_ms ?? DEFAULT_TYPING_INTERVAL_MS;
    const now = Date.now();
    if (!this._ready || now - (this._typingSent.get(conversationId) ?? -Infinity) < interval) {
      return;
    }
    this._typingSent.set(conversationId, now);
    this._ready.send(
      JSON.stringify({ type: "typing", conversation_id: conversationId, state: "start" }),
    );
  }

  /**
   * The inbox, newest first; `archived: true` for the archive; `query` keeps the
   * conversations whose product title or other party's name holds it.
   * @param {{cursor?: string | null, limit?: number, archived?: boolean, query?: string}} [options]
   * @returns {Promise<{conversations: Conversation[], next_cursor: string | null}>}
   */
  async inbox(options = {}) {
    const data = /** @type {any} */ (
      await this._request({
        type: "conversation.list",
        cursor: options.cursor ?? null,
        limit: options.limit ?? 20,
        archived: options.archived ?? false,
        ...(options.query ? { query: options.query } : {}),
      })
    );
    for (const conversation of data.conversations) this._learn(conversation);
    return data;
  }

  /** @param {string} type @param {number} conversationId @returns {Promise<Conversation>} */
  async _change(type, conversationId) {
    const data = /** @type {any} */ (
      await this._request({ type, conversation_id: conversationId })
    );
    this._applyCount(
      conversationId,
      data.conversation.unread_count,
      data.conversation.unread_version,
    );
    this._emit("conversation", data.conversation);
    return data.conversation;
  }

  /** Hide a conversation and its history so far, for this user only. @param {number} conversationId */
  delete(conversationId) {
    return this._change("conversation.delete", conversationId);
  }

  /** @param {number} conversationId */
  archive(conversationId) {
    return this._change("conversation.archive", conversationId);
  }

  /** @param {number} conversationId */
  unarchive(conversationId) {
    return this._change("conversation.unarchive", conversationId);
  }
}
