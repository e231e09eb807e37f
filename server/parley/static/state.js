// What the page's modules share: the client, who is logged in, and what is on screen.

export const state = {
  /** @type {import("/parley.js").ParleyClient | null} */ client: null,
  me: 0,
  tab: "inbox",
  /** @type {Map<number, any>} */ conversations: new Map(),
  /** @type {any} */ open: null, // the conversation on screen
  /** @type {Map<number, any>} */ messages: new Map(), // its messages by seq
  oldestSeq: 0,
  loadingOlder: false,
  // The newest seq shown, and whether nothing newer exists: false while a search result's
  // page is open short of the end, where newer messages load on scrolling down.
  newestSeq: 0,
  atNewest: true,
  loadingNewer: false,
  /** @type {Map<number, Set<number>>} */ typists: new Map(), // conversation -> who types
  demo: /** @type {any} */ (null),
  /** @type {number | null} */ editing: null, // the message the composer is editing
};
