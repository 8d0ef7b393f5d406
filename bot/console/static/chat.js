// The console's chat: ask (the answer streams in as server-sent events over fetch: its text as the
// model writes it, then the recorded answer with sources and ids), vote, suggest a correction. No libraries: this page must work on a machine with no internet.
"use strict";

(function () {
  const form = document.getElementById("ask-form");
  const questionBox = document.getElementById("question");
  const nameBox = document.getElementById("user-name");
  const answers = document.getElementById("answers");
  const template = document.getElementById("answer-template");
  const chatError = document.getElementById("chat-error");
  const askButton = document.getElementById("ask");

  nameBox.value = localStorage.getItem("console-user-name") || "";
  nameBox.addEventListener("change", () => localStorage.setItem("console-user-name", nameBox.value.trim()));

  function showError(message) {
    chatError.textContent = message;
    chatError.hidden = !message;
  }

  async function post(path, body) {
    const response = await fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ ...body, user: nameBox.value.trim() || undefined }),
    });
    let data = {};
    try { data = await response.json(); } catch (e) { data = {}; }
    if (!response.ok) throw new Error(data.error || "Something went wrong; please try again.");
    return data;
  }

  // Yields {event, data} for each server-sent event in a fetch response's body.
  async function* events(response) {
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
        let name = "message", data = "";
        for (const line of block.split("\n")) {
          if (line.startsWith("event:")) name = line.slice(6).trim();
          else if (line.startsWith("data:")) data += line.slice(5).trim();
        }
        if (data) yield { event: name, data: JSON.parse(data) };
      }
    }
  }

  function renderAnswer(card, answer) {
    card.dataset.answerId = answer.answer_id;
    card.querySelector("[data-testid=answer-text]").textContent = answer.text;
    const list = card.querySelector("[data-testid=sources]");
    for (const source of answer.sources) {
      const item = document.createElement("li");
      const link = document.createElement(source.url ? "a" : "span");
      if (source.url) { link.href = source.url; link.target = "_blank"; link.rel = "noopener"; }
      link.textContent = source.title || source.source;
      item.append(link, " ");
      const where = document.createElement("small");
      where.textContent = source.source;
      item.append(where);
      list.append(item);
    }
    const confidence = answer.confidence == null ? "unknown" : answer.confidence.toFixed(2);
    card.querySelector("[data-testid=answer-meta]").textContent =
      `answered by ${answer.adapter} · confidence ${confidence}`;
    card.querySelector("[data-testid=answer-status]").textContent = "";
    card.querySelector(".actions").hidden = false;
  }

  function wire(card) {
    const status = card.querySelector("[data-testid=answer-status]");
    for (const button of card.querySelectorAll(".vote")) {
      button.addEventListener("click", async () => {
        const pressed = button.getAttribute("aria-pressed") === "true";
        const value = pressed ? 0 : Number(button.dataset.value);
        try {
          await post("/console/api/vote", { answer_id: Number(card.dataset.answerId), value });
          for (const other of card.querySelectorAll(".vote")) {
            other.setAttribute("aria-pressed", String(value !== 0 && other === button));
          }
          status.textContent = value === 0 ? "Vote withdrawn." : "Thanks, your vote is recorded.";
        } catch (error) { status.textContent = error.message; }
      });
    }
    const correction = card.querySelector("form.correction");
    card.querySelector(".suggest").addEventListener("click", () => {
      correction.hidden = !correction.hidden;
      const box = correction.querySelector("textarea");
      if (!box.value) box.value = card.querySelector("[data-testid=answer-text]").textContent;
      box.focus();
    });
    correction.addEventListener("submit", async (event) => {
      event.preventDefault();
      const text = correction.querySelector("textarea").value;
      try {
        const result = await post("/console/api/correction", { answer_id: Number(card.dataset.answerId), text });
        correction.hidden = true;
        status.textContent = `Thanks: correction #${result.correction_id} is waiting for a reviewer.`;
      } catch (error) { status.textContent = error.message; }
    });
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const question = questionBox.value.trim();
    if (!question) { showError("Type a question first."); return; }
    showError("");
    const card = template.content.firstElementChild.cloneNode(true);
    card.querySelector("[data-testid=answer-question]").textContent = question;
    answers.prepend(card);
    wire(card);
    const status = card.querySelector("[data-testid=answer-status]");
    askButton.disabled = true;
    try {
      const response = await fetch("/console/api/ask", {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
        body: JSON.stringify({ question, user: nameBox.value.trim() || undefined }),
      });
      if (!response.ok) {
        let data = {};
        try { data = await response.json(); } catch (e) { data = {}; }
        throw new Error(data.error || "The bot could not take the question; please try again.");
      }
      const text = card.querySelector("[data-testid=answer-text]");
      let ended = false;
      for await (const { event: name, data } of events(response)) {
        if (name === "status") status.textContent = "Searching the documents…";
        else if (name === "delta") {
          status.textContent = "Writing the answer…";
          text.append(data.text);
        } else if (name === "answer") { renderAnswer(card, data); ended = true; }
        else if (name === "error") {
          text.textContent = "";  // a half-written answer was not recorded: nothing to vote on
          status.textContent = data.message;
          ended = true;
        }
      }
      if (!ended) throw new Error("The connection dropped before the answer was finished; please ask again.");
      questionBox.value = "";
    } catch (error) {
      status.textContent = error.message;
    } finally {
      askButton.disabled = false;
    }
  });
})();
