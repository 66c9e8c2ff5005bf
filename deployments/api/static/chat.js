// The chat page: /ask/stream over fetch (SSE), /search, /feedback. Plain JS, no build step.
// Every text from the service is set with textContent, never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const KEY_STORE = "rag-api-key";
let running = null; // the AbortController of the request in flight
let lastRequestId = "";

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = $("api-key").value.trim();
  if (key) {
    h.Authorization = "Bearer " + key;
    sessionStorage.setItem(KEY_STORE, key);
  }
  return h;
}

function showError(text) {
  $("error").textContent = text;
  $("error").hidden = !text;
}

// What a failed response means to a person, from its status and JSON body.
async function errorText(response) {
  let body = {};
  try { body = await response.json(); } catch (_) { /* not JSON */ }
  const said = body.message || body.detail || "";
  const retry = response.headers.get("Retry-After");
  switch (response.status) {
    case 401: return "This service needs an API key: open “API key” above and paste yours.";
    case 403: return "Your API key may not do this: " + said;
    case 429: return "Too many requests" + (retry ? `; try again in ${retry} s.` : ".") +
      (said ? " " + said : "");
    case 503: return "The service is not ready or is overloaded: " + (said || "try again soon.");
    case 504: return "The service took too long to answer. Try again.";
    default:
      return `The service answered ${response.status}` + (said ? ": " + said : ".") +
        (body.reason ? ` (${body.reason})` : "");
  }
}

function isWebUrl(text) {
  return /^https?:\/\//i.test(text);
}

// One numbered source: a link when it is a web page, else a button that shows its text.
function sourceItem(number, url, title, section, snippet) {
  const li = document.createElement("li");
  li.value = number;
  const label = [title, section].filter(Boolean).join(" › ") || url;
  if (isWebUrl(url)) {
    const a = document.createElement("a");
    a.href = url;
    a.target = "_blank";
    a.rel = "noopener noreferrer";
    a.textContent = label;
    li.append(a);
  } else {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "source-toggle";
    button.textContent = label;
    button.setAttribute("aria-expanded", "false");
    li.append(button);
    const text = document.createElement("span");
    text.className = "snippet";
    text.textContent = url + (snippet ? ": " + snippet : "");
    text.hidden = true;
    button.addEventListener("click", () => {
      text.hidden = !text.hidden;
      button.setAttribute("aria-expanded", String(!text.hidden));
    });
    li.append(text);
  }
  if (snippet && isWebUrl(url)) {
    const text = document.createElement("span");
    text.className = "snippet";
    text.textContent = snippet;
    li.append(text);
  }
  return li;
}

function statusText(done) {
  const notes = [];
  if (done.answer_mode === "extractive") notes.push("Quoted from the sources (no generated answer).");
  if (done.answer_mode === "refused") notes.push("No answer: nothing relevant was found.");
  if (done.status === "degraded") notes.push("Degraded: " + (done.message || "the model was unavailable."));
  if (done.cache) notes.push(`Served from the answer cache (${done.cache}).`);
  return notes.join(" ");
}

function showDone(done) {
  $("answer").textContent = done.answer;
  const status = statusText(done);
  $("answer-status").textContent = status;
  $("answer-status").hidden = !status;
  const bySource = new Map((done.sources || []).map((s) => [s.number, s]));
  const cited = done.citations && done.citations.length ? done.citations : [];
  $("citations").replaceChildren(...cited.map((c) => sourceItem(
    c.number, c.url, c.title, c.section, (bySource.get(c.number) || {}).content?.slice(0, 240))));
  $("citations-title").hidden = cited.length === 0;
  lastRequestId = done.request_id || "";
  $("feedback").hidden = !lastRequestId;
  $("feedback-done").textContent = "";
}

// Server-Sent Events from a fetch body: calls onEvent(name, data) per event.
async function readEvents(response, onEvent) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
      }
      if (data.length) onEvent(name, JSON.parse(data.join("\n")));
    }
  }
}

async function ask(question, signal) {
  $("result").hidden = false;
  $("answer").textContent = "";
  $("answer").setAttribute("aria-busy", "true");
  $("answer-status").hidden = true;
  $("citations").replaceChildren();
  $("citations-title").hidden = true;
  $("feedback").hidden = true;
  const response = await fetch("/ask/stream", {
    method: "POST", headers: headers(), body: JSON.stringify({ question }), signal,
  });
  if (!response.ok) throw new Error(await errorText(response));
  let finished = false;
  await readEvents(response, (name, data) => {
    if (name === "token") $("answer").textContent += data.text;
    else if (name === "done") { showDone(data); finished = true; }
    else if (name === "error") throw new Error(data.message || "The answer failed.");
  });
  if (!finished) throw new Error("The answer stopped before it was complete. Try again.");
}

async function search(query, signal) {
  const params = new URLSearchParams({ query, k: "5" });
  const response = await fetch("/search?" + params, { headers: headers(), signal });
  if (!response.ok) throw new Error(await errorText(response));
  const body = await response.json();
  $("search").hidden = false;
  $("hits").replaceChildren(...body.results.map((hit, i) => sourceItem(
    i + 1, hit.source, hit.title, "", hit.content.slice(0, 240))));
  if (!body.results.length) {
    const li = document.createElement("li");
    li.textContent = "Nothing found.";
    $("hits").replaceChildren(li);
  }
}

async function submit(event) {
  event.preventDefault();
  const question = $("question").value.trim();
  if (!question) { showError("Type a question first."); return; }
  if (running) running.abort();
  running = new AbortController();
  const mine = running;
  showError("");
  $("result").hidden = true;
  $("search").hidden = true;
  $("submit").disabled = true;
  const mode = document.querySelector('input[name="mode"]:checked').value;
  try {
    if (mode === "search") await search(question, mine.signal);
    else await ask(question, mine.signal);
  } catch (error) {
    if (error.name !== "AbortError") {
      const down = error instanceof TypeError; // fetch itself failed: nothing answered
      showError(down ? "Cannot reach the service. Is it running? Try again in a moment."
                     : error.message);
    }
  } finally {
    $("answer").setAttribute("aria-busy", "false");
    if (running === mine) { running = null; $("submit").disabled = false; }
  }
}

async function rate(rating) {
  if (!lastRequestId) return;
  try {
    const response = await fetch("/feedback", {
      method: "POST", headers: headers(),
      body: JSON.stringify({ request_id: lastRequestId, rating }),
    });
    $("feedback-done").textContent = response.ok ? "Thanks for the feedback."
                                                 : await errorText(response);
  } catch (_) {
    $("feedback-done").textContent = "Cannot reach the service; the feedback was not sent.";
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("api-key").value = sessionStorage.getItem(KEY_STORE) || "";
  $("ask-form").addEventListener("submit", submit);
  $("question").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("ask-form").requestSubmit();
    }
  });
  for (const button of document.querySelectorAll("#feedback button")) {
    button.addEventListener("click", () => rate(button.dataset.rating));
  }
});
