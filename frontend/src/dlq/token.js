// The admin-token prompt: an HTML <dialog> (never window.prompt, which blocks the page and which browser tests
// treat as an unexpected dialog). Resolves with the trimmed token, or null when cancelled.

export function createTokenPrompt(ui) {
  const dialog = ui.fields["token-dialog"];
  const input = ui.fields["token-input"];
  const error = ui.fields["token-error"];
  let pending = null;

  dialog.addEventListener("close", () => {
    const resolve = pending;
    pending = null;
    if (resolve === null) return;
    const token = dialog.returnValue === "ok" ? input.value.trim() : "";
    input.value = "";
    resolve(token === "" ? null : token);
  });

  /** reason: null the first time, else why the previous token was refused. */
  return function askToken(reason) {
    if (pending !== null) pending(null);
    error.textContent = reason ? `${reason[0].toUpperCase()}${reason.slice(1)}. Enter it again.` : "";
    error.hidden = !reason;
    input.value = "";
    dialog.returnValue = "";
    return new Promise((resolve) => {
      pending = resolve;
      dialog.showModal();
      input.focus();
    });
  };
}
