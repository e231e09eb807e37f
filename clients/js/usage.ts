// Compiled by `tsc --noEmit` only: the SDK used as an app would, so parley.d.ts is checked.
import { ParleyClient, ParleyError, type Message } from "./parley.js";

export async function example(): Promise<Message[]> {
  const client = new ParleyClient({ url: "ws://localhost:8000/ws", token: async () => "jwt" });
  client.on("message", (message) => console.log(message.seq, message.content));
  client.on("unread", (badge) => console.log(badge.total, badge.version));
  client.on("typing", (typing) => console.log(typing.user_id, typing.typing));
  client.on("status", (status) => console.log(status.state, status.code));
  client.on("read", (receipt) => console.log(receipt.up_to_seq));
  client.on("conversation", (conversation) => console.log(conversation.peer.display_name));
  await client.connect();
  const conversation = await client.openConversation(7010);
  try {
    await client.send(conversation.id, "Is this still available?");
    await client.send(conversation.id, "", { type: "offer", metadata: { amount_cents: 42000, currency: "EUR" } });
  } catch (error) {
    if (error instanceof ParleyError && error.code === "rate_limited") console.log(error.retryAfterMs);
  }
  client.on("updated", (message) => console.log(message.id, message.unsent_at));
  const sent = await client.send(conversation.id, "Is it still available?");
  await client.edit(sent.id, "Is this still available?");
  await client.unsend(sent.id);
  const { report, created } = await client.report(sent.id, "spam");
  console.log(report.status, created);
  const made = await client.offer(conversation.id, 40000, "EUR", "Would you take 400?");
  const countered = await client.counterOffer(made.id, 42000);
  console.log(countered.offer.offer_status, countered.messages.length);
  await client.acceptOffer(countered.messages[1].id);
  await client.declineOffer(made.id).catch(() => undefined);
  await client.withdrawOffer(made.id).catch(() => undefined);
  await client.mute(conversation.id, new Date(Date.now() + 3_600_000));
  await client.unmute(conversation.id);
  await client.block(conversation.peer.id);
  await client.unblock(conversation.peer.id);
  const receipt = await client.markRead(conversation.id, conversation.last_seq);
  console.log(receipt.unread_count);
  client.typing(conversation.id);
  const page = await client.inbox({ limit: 20, archived: false });
  await client.archive(page.conversations[0].id);
  await client.unarchive(page.conversations[0].id);
  await client.delete(page.conversations[0].id);
  const messages = await client.history(conversation.id, { beforeSeq: 10, limit: 50 });
  client.close();
  return messages;
}
