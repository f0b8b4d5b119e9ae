// The admin-token form of the review page (token-dialog.js). Resolves with the trimmed token, or null when
// cancelled.

import { createTokenPrompt as createPrompt } from "../token-dialog.js";

export function createTokenPrompt(ui) {
  return createPrompt({ dialog: ui.fields["token-dialog"], input: ui.fields["token-input"], error: ui.fields["token-error"] });
}
