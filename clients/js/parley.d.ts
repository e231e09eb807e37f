// Types for parley.js, kept by hand; `tsc --noEmit` checks them against the SDK in CI.

export type Status = "connecting" | "open" | "reconnecting" | "closed";
export type MessageType = "text" | "image" | "offer" | "system";

export interface User {
  id: number;
  display_name: string;
  avatar_url: string | null;
}

export interface Product {
  id: number;
  seller_id: number;
  title: string;
  price_cents: number | null;
  currency: string;
  image_url: string | null;
  /** "reserved" once an offer on it was accepted, for reserved_for. */
  status: "active" | "reserved" | "sold" | "deleted";
  reserved_for?: number | null;
}

/** One page of `search`: each message found, with [start, end) code point offsets. */
export interface SearchPage {
  results: { conversation_id: number; message: Message; highlights: [number, number][] }[];
  next: number | null;
}

export interface Message {
  id: number;
  conversation_id: number;
  seq: number;
  sender_id: number | null;
  recipient_id: number | null;
  message_type: MessageType;
  content: string;
  metadata: Record<string, unknown>;
  client_msg_id: string | null;
  is_read: boolean;
  read_at: string | null;
  created_at: string;
  /** Set once its sender edited it. */
  edited_at: string | null;
  /** Set once its sender took it back: content is then "" and metadata {}. */
  unsent_at: string | null;
  /** An offer's state; null for every other type. */
  offer_status: OfferStatus | null;
  /** Off-platform contact found in it ("phone", "email", "link", "iban", "payment"): warn
   * the recipient under it (not the sender). */
  safety: string[];
}

export type OfferStatus = "open" | "accepted" | "declined" | "countered" | "withdrawn" | "superseded";

/** An answer to an offer: the offer in its new state, and the messages it added, in seq order. */
export interface OfferAnswer {
  offer: Message;
  messages: Message[];
}

export interface Conversation {
  id: number;
  product_id: number;
  buyer_id: number;
  seller_id: number;
  status: "active" | "archived";
  last_seq: number;
  last_message_text: string | null;
  last_message_type: MessageType | null;
  last_message_sender_id: number | null;
  last_message_at: string | null;
  role: "buyer" | "seller";
  unread_count: number;
  unread_version: number;
  last_read_seq: number;
  peer_last_read_seq: number;
  /** How far the caller's messages reached one of the other side's devices ("delivered"). */
  peer_delivered_seq: number;
  cleared_seq: number;
  archived: boolean;
  deleted: boolean;
  created_at: string;
  updated_at: string;
  product: Product;
  peer: User;
  /** Muted by the viewer until then: its count leaves their total. */
  muted_until?: string | null;
  /** The viewer blocked the peer: not in their inbox. */
  blocked?: boolean;
}

export interface MessageReport {
  id: number;
  message_id: number;
  reporter_id: number;
  reason: string;
  status: "open" | "resolved";
  resolution: string | null;
  created_at: string;
  resolved_at: string | null;
}

export interface ReadReceipt {
  conversation_id: number;
  reader_id: number;
  up_to_seq: number;
  read_at: string;
}

/** The other side's devices have the caller's messages up to up_to_seq ("delivered"). */
export interface DeliveredReceipt {
  conversation_id: number;
  recipient_id: number;
  up_to_seq: number;
  delivered_at: string | null;
}

export interface MarkReadResult extends ReadReceipt {
  messages_marked: number;
  unread_count: number;
  unread_version: number;
  advanced: boolean;
}

export interface UnreadEvent {
  /** The total badge, true at `version`. */
  total: number;
  version: number;
  /** Set when one conversation's count changed; null for a change of the total alone. */
  conversation_id: number | null;
  count: number | null;
}

export interface TypingEvent {
  conversation_id: number;
  user_id: number;
  /** false when the indicator ends: a stop, its expiry, a message from them, a disconnect. */
  typing: boolean;
}

export interface StatusEvent {
  state: Status;
  /** The close code and reason of the socket that went, on "reconnecting" and "closed". */
  code?: number;
  reason?: string;
  /** How long until the next attempt, on "reconnecting". */
  delayMs?: number;
}

/** Whether a watched user is online; `last_seen_at` is null while online, and for anyone who
 * may not be seen (no shared conversation, a block, hidden presence). */
export interface Presence {
  user_id: number;
  online: boolean;
  last_seen_at: string | null;
}

export interface UserSettings {
  /** false hides this user's online state and last seen from everyone. */
  show_presence: boolean;
}

