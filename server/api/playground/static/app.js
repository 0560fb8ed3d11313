// The playground: a client of this server's public API only — GET /v1/models and the Runware WebSocket at /v1.

const $ = (selector, root = document) => root.querySelector(selector);
const form = $("#generate");
const PAGE_SIZE = 10;
let models = [];
let historyOffset = 0;

// -- the Runware WebSocket: one task per frame, and the server answers each in order with one frame --------------

class RunwareSocket {
  constructor(apiKey) {
    this.apiKey = apiKey;
    this.waiting = [];
  }

  async open() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    this.socket = new WebSocket(`${scheme}://${location.host}/v1`);
    this.socket.onmessage = (event) => this.waiting.shift()?.(JSON.parse(event.data));
    this.socket.onclose = () => { this.socket = null; };
    await new Promise((resolve, reject) => { this.socket.onopen = resolve; this.socket.onerror = reject; });
    const reply = await this.send({ taskType: "authentication", apiKey: this.apiKey });
    if (reply.errors) throw reply.errors[0];
  }

  // Resolves with the reply body {data} or {errors}.
  async send(task) {
    if (!this.socket && task.taskType !== "authentication") await this.open();
    const reply = new Promise((resolve) => this.waiting.push(resolve));
    this.socket.send(JSON.stringify([task]));
    return reply;
  }
}

let api = null;

// -- the key ------------------------------------------------------------------------------------------------------

async function useKey(key) {
  showErrors([]);
  $("#key-status").textContent = "";
  api = new RunwareSocket(key);
  try {
    await api.open();
  } catch (error) {
    showErrors([error.parameter ? error : { parameter: "apiKey", message: "cannot reach the server" }]);
    api = null;
    return;
  }
  localStorage.setItem("ltxApiKey", key);
  $("#key-status").textContent = "connected";
  $("#api-key").value = key;
  historyOffset = 0;
  loadHistory();
}

$("#key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  useKey($("#api-key").value.trim());
});

// -- models and the form ------------------------------------------------------------------------------------------

async function loadModels() {
  const body = await (await fetch("/v1/models")).json();
  models = body.models;
  if (body.warning) {
    $("#demo-warning").textContent = body.warning;
    $("#demo-warning").hidden = false;
  }
  form.model.replaceChildren(...models.map((m) => new Option(`${m.name} (${m.id})`, m.id)));
  // In demo mode a hosted size takes minutes on the CPU: open on a tiny model, whose default size takes seconds.
  if (body.demo) form.model.value = models.find((m) => m.demoOnly)?.id ?? form.model.value;
  form.model.addEventListener("change", () => applyModel());
  applyModel();
}

function currentModel() {
  return models.find((m) => m.id === form.model.value);
}

function applyModel(settings = {}) {
  const model = currentModel();
  const [width, height] = [settings.width ?? model.defaultSize[0], settings.height ?? model.defaultSize[1]];
  const sizeList = $("#size-list");
  $("#size-label").hidden = !model.sizes;
  for (const label of document.querySelectorAll(".free-size")) label.hidden = Boolean(model.sizes);
  if (model.sizes) {
    sizeList.replaceChildren(...model.sizes.map(([w, h]) => new Option(`${w}x${h}`, `${w}x${h}`)));
    sizeList.value = `${width}x${height}`;
    sizeList.onchange = () => { [form.width.value, form.height.value] = sizeList.value.split("x"); updatePrice(); };
  } else {
    for (const input of [form.width, form.height]) {
      Object.assign(input, { min: model.sizeRange.min, max: model.sizeRange.max, step: model.sizeRange.step });
    }
  }
  form.width.value = width;
  form.height.value = height;
  form.duration.replaceChildren(...model.durations.map((d) => new Option(`${d}`, d)));
  form.duration.value = settings.duration ?? model.defaultDuration;
  form.fps.replaceChildren(...model.fps.map((f) => new Option(`${f}`, f)));
  form.fps.value = settings.fps ?? model.defaultFps;
  form.audio.checked = settings.audio ?? model.audioDefault;
  updatePrice();
}

function updatePrice() {
  const model = currentModel();
  const price = model.pricePerSecond.find((p) => p.width == form.width.value && p.height == form.height.value);
  $("#price").textContent = price
    ? `Hosted price: $${(price.usd * form.duration.value * form.numberResults.value).toFixed(2)}`
    : "";
}
form.addEventListener("input", updatePrice);

