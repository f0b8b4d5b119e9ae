// A token form in an HTML <dialog> (never window.prompt, which blocks the page and which browser tests treat as an
// unexpected dialog). Both pages use it: the viewer token (access.js) and the review page's admin token.

/**
 * dialog, input, error: the <dialog> (holding a <form method="dialog"> whose submit buttons have the values
 * "ok" and "cancel"), its password input and its error line. Returns ask(reason) -> Promise<string|null>: the
 * trimmed token, or null when cancelled (a button or Esc). reason: null the first time, else why the previous
 * token was refused.
 */
export function createTokenPrompt({ dialog, input, error }) {
  let pending = null;

  dialog.addEventListener("close", () => {
    const resolve = pending;
    pending = null;
    if (resolve === null) return;
    const token = dialog.returnValue === "ok" ? input.value.trim() : "";
    input.value = "";
    resolve(token === "" ? null : token);
  });

  return function askToken(reason) {
    if (pending !== null) pending(null);
    error.textContent = reason ? `${reason[0].toUpperCase()}${reason.slice(1)}. Enter it again.` : "";
    error.hidden = !reason;
    input.value = "";
    dialog.returnValue = "";
    return new Promise((resolve) => {
      pending = resolve;
      if (!dialog.open) dialog.showModal();
      input.focus();
    });
  };
}
