/* Live chat for the member portal and the agents' console: one WebSocket per open conversation
   (resumed after the last sequence number seen, so nothing is lost or shown twice), one for the
   agent's queue. No library, no CDN; every text is set with textContent. */
(function () {
  "use strict";

  function words() {
    var node = document.getElementById("chat-words");
    return node ? JSON.parse(node.textContent) : {};
  }

  function socketUrl(path) {
    return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + path;
  }

  function newId() {
    var bytes = new Uint8Array(12);
    crypto.getRandomValues(bytes);
    return "c" + Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }

  /* One conversation: its log, composer, typing line and status, live over a socket. */
  function Conversation(root, path, role, w, onStatus) {
    var log = root.querySelector("[data-role=log]");
    var typing = root.querySelector("[data-role=typing]");
    var status = root.querySelector("[data-role=status]");
    var error = root.querySelector("[data-role=error]");
    var composer = root.querySelector("[data-role=composer]");
    var input = composer.querySelector("textarea");
    var last = 0, ws = null, stopped = false, pending = new Map(), typingTimer = null, lastTyping = 0;

    function setStatus(conversation) {
      status.textContent = w["status." + conversation.status] || conversation.status;
      var closed = conversation.status === "closed";
      input.disabled = closed;
      composer.querySelector("button").disabled = closed;
      if (onStatus) onStatus(conversation);
    }

    function append(message) {
      var item = document.createElement("li");
      var mine = message.author_role === role;
      item.className = mine ? "mine" : "";
      item.setAttribute("data-seq", String(message.seq));
      var who = document.createElement("span");
      who.className = "who";
      who.textContent = mine ? w.you : (message.author_role === "agent" ? w.agent : w.member);
      var text = document.createElement("span");
      text.textContent = message.text;
      item.appendChild(who);
      item.appendChild(text);
      log.appendChild(item);
      log.scrollTop = log.scrollHeight;
    }

    function handle(data) {
      if (data.type === "conversation" || data.type === "status") {
        setStatus(data.conversation);
      } else if (data.type === "message") {
        if (data.seq <= last) return;
        last = data.seq;
        pending.delete(data.client_id);
        typing.textContent = "";
        append(data);
      } else if (data.type === "typing") {
        typing.textContent = w["typing_" + data.role] || "";
        clearTimeout(typingTimer);
        typingTimer = setTimeout(function () { typing.textContent = ""; }, 3000);
      } else if (data.type === "error") {
        if (data.client_id) pending.delete(data.client_id);
        error.textContent = (w.error || "") + " : " + data.detail;
      }
    }

    function connect() {
      ws = new WebSocket(socketUrl(path + "?after=" + last));
      ws.onopen = function () {
        error.textContent = "";
        pending.forEach(function (text, id) {
          ws.send(JSON.stringify({ type: "message", client_id: id, text: text }));
        });
      };
      ws.onmessage = function (event) { handle(JSON.parse(event.data)); };
      ws.onclose = function () {
        if (stopped) return;
        status.textContent = w.reconnecting;
        setTimeout(connect, 1000);
      };
    }

    function send() {
      var text = input.value.trim();
      if (!text) return;
      var id = newId();
      pending.set(id, text);
      input.value = "";
      if (ws && ws.readyState === WebSocket.OPEN) {
        ws.send(JSON.stringify({ type: "message", client_id: id, text: text }));
      }
    }

    composer.addEventListener("submit", function (event) { event.preventDefault(); send(); input.focus(); });
    input.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); send(); }
    });
    input.addEventListener("input", function () {
      var now = Date.now();
      if (now - lastTyping > 1500 && ws && ws.readyState === WebSocket.OPEN) {
        lastTyping = now;
        ws.send(JSON.stringify({ type: "typing" }));
      }
    });
    status.textContent = w.connecting;
    connect();
    return {
      stop: function () { stopped = true; if (ws) ws.close(); },
    };
  }

  function memberPage(root) {
    Conversation(root, root.getAttribute("data-ws"), "member", words(), null);
  }

  function agentPage(root) {
    var w = words();
    var csrf = root.getAttribute("data-csrf");
    var me = root.getAttribute("data-me");
    var list = root.querySelector("[data-role=queue]");
    var empty = root.querySelector("[data-role=queue-empty]");
    var queueState = root.querySelector("[data-role=queue-state]");
    var queueError = root.querySelector("[data-role=queue-error]");
    var pane = root.querySelector("[data-role=conversation]");
    var pick = root.querySelector("[data-role=pick]");
    var side = root.querySelector("[data-role=side]");
    var closeForm = root.querySelector("[data-role=close]");
    var current = null, conversation = null, items = [], offset = 0;

    function post(url, data) {
      var form = new FormData();
      form.append("csrf", csrf);
      Object.keys(data || {}).forEach(function (k) { form.append(k, data[k]); });
      return fetch(url, { method: "POST", body: form, credentials: "same-origin" });
    }

    function waited(item) {
      var seconds = Math.max(0, Math.round((Date.now() + offset - Date.parse(item.opened_at)) / 1000));
      var minutes = Math.floor(seconds / 60);
      return minutes + ":" + ("0" + (seconds % 60)).slice(-2);
    }

    function render() {
      list.textContent = "";
      empty.hidden = items.length > 0;
      items.forEach(function (item) {
        var li = document.createElement("li");
        li.setAttribute("data-id", item.id);
        if (item.id === current) li.setAttribute("aria-current", "true");
        var text = document.createElement("span");
        var label = (w["moment." + item.moment_kind] || item.moment_kind);
        text.textContent = item.member_ref + " · " + label + " · " + item.team;
        var clock = document.createElement("span");
        clock.className = "muted";
        clock.setAttribute("data-role", "waited");
        if (item.status === "waiting") clock.textContent = w.waiting_for + " " + waited(item);
        else clock.textContent = item.agent || "";
        var button = document.createElement("button");
        button.type = "button";
        button.className = "small";
        if (item.status === "waiting") {
          button.textContent = w.take;
          button.setAttribute("data-testid", "chat-take");
          button.addEventListener("click", function () { take(item.id); });
        } else if (item.agent === me) {
          button.textContent = w.open;
          button.addEventListener("click", function () { open(item.id); });
        } else {
          button.hidden = true;
        }
        li.appendChild(text);
        li.appendChild(clock);
        li.appendChild(button);
        list.appendChild(li);
      });
    }

    function take(id) {
      queueError.textContent = "";
      post("/console/chat/" + encodeURIComponent(id) + "/take").then(function (response) {
        if (response.ok) open(id);
        else queueError.textContent = w.taken_by_other;
      });
    }

    function open(id) {
      if (conversation) conversation.stop();
      current = id;
      render();
      pick.hidden = true;
      pane.hidden = false;
      pane.querySelector("[data-role=log]").textContent = "";
      pane.querySelector("[data-role=error]").textContent = "";
      closeForm.hidden = false;
      fetch("/console/chat/" + encodeURIComponent(id) + "/side", { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.text() : ""; })
        .then(function (html) { side.innerHTML = html; });
      conversation = Conversation(pane, "/console/chat/" + encodeURIComponent(id) + "/ws", "agent", w, function (c) {
        closeForm.hidden = c.status !== "active" || c.agent !== me;
        var reason = closeForm.querySelector("[data-role=close-reason]");
        if (reason && !reason.getAttribute("data-set")) { reason.value = c.reason; reason.setAttribute("data-set", "1"); }
      });
      pane.querySelector("textarea").focus();
    }

    closeForm.addEventListener("submit", function (event) {
      event.preventDefault();
      if (!current) return;
      var data = {};
      new FormData(closeForm).forEach(function (value, key) { data[key] = value; });
      post("/console/chat/" + encodeURIComponent(current) + "/close", data).then(function (response) {
        pane.querySelector("[data-role=error]").textContent = response.ok ? w.closed_done : w.error;
      });
    });

    function connectQueue() {
      var ws = new WebSocket(socketUrl(root.getAttribute("data-queue-ws")));
      ws.onopen = function () { queueState.textContent = ""; };
      ws.onmessage = function (event) {
        var data = JSON.parse(event.data);
        if (data.type !== "queue") return;
        offset = Date.parse(data.server_now) - Date.now();
        items = data.items;
        render();
      };
      ws.onclose = function () { queueState.textContent = w.reconnecting; setTimeout(connectQueue, 1000); };
    }
    setInterval(function () {
      Array.prototype.forEach.call(list.querySelectorAll("li"), function (li) {
        var item = items.find(function (i) { return i.id === li.getAttribute("data-id"); });
        if (item && item.status === "waiting") li.querySelector("[data-role=waited]").textContent = w.waiting_for + " " + waited(item);
      });
    }, 1000);
    connectQueue();
  }

  document.addEventListener("DOMContentLoaded", function () {
    var member = document.getElementById("chat-member");
    if (member) memberPage(member);
    var agent = document.getElementById("chat-agent");
    if (agent) agentPage(agent);
  });
})();
