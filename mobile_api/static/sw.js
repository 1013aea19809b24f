// The app's service worker: caches the app shell only (never documents, previews or
// tokens: every /mobile/ and /api/ call goes to the network), and shows Web Push
// notifications (request id and nonce only; the title is the installation's).
const SHELL = "shell-v3";
const FILES = ["/app/", "/app/app.css", "/app/app.js", "/app/admin.js", "/app/crypto.js", "/app/i18n.js", "/app/manifest.webmanifest", "/app/icons/icon-192.png", "/app/icons/icon-512.png"];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(SHELL).then((cache) => cache.addAll(FILES)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys().then((keys) => Promise.all(keys.filter((k) => k !== SHELL).map((k) => caches.delete(k)))).then(() => self.clients.claim())
  );
});

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || !url.pathname.startsWith("/app/")) return;
  // network first, the cached shell when offline
  event.respondWith(
    fetch(event.request)
      .then((answer) => {
        if (answer.ok) caches.open(SHELL).then((cache) => cache.put(event.request, answer.clone()));
        return answer;
      })
      .catch(() => caches.match(event.request).then((hit) => hit || caches.match("/app/")))
  );
});

self.addEventListener("push", (event) => {
  const data = event.data ? event.data.json() : {};
  event.waitUntil(
    self.registration
      .showNotification(data.title || "Văn bản chờ ký số", { body: "", tag: data.request_id, data })
      .then(() => self.clients.matchAll({ type: "window" }))
      .then((clients) => clients.forEach((client) => client.postMessage(data)))
  );
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const id = event.notification.data?.request_id;
  event.waitUntil(self.clients.openWindow(id ? `/app/#/doc/${id}` : "/app/"));
});
