// The live stream of samples (GET /api/v1/stream/points, Server-Sent Events) read with
// fetch(): EventSource cannot send the Authorization header, and the token never goes into a
// URL. Reconnects by itself (1 s, doubling to 10 s) and shows the connection banner while it
// is down; a stream silent for longer than two keep-alives counts as down too.

import { authHeaders, connectionLost, connectionRestored, session, showError } from "./api.js";

const SILENCE_MS = 35_000;
const RETRY_MAX_MS = 10_000;

/**
 * Watch `series` (ids); `onSamples({series_id, ts_ms, value, quality, dropped})` per event,
 * `onOpen()` each time the stream (re)opens (fill the gap from the history API there).
 * Returns `{close()}`.
 */
export function openStream(series, { onSamples, onOpen = () => {} }) {
  let controller = null;
  let closed = false;
  let retryMs = 1000;
  let timer = null;
  let silence = null;

  function resetSilence() {
    clearTimeout(silence);
    silence = setTimeout(() => controller && controller.abort(), SILENCE_MS);
  }

  function retry() {
    if (closed) return;
    connectionLost("stream");
    timer = setTimeout(connect, retryMs);
    retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
  }

  async function connect() {
    if (closed) return;
    controller = new AbortController();
    const url = `/api/v1/stream/points?series=${series.join(",")}`;
    let resp;
    try {
      resp = await fetch(url, { headers: authHeaders(), signal: controller.signal,
                                cache: "no-store" });
    } catch (err) {
      retry();
      return;
    }
    if (resp.status === 401) {
      session.token = null;
      session.onUnauthenticated("your token is no longer valid");
      return;
    }
    if (!resp.ok) {
      let detail = resp.statusText;
      try { detail = (await resp.json()).detail || detail; } catch (err) { /* not JSON */ }
      showError(`live stream: ${resp.status} ${detail}`);
      retry();
      return;
    }
    resetSilence();
    try {
      await read(resp.body.getReader());
    } catch (err) {
      // aborted or cut: retried below
    }
    clearTimeout(silence);
    retry();
  }

  async function read(reader) {
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { done, value } = await reader.read();
      if (done || closed) return;
      resetSilence();
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        dispatch(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
      }
    }
  }

  function dispatch(block) {
    let event = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (line.startsWith(":")) continue;  // keep-alive
      if (line.startsWith("event: ")) event = line.slice(7);
      else if (line.startsWith("data: ")) data.push(line.slice(6));
    }
    if (!data.length) return;
    const body = JSON.parse(data.join("\n"));
    if (event === "hello") {
      retryMs = 1000;
      connectionRestored("stream");
      onOpen(body);
    } else if (event === "samples") {
      onSamples(body);
    }
  }

  connect();
  return {
    close() {
      closed = true;
      clearTimeout(timer);
      clearTimeout(silence);
      if (controller) controller.abort();
      connectionRestored("stream");
    },
  };
}
