// Drives mod_ark with the official OpenAI Node SDK, changing nothing but
// its base URL and API key, and prints what the SDK saw as JSON for the
// pytest side to check. Usage: node openai_sdk_check.mjs BASE_URL KEY MODEL
import OpenAI from "openai";

const [baseURL, apiKey, model] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0 });
const out = {};

const models = await client.models.list();
out.models = models.data.map((m) => m.id);

const done = await client.chat.completions.create({
  model,
  messages: [{ role: "user", content: "hello from the sdk" }],
});
out.text = done.choices[0].message.content;
out.usage = done.usage;

const stream = await client.chat.completions.create({
  model,
  stream: true,
  stream_options: { include_usage: true },
  messages: [{ role: "user", content: "streaming from the sdk" }],
});
out.streamText = "";
out.chunks = 0;
for await (const chunk of stream) {
  out.chunks++;
  if (chunk.usage) {
    out.streamUsage = chunk.usage;
  }
  for (const c of chunk.choices) {
    out.streamText += c.delta?.content ?? "";
  }
}

const bad = new OpenAI({ baseURL, apiKey: "sk-ark-wrong", maxRetries: 0 });
try {
  await bad.chat.completions.create({
    model,
    messages: [{ role: "user", content: "x" }],
  });
  out.authError = null;
} catch (e) {
  out.authError = { status: e.status, code: e.code, type: e.type,
                    name: e.constructor.name };
}

try {
  await client.chat.completions.create({
    model: "no-such-model",
    messages: [{ role: "user", content: "x" }],
  });
  out.notFound = null;
} catch (e) {
  out.notFound = { status: e.status, code: e.code, name: e.constructor.name };
}

console.log(JSON.stringify(out));
