// The web chat's service worker: notifications for messages that arrive while the chat is
// closed, and a page that says so when the connection is lost.
//
// Served from /chat/sw.js with `Service-Worker-Allowed: /` and registered with scope "/",
// the chat's own address. Every URL here is relative to this script, so the files it needs
// are found wherever the static directory is served.
"use strict";

const CACHE = "coupdepouce-offline-v1";
const OFFLINE = new URL("offline.html", self.location).href;
const ICON = new URL("icon-192.png", self.location).href;
const BADGE = new URL("badge-96.png", self.location).href;
const CHAT = new URL("/", self.location.origin).href;

self.addEventListener("install", (event) => {
  event.waitUntil(
    caches.open(CACHE)
      .then((cache) => cache.addAll([OFFLINE, ICON, BADGE]))
      .then(() => self.skipWaiting())
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil((async () => {
    const names = await caches.keys();
    await Promise.all(names.filter((name) => name !== CACHE).map((name) => caches.delete(name)));
    if (self.registration.navigationPreload) {
      await self.registration.navigationPreload.enable();
    }
    await self.clients.claim();
  })());
});

// Pages come from the network as usual; only when that fails does the offline page answer.
// Everything else (the socket, files) is left to the browser.
self.addEventListener("fetch", (event) => {
  if (event.request.mode !== "navigate") {
    return;
  }
  event.respondWith((async () => {
    try {
      const preloaded = await event.preloadResponse;
      return preloaded || await fetch(event.request);
    } catch (error) {
      const offline = await caches.match(OFFLINE);
      return offline || Response.error();
    }
  })());
});

// The payload is {title, body, id, url, lang, dir, tag}. A push of the same message again
// (an edit, a retry) carries the same tag and replaces its notification.
self.addEventListener("push", (event) => {
  let message = {};
  try {
    message = event.data ? event.data.json() : {};
  } catch (error) {
    message = {};
  }
  const options = {
    body: typeof message.body === "string" ? message.body : "",
    icon: ICON,
    badge: BADGE,
    data: { id: message.id === undefined ? null : message.id, url: sameOrigin(message.url) },
  };
  if (typeof message.tag === "string" && message.tag) {
    options.tag = message.tag;
  }
  if (typeof message.lang === "string") {
    options.lang = message.lang;
  }
  if (message.dir === "rtl" || message.dir === "ltr") {
    options.dir = message.dir;
  }
  const title = typeof message.title === "string" && message.title ? message.title : "Coup de pouce";
  event.waitUntil(self.registration.showNotification(title, options));
});

// A tap brings back an open chat, scrolled to the message, or opens one on it.
self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const data = event.notification.data || {};
  event.waitUntil((async () => {
    const windows = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
    const chat = windows.find((client) => new URL(client.url).pathname === "/");
    if (chat) {
      chat.postMessage({ type: "open", id: data.id });
      return chat.focus();
    }
    return self.clients.openWindow(data.url || CHAT);
  })());
});

// Only addresses of this site are opened from a notification.
function sameOrigin(url) {
  if (typeof url !== "string") {
    return CHAT;
  }
  try {
    const resolved = new URL(url, self.location.origin);
    return resolved.origin === self.location.origin ? resolved.href : CHAT;
  } catch (error) {
    return CHAT;
  }
}
