// Shows the API's error messages beside the control they are about: the error's `field`
// ('steps', 'subjects/0/word') names an element with that data-field; others go to the form's
// own message line.

let counter = 0;

/** Removes the messages shown in `root` and the invalid marks on its controls. */
export function clearErrors(root) {
  root.querySelectorAll('.field-error').forEach((node) => node.remove());
  root.querySelectorAll('[aria-invalid]').forEach((node) => {
    node.removeAttribute('aria-invalid');
    node.removeAttribute('aria-errormessage');
  });
  root.querySelectorAll('.form-error').forEach((node) => {
    node.hidden = true;
    node.textContent = '';
  });
}

/** The element a field path belongs to: the most specific data-field in `form`, then anywhere. */
function fieldElement(form, field) {
  const parts = field.split('/');
  for (let n = parts.length; n > 0; n--) {
    const name = parts.slice(0, n).join('/');
    const found = form.querySelector(`[data-field="${CSS.escape(name)}"]`) ?? document.querySelector(`[data-field="${CSS.escape(name)}"]`);
    if (found) return found;
  }
  return null;
}

/** Shows `error` (an ApiError or any Error) for `form`, beside its field when it names one. */
export function showError(form, error) {
  const message = error.message || String(error);
  const target = error.field ? fieldElement(form, error.field) : null;
  if (!target) {
    const line = form.querySelector('.form-error');
    line.textContent = message;
    line.hidden = false;
    return line;
  }
  const note = document.createElement('p');
  note.className = 'field-error';
  note.id = `field-error-${++counter}`;
  note.setAttribute('role', 'alert');
  note.textContent = message;
  target.append(note);
  const details = target.closest('details');
  if (details) details.open = true;
  // The control is marked only when the field has one; the caller marks others it can tell apart.
  const controls = target.matches('input, select, textarea') ? [target] : [...target.querySelectorAll('input:not([type=file]), select, textarea')];
  if (controls.length === 1) markInvalid(controls[0], note);
  return note;
}

/** Marks a control as invalid, pointing at the message that says why. */
export function markInvalid(control, note) {
  control.setAttribute('aria-invalid', 'true');
  control.setAttribute('aria-errormessage', note.id);
}