export interface ParleyEvents {
  message: Message;
  /** A message edited or unsent (by anyone, this client included): replace it by id. */
  updated: Message;
  read: ReadReceipt;
  /** Forward only: a receipt at or behind one already told is dropped. */
  delivered: DeliveredReceipt;
  typing: TypingEvent;
  unread: UnreadEvent;
  conversation: Conversation;
  /** A watched user's presence changed (subscribePresence). */
  presence: Presence;
  /** This user's settings changed, here or on another of their devices. */
  settings: UserSettings;
  status: StatusEvent;
}

export interface ParleyClientOptions {
  /** The gateway's WebSocket URL, e.g. "wss://chat.example.com/ws". */
  url: string;
  /** A token, or a function returning one; the function is called again on every reconnect
   * and when the server says the token is expiring. */
  token: string | (() => string | Promise<string>);
  /** A WebSocket class, for runtimes without a global one (Node: the `ws` package). */
  WebSocket?: typeof WebSocket;
  /** First reconnect delay (default 500 ms), doubling up to `maxReconnectDelayMs` (30 s). */
  reconnectDelayMs?: number;
  maxReconnectDelayMs?: number;
  /** A request without a reply for this long means the connection is broken (default 10 s). */
  requestTimeoutMs?: number;
  /** Confirm the other side's messages with message.received as they arrive, live or by
   * sync, in one frame per half second (default true): their sender sees "delivered". */
  autoReceipts?: boolean;
}

export interface SendOptions {
  type?: "text" | "image" | "offer";
  metadata?: Record<string, unknown>;
  /** Only to resume a send from an earlier run; by default one is made and kept. */
  clientMsgId?: string;
}

export declare class ParleyError extends Error {
  constructor(
    code: string,
    message: string,
    details?: { retryable?: boolean; retryAfterMs?: number | null },
  );
  code: string;
  retryable: boolean;
  retryAfterMs: number | null;
}

export declare function newClientMsgId(): string;

export declare class ParleyClient {
  constructor(options: ParleyClientOptions);
  readonly url: string;
  status: Status;
  user: User | null;
  limits: Record<string, number>;
  unread: { total: number; version: number };
  /** The watched users, each with what was last told. */
  presence: Map<number, Presence>;
  settings: UserSettings;
  on<K extends keyof ParleyEvents>(event: K, handler: (payload: ParleyEvents[K]) => void): () => void;
  connect(): Promise<void>;
  close(): void;
  sync(): Promise<void>;
  unreadCount(conversationId: number): number;
  openConversation(productId: number): Promise<Conversation>;
  getConversation(conversationId: number): Promise<Conversation>;
  send(conversationId: number, content: string, options?: SendOptions): Promise<Message>;
  edit(messageId: number, content: string): Promise<Message>;
  unsend(messageId: number): Promise<Message>;
  report(messageId: number, reason: string): Promise<{ report: MessageReport; created: boolean }>;
  offer(conversationId: number, amountCents: number, currency: string, content?: string): Promise<Message>;
  acceptOffer(messageId: number): Promise<OfferAnswer>;
  block(userId: number): Promise<unknown>;
  unblock(userId: number): Promise<unknown>;
  blockedUsers(): Promise<User[]>;
  subscribePresence(userIds: number[]): Promise<Presence[]>;
  unsubscribePresence(userIds: number[]): Promise<void>;
  updateSettings(changes: Partial<UserSettings>): Promise<UserSettings>;
  mute(conversationId: number, until?: Date | string): Promise<Conversation>;
  unmute(conversationId: number): Promise<Conversation>;
  declineOffer(messageId: number): Promise<OfferAnswer>;
  counterOffer(messageId: number, amountCents: number): Promise<OfferAnswer>;
  withdrawOffer(messageId: number): Promise<OfferAnswer>;
  history(
    conversationId: number,
    options?: { beforeSeq?: number; aroundSeq?: number; limit?: number },
  ): Promise<Message[]>;
  search(
    query: string,
    options?: { conversationId?: number; before?: number | null; limit?: number },
  ): Promise<SearchPage>;
  markRead(conversationId: number, upToSeq: number): Promise<MarkReadResult>;
  typing(conversationId: number): void;
  inbox(options?: {
    cursor?: string | null;
    limit?: number;
    archived?: boolean;
    query?: string;
  }): Promise<{ conversations: Conversation[]; next_cursor: string | null }>;
  delete(conversationId: number): Promise<Conversation>;
  archive(conversationId: number): Promise<Conversation>;
  unarchive(conversationId: number): Promise<Conversation>;
}
