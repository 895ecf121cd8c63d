// The one error banner: every failed call ends here with a sentence a person can act on.

import { ApiError } from "./api.js";

const listeners = [];

export function onUnauthorized(callback) {
  listeners.push(callback);
}

export function showError(err) {
  const banner = document.getElementById("error");
  banner.textContent = err instanceof ApiError ? err.describe() : String(err && err.message ? err.message : err);
  banner.dataset.status = err instanceof ApiError ? String(err.status) : "";
  banner.hidden = false;
  if (err instanceof ApiError && err.status === 401) listeners.forEach((callback) => callback());
}

export function clearError() {
  const banner = document.getElementById("error");
  banner.hidden = true;
  banner.textContent = "";
  banner.dataset.status = "";
}