// The first-frame image: a file picker, or a file dropped on the box.
let frameImage = null;
const drop = $("#drop");
drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  if (event.dataTransfer.files[0]) readImage(event.dataTransfer.files[0]);
});
form.image.addEventListener("change", () => form.image.files[0] && readImage(form.image.files[0]));

function readImage(file) {
  const reader = new FileReader();
  reader.onload = () => {
    frameImage = reader.result;
    Object.assign($("#drop-preview"), { src: frameImage, hidden: false });
  };
  reader.readAsDataURL(file);
}

// A videoInference task from the form, in the hosted contract's shape.
function videoTask() {
  const model = currentModel();
  const task = {
    taskType: "videoInference",
    taskUUID: crypto.randomUUID(),
    model: model.id,
    positivePrompt: form.positivePrompt.value,
    width: Number(form.width.value),
    height: Number(form.height.value),
    duration: Number(form.duration.value),
    fps: Number(form.fps.value),
    numberResults: Number(form.numberResults.value),
    outputFormat: form.outputFormat.value,
    outputQuality: Number(form.outputQuality.value),
    includeCost: true,
  };
  if (form.seed.value !== "") task.seed = Number(form.seed.value);
  // The audio switch sits where this model keeps it, e.g. providerSettings.lightricks.generateAudio.
  const path = model.audioFlag.split(".");
  let container = task;
  for (const name of path.slice(0, -1)) container = container[name] = {};
  container[path.at(-1)] = form.audio.checked;
  return task;
}

// Each error next to the field it names (data-param), the others under the button.
function showErrors(errors) {
  for (const element of document.querySelectorAll(".invalid")) element.classList.remove("invalid");
  for (const element of document.querySelectorAll(".field-error")) element.textContent = "";
  for (const error of errors) {
    const fields = error.parameter ? [...document.querySelectorAll(`[data-param="${error.parameter}"]`)] : [];
    const field = fields.find((element) => element.offsetParent !== null);  // the one on show
    const slot = error.parameter === "apiKey" ? $('[data-for="apiKey"]') : null;
    if (field) {
      field.classList.add("invalid");
      let note = field.parentElement.querySelector(`.field-error[data-for="${error.parameter}"]`);
      if (!note) {
        note = Object.assign(document.createElement("span"), { className: "field-error" });
        note.dataset.for = error.parameter;
        field.after(note);
      }
      note.textContent = error.message;
    } else {
      (slot ?? $('[data-for="general"]')).textContent = error.message;
    }
  }
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!api) return showErrors([{ parameter: "apiKey", message: "enter your API key first" }]);
  showErrors([]);
  const task = videoTask();
  if (frameImage) {
    const upload = await api.send({ taskType: "imageUpload", taskUUID: crypto.randomUUID(), image: frameImage });
    if (upload.errors) return showErrors(upload.errors.map((e) => ({ ...e, parameter: "inputs.frameImages" })));
    task.inputs = { frameImages: [{ image: upload.data[0].imageUUID, frame: "first" }] };
  }
  const reply = await api.send(task);
  if (reply.errors) return showErrors(reply.errors);
  watch(task, reply.data[0].warning);
});

// -- watching a task: a card per result with its progress, stage, step and live preview ---------------------------

