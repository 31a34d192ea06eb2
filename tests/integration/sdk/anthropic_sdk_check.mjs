// Drives mod_ark's Anthropic-compatible front (/v1/messages) with the
// official Anthropic Node SDK, changing nothing but its base URL and API
// key, and prints what the SDK saw as JSON for the pytest side to check.
// Usage: node anthropic_sdk_check.mjs BASE_URL KEY MODEL
import Anthropic from "@anthropic-ai/sdk";

const [baseURL, apiKey, model] = process.argv.slice(2);
const client = new Anthropic({ baseURL, apiKey, maxRetries: 0 });
const out = {};

const msg = await client.messages.create({
  model,
  max_tokens: 256,
  system: "You are terse.",
  messages: [{ role: "user", content: "hello from claude code" }],
});
out.type = msg.type;
out.role = msg.role;
out.text = msg.content.filter((b) => b.type === "text").map((b) => b.text)
  .join("");
out.stopReason = msg.stop_reason;
out.usage = msg.usage;

const stream = client.messages.stream({
  model,
  max_tokens: 256,
  messages: [{ role: "user", content: "streaming through ark" }],
});
out.events = [];
stream.on("streamEvent", (e) => out.events.push(e.type));
const final = await stream.finalMessage();
out.streamText = final.content.filter((b) => b.type === "text")
  .map((b) => b.text).join("");
out.streamStop = final.stop_reason;
out.streamUsage = final.usage;

const bad = new Anthropic({ baseURL, apiKey: "sk-ark-wrong", maxRetries: 0 });
try {
  await bad.messages.create({
    model, max_tokens: 10, messages: [{ role: "user", content: "x" }],
  });
  out.authError = null;
} catch (e) {
  out.authError = { status: e.status, name: e.constructor.name,
                    type: e.error?.error?.type };
}
try {
  await client.messages.create({ model, messages: [{ role: "user",
                                                      content: "x" }] });
  out.badRequest = null;
} catch (e) {
  out.badRequest = { status: e.status, name: e.constructor.name,
                     type: e.error?.error?.type };
}
console.log(JSON.stringify(out));
