// Tiny DOM helpers: every text goes through textContent, never innerHTML, so stored memories cannot inject markup.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function mount(target, ...children) {
  target.replaceChildren();
  append(target, children);
}

export function shortTime(rfc3339) {
  return rfc3339 ? rfc3339.replace("T", " ").replace(/\.\d+Z$/, "Z") : "";
}

// "1 memory", "2 memories": a count with its noun in the right number.
export function plural(n, one, many = `${one}s`) {
  return `${n} ${n === 1 ? one : many}`;
}

export function cut(text, n = 100) {
  return text.length > n ? text.slice(0, n) + "…" : text;
}