async function watch(task, warning) {
  const box = $("#running");
  if (!box.querySelector(".result")) box.replaceChildren();
  const cards = [];
  for (let i = 0; i < task.numberResults; i++) {
    const card = document.createElement("div");
    card.className = "result";
    card.innerHTML = `<img class="preview" alt="live preview"><div><progress max="100" value="0"></progress>
      <div class="stage muted">queued</div><p class="warning slow" hidden></p>
      <button class="cancel" type="button">Cancel</button></div>`;
    // A slow demo clip says so up front (the ack's warning: how long it takes on the CPU).
    Object.assign(card.querySelector(".slow"), { textContent: warning ?? "", hidden: !warning });
    card.querySelector(".cancel").onclick = () => api.send({ taskType: "cancelTask", taskUUID: task.taskUUID });
    box.prepend(card);
    cards.push(card);
  }
  while (true) {
    const reply = await api.send({ taskType: "getResponse", taskUUID: task.taskUUID, includePreview: true });
    if (reply.errors) {
      for (const card of cards) card.querySelector(".stage").textContent = reply.errors[0].message;
      break;
    }
    reply.data.forEach((item, i) => cards[i] && showItem(cards[i], item));
    if (reply.data.length && reply.data.every((item) => item.status === "success")) break;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  for (const card of cards) card.querySelector(".cancel")?.remove();
  historyOffset = 0;
  loadHistory();
}

function showItem(card, item) {
  if (item.status === "success") {
    if (card.querySelector("video")) return;
    card.querySelector("progress").value = 100;
    card.querySelector(".stage").textContent = `done · seed ${item.seed}` + (item.cost != null ? ` · $${item.cost}` : "");
    const video = Object.assign(document.createElement("video"), { src: item.videoURL, controls: true, loop: true });
    card.querySelector(".preview").replaceWith(video);
    return;
  }
  card.querySelector("progress").value = item.progress ?? 0;
  // The stage from the server where it says (item.stage), else what the preview tells: it is made in stage 1.
  const inStage1 = item.preview && item.preview.step < item.preview.steps;
  const stage = item.stage?.replace("_", " ") ?? (inStage1 ? "stage 1" : item.progress ? "working" : "queued");
  const step = inStage1 ? ` · step ${item.preview.step}/${item.preview.steps}` : "";
  card.querySelector(".stage").textContent = `${stage}${step} · ${item.progress ?? 0} %`;
  if (item.preview && card.querySelector(".preview").src !== item.preview.image) {
    card.querySelector(".preview").src = item.preview.image;
  }
}

// -- history: this key's tasks from the server's store, newest first, a page at a time ---------------------------

async function loadHistory() {
  const reply = await api.send({ taskType: "listTasks", limit: PAGE_SIZE, offset: historyOffset });
  if (reply.errors) return showErrors(reply.errors);
  const { tasks, more } = reply.data[0];
  const body = $("#history tbody");
  if (historyOffset === 0) body.replaceChildren();
  for (const task of tasks) for (const row of historyRows(task)) body.append(row);
  historyOffset += tasks.length;
  $("#older").hidden = !more;
}
$("#older").addEventListener("click", loadHistory);

function historyRows(task) {
  const g = task.generation;
  const results = task.results.length ? task.results : [{}];
  return results.map((result) => {
    const row = document.createElement("tr");
    row.dataset.task = task.taskUUID;
    const cells = [
      "", task.request.positivePrompt ?? "", g.model, `${g.width}x${g.height}`, `${g.duration} s`, result.seed ?? "",
      task.error ? `${task.status}: ${task.error.message}` : task.status,
      task.seconds != null ? `${task.seconds.toFixed(1)} s` : "", result.cost != null ? `$${result.cost}` : "", "",
    ];
    for (const text of cells) row.append(Object.assign(document.createElement("td"), { textContent: text }));
    row.children[1].className = "prompt";
    row.children[1].title = task.request.positivePrompt ?? "";
    if (result.videoURL) {
      // The video is its own thumbnail (its first frame), and plays in place.
      const video = Object.assign(document.createElement("video"), { src: result.videoURL, controls: true, preload: "metadata" });
      row.children[0].append(video);
      row.children[9].append(Object.assign(document.createElement("a"), { href: result.videoURL, download: "", textContent: "download" }), " ");
    }
    const again = Object.assign(document.createElement("button"), { type: "button", textContent: "use these settings again" });
    again.onclick = () => reuse(task, result.seed);
    row.children[9].append(again);
    return row;
  });
}

function reuse(task, seed) {
  const r = task.request;
  form.model.value = task.generation.model;
  applyModel(task.generation);
  form.positivePrompt.value = r.positivePrompt ?? "";
  form.seed.value = seed ?? "";
  form.numberResults.value = 1;
  if (r.outputFormat) form.outputFormat.value = r.outputFormat.toUpperCase();
  if (r.outputQuality) form.outputQuality.value = r.outputQuality;
  updatePrice();
  form.scrollIntoView();
}

await loadModels();
const savedKey = localStorage.getItem("ltxApiKey");
if (savedKey) useKey(savedKey);
