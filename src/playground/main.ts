/**
 * The playground page: a prompt or a chat, sampling controls, and the answer streaming in, with
 * the route that served it, time to first token and decode speed. Runs in the browser on the page
 * the API itself serves at `/`, so requests go to the same origin.
 */
import { APIError, APIUserAbortError, type ChatMessage } from "../client/index";
import { backends, edgeBackend, registerBackend, type PlaygroundBackend, type PlaygroundStream } from "./backends";
import { deviceBackend } from "./device";
import { storedKey, storeKey } from "./key-store";
import { RunTiming } from "./timing";

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

const ui = {
  backend: $<HTMLSelectElement>("backend"),
  mode: $<HTMLSelectElement>("mode"),
  temperature: $<HTMLInputElement>("temperature"),
  topP: $<HTMLInputElement>("top-p"),
  maxTokens: $<HTMLInputElement>("max-tokens"),
  seed: $<HTMLInputElement>("seed"),
  prompt: $<HTMLTextAreaElement>("prompt"),
  run: $<HTMLButtonElement>("run"),
  stop: $<HTMLButtonElement>("stop"),
  clear: $<HTMLButtonElement>("clear"),
  transcript: $<HTMLElement>("transcript"),
  status: $<HTMLElement>("status"),
  route: $<HTMLElement>("route"),
  ttft: $<HTMLElement>("ttft"),
  tps: $<HTMLElement>("tps"),
  tokens: $<HTMLElement>("tokens"),
  model: $<HTMLElement>("model"),
  keyDialog: $<HTMLDialogElement>("key-dialog"),
  keyInput: $<HTMLInputElement>("api-key"),
  keyReason: $<HTMLElement>("key-reason"),
};

registerBackend("edge", edgeBackend(location.origin, storedKey));
registerBackend("device", deviceBackend((text) => setStatus(text), storedKey));
for (const [id, b] of backends()) ui.backend.add(new Option(b.label, id));

/** The chat so far (chat mode); completion mode keeps no history. */
const history: ChatMessage[] = [];
let running: AbortController | undefined;

function setStatus(text: string, kind: "" | "error" = ""): void {
  ui.status.textContent = text;
  ui.status.className = kind;
}

function num(input: HTMLInputElement): number | undefined {
  return input.value.trim() === "" ? undefined : Number(input.value);
}

function sampling() {
  return { temperature: num(ui.temperature), top_p: num(ui.topP), max_tokens: num(ui.maxTokens), seed: num(ui.seed) };
}

function turn(role: string, text: string): HTMLElement {
  const el = document.createElement("div");
  el.className = `turn ${role}`;
  el.dataset.role = role;
  el.textContent = text;
  ui.transcript.append(el);
  return el;
}

/** The element the next answer streams into, always #output, after the input it answers. */
function outputFor(prompt: string, chat: boolean): HTMLElement {
  document.getElementById("output")?.removeAttribute("id");
  if (!chat) ui.transcript.replaceChildren();
  turn(chat ? "user" : "prompt", prompt);
  const out = turn("assistant", "");
  out.id = "output";
  return out;
}

function showTiming(t: RunTiming, counted?: number): void {
  ui.ttft.textContent = t.ttftMs === undefined ? "–" : `${Math.round(t.ttftMs)} ms`;
  const tps = t.tokensPerSecond(counted);
  ui.tps.textContent = tps === undefined ? "–" : tps.toFixed(1);
  ui.tokens.textContent = String(counted ?? t.tokens);
}

function open(backend: PlaygroundBackend, chat: boolean, prompt: string, signal: AbortSignal): PlaygroundStream<{ choices: unknown[] }> {
  const params = sampling();
  if (chat) return backend.chat({ ...params, messages: [...history, { role: "user", content: prompt }] }, { signal });
  return backend.complete({ ...params, prompt }, { signal });
}

const textOf = (chunk: any): string => chunk.choices?.[0]?.text ?? chunk.choices?.[0]?.delta?.content ?? "";

async function run(): Promise<void> {
  const backend = backends().get(ui.backend.value);
  const prompt = ui.prompt.value;
  if (!backend || running) return;
  const chat = ui.mode.value === "chat";
  const ac = new AbortController();
  running = ac;
  ui.run.disabled = true;
  ui.stop.disabled = false;
  ui.route.textContent = "–";
  const out = outputFor(prompt, chat);
  const timing = new RunTiming();
  showTiming(timing);
  setStatus("waiting for the first token…");
  let text = "";
  try {
    const stream = open(backend, chat, prompt, ac.signal);
    for await (const chunk of stream) {
      ui.route.textContent = stream.route ?? "–";
      const piece = textOf(chunk);
      if (!piece) continue;
      timing.token();
      text += piece;
      out.textContent = text;
      showTiming(timing);
      setStatus("streaming…");
    }
    showTiming(timing, stream.usage?.completion_tokens);
    setStatus(`done (${stream.finishReason ?? "no finish reason"})`);
    if (chat) history.push({ role: "user", content: prompt }, { role: "assistant", content: text });
  } catch (err) {
    if (err instanceof APIUserAbortError) {
      setStatus("stopped");
      if (chat) history.push({ role: "user", content: prompt }, { role: "assistant", content: text });
    } else if (err instanceof APIError && err.status === 401) {
      // The request never ran: drop its turn, and send it again once there is a key.
      out.previousElementSibling?.remove();
      out.remove();
      finish();
      if (await askKey(err.message)) return run();
      setStatus("an API key is needed", "error");
      return;
    } else setStatus(err instanceof Error ? err.message : String(err), "error");
  }
  finish();
}

function finish(): void {
  running = undefined;
  ui.run.disabled = false;
  ui.stop.disabled = true;
}

/** Asks for a key after a 401; resolves true once one is stored. */
function askKey(reason: string): Promise<boolean> {
  ui.keyReason.textContent = reason;
  ui.keyInput.value = "";
  ui.keyDialog.showModal();
  return new Promise((resolve) => {
    ui.keyDialog.addEventListener(
      "close",
      () => {
        const key = ui.keyInput.value.trim();
        if (ui.keyDialog.returnValue !== "save" || key === "") return resolve(false);
        storeKey(key);
        resolve(true);
      },
      { once: true },
    );
  });
}

async function showModel(): Promise<void> {
  try {
    const h = await (await fetch("/health")).json();
    ui.model.textContent = h.model ? `${h.model}${h.synthetic ? " (synthetic: random weights, gibberish text)" : ""}` : (h.reason ?? h.status ?? "");
  } catch {
    ui.model.textContent = "";
  }
}

ui.run.addEventListener("click", () => void run());
ui.stop.addEventListener("click", () => running?.abort());
ui.clear.addEventListener("click", () => {
  history.length = 0;
  ui.transcript.replaceChildren();
});
ui.mode.addEventListener("change", () => {
  document.body.dataset.mode = ui.mode.value;
  ui.prompt.placeholder = ui.mode.value === "chat" ? "Your message" : "Text to continue";
  history.length = 0;
  ui.transcript.replaceChildren();
});
ui.prompt.addEventListener("keydown", (e) => {
  if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) void run();
});
document.body.dataset.mode = ui.mode.value;
void showModel();
