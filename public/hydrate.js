// Starts opshub in the browser. Pages carry no inline script (their
// Content-Security-Policy allows none), so this file does what Leptos's
// inline bootstrap would: the data the page was rendered with arrives as
// JSON (script#opshub-hydration-data, see src/server/hydration_data.rs) and
// goes where Leptos's hydration reads it; then the app's JS and WASM (named
// by script#opshub-hydrate) load and hydrate the page.
const boot = document.getElementById('opshub-hydrate');
const dataElement = document.getElementById('opshub-hydration-data');
const data = dataElement ? JSON.parse(dataElement.textContent) : {};
const resources = [];
for (const [id, value] of data.resources ?? []) resources[id] = value;
window.__RESOLVED_RESOURCES = resources;
window.__SERIALIZED_ERRORS = data.errors ?? [];
window.__INCOMPLETE_CHUNKS = data.incomplete ?? [];
const app = await import(boot.dataset.js);
await app.default({ module_or_path: boot.dataset.wasm });
app.hydrate();
