// What both demo pages show the same way: the backend pill and the notice line.

/** The backend pill: `text`, styled by `kind` (`webgpu`, `cpu` or ''). */
export function setPill(text, kind) {
  const pill = document.getElementById('backend-pill');
  pill.textContent = text;
  pill.className = `pill ${kind}`;
}

/** The notice line: `text` (hidden when empty), `kind` `warn` or `error`. */
export function notice(text, kind = 'warn') {
  const el = document.getElementById('notice');
  el.hidden = !text;
  el.textContent = text ?? '';
  el.className = `notice ${kind === 'error' ? 'error' : ''}`;
}
