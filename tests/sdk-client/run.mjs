// Drives the gateway with the official SDK, changing only the base URL and
// the API key (the gateway's client token), as a user would.
// Usage: GK_BASE_URL=http://127.0.0.1:PORT GK_TOKEN=... node run.mjs
// Prints one JSON line per call.
import { GoogleGenAI } from '@google/genai';

const ai = new GoogleGenAI({
  apiKey: process.env.GK_TOKEN,
  httpOptions: { baseUrl: process.env.GK_BASE_URL },
});

const once = await ai.models.generateContent({
  model: 'gemini-2.5-flash',
  contents: 'Say hello.',
});
console.log(JSON.stringify({
  call: 'generateContent',
  text: once.text,
  usage: once.usageMetadata,
}));

let text = '';
let usage = null;
let chunks = 0;
const stream = await ai.models.generateContentStream({
  model: 'gemini-2.5-flash',
  contents: 'Say hello slowly.',
});
for await (const chunk of stream) {
  chunks++;
  text += chunk.text ?? '';
  if (chunk.usageMetadata)
    usage = chunk.usageMetadata;
}
console.log(JSON.stringify({ call: 'generateContentStream', text, chunks, usage }));
